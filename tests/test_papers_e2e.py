"""Hoffer, Goyal and Smith end to end at a tiny scale: training runs in, tables and figures out."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from conftest import run_snakemake, write_config

PAPERS = ("hoffer2017", "goyal2017", "smith2018")
N_TRAIN = 640  # 20 ghost batches of Goyal's 32
# Variants left out to keep the run short; their tables show them as not run.
DROPPED = {
    "goyal2017": ("constant_warmup", "kn160"),
    "smith2018": (),
}


def tiny(config: dict) -> dict:
    """The shipped quick analogs: 640 digits, one seed, 2 epochs, one milestone, batches <= 640."""
    cfg = copy.deepcopy(config)
    cfg["scales"]["quick"].update(train_size=N_TRAIN, test_size=200, seeds=[0])
    cfg["papers"] = {p: cfg["papers"][p] for p in PAPERS}
    for paper, pcfg in cfg["papers"].items():
        for exp in pcfg["experiments"].values():
            base = pcfg["experiments"].get(exp.get("base"), {})  # e.g. F1_analog_lars
            if exp.get("scales", base.get("scales")) != ["quick"]:
                continue
            exp.update(epochs=2, decay_epochs=[1])
            for name in DROPPED.get(paper, ()):
                exp["variants"].pop(name, None)
            for variant in exp["variants"].values():
                if variant.get("batch_size", 0) > N_TRAIN:
                    variant["batch_size"] = N_TRAIN
    return cfg


@pytest.mark.e2e
def test_three_papers_and_the_literature_table(repo_config, tmp_path):
    cfg = tiny(repo_config)
    write_config(tmp_path, cfg)
    ra = cfg["papers"]["hoffer2017"]["experiments"]["F1_analog"]
    k = ra["variants"]["+RA"]["batch_size"] / ra["batch_size"]
    out = run_snakemake(
        tmp_path, "--cores", "2", *PAPERS, "reports/tables/literature_imagenet_records.csv",
        timeout=400,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    tables = tmp_path / "reports" / "tables"
    figures = tmp_path / "reports" / "figures"
    for name in ("hoffer2017_table1", "goyal2017_table1", "goyal2017_lars", "smith2018_table"):
        assert (tables / f"{name}.csv").stat().st_size and (tables / f"{name}.md").stat().st_size
    for name in (
        "hoffer2017_weight_distance",
        "goyal2017_error_vs_batch",
        "goyal2017_training_curves",
        "smith2018_schedules",
        "smith2018_test_accuracy",
    ):
        assert (figures / f"{name}.png").stat().st_size > 10_000
        assert (figures / f"{name}.pdf").stat().st_size
    # The tables carry exactly what the runs recorded.
    hoffer = pd.read_csv(tables / "hoffer2017_table1.csv").set_index("experiment")
    summary = json.loads(
        (tmp_path / "results/hoffer2017/F1_analog/+RA/seed0/summary.json").read_text()
    )
    assert hoffer.loc["F1_analog", "+RA_acc_mean"] == pytest.approx(summary["final"]["test_acc"])
    assert hoffer.loc["F1_analog", "+RA_epochs"] == summary["epochs"] == round(2 * k)
    assert "needs cifar10" in hoffer.loc["C1", "note"]
    smith = pd.read_csv(tables / "smith2018_table.csv").set_index("experiment").loc["F1_SGD_analog"]
    assert smith["increasing_batch_updates"] < smith["decaying_lr_updates"]
    goyal = pd.read_csv(tables / "goyal2017_table1.csv").set_index("experiment").loc["F1_analog"]
    assert goyal["constant_warmup_err_n"] == 0 and goyal["gradual_warmup_err_n"] == 1
    lars = pd.read_csv(tables / "goyal2017_lars.csv").set_index("experiment").loc["F1_analog_lars"]
    summary = json.loads(
        (tmp_path / "results/goyal2017/F1_analog_lars/lars_kn4000/seed0/summary.json").read_text()
    )
    assert summary["spec"]["optimizer"]["name"] == "lars"
    assert lars["largest_err_mean"] == pytest.approx(100 - summary["final"]["test_acc"])
    literature = pd.read_csv(tables / "literature_imagenet_records.csv")
    assert (
        literature["batch"].isna().any()
        and "quoted" in (tables / "literature_imagenet_records.md").read_text().lower()
    )
