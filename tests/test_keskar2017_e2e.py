"""Keskar et al. 2017 end to end at a tiny scale: `snakemake keskar2017` in a temporary folder.

500 digits, seed 0, 3 epochs, a quarter of F1's width, one extra sweep point and one warm start;
every table must hold the numbers of the run folders' own result files.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_snakemake, write_config

from lbgap.config import layout as files
from lbgap.products import outputs

pytestmark = pytest.mark.e2e

PAPER = "keskar2017"
F1 = "results/keskar2017/F1"


def tiny(config: dict) -> dict:
    cfg = copy.deepcopy(config)
    cfg["scales"]["quick"].update(train_size=500, test_size=200, seeds=[0], width=0.25)
    cfg["papers"] = {PAPER: cfg["papers"][PAPER]}
    paper = cfg["papers"][PAPER]
    paper["analysis"]["hessian"]["hutchinson_samples"] = {"quick": 4, "small": 4, "paper": 4}
    for exp in paper["experiments"].values():
        if "epochs" in exp:  # the others take their base's (base: F1)
            exp["epochs"] = {**exp["epochs"], "quick": 3}
    paper["experiments"]["F1"]["save_epochs"] = {"quick": [1, 2], "small": [1], "paper": [1]}
    sweep = paper["experiments"]["F1_batch_sweep"]["variants"]
    for name in [n for n in sweep if n != "50pct"]:
        del sweep[name]
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory, repo_config) -> Path:
    workdir = tmp_path_factory.mktemp("keskar")
    write_config(workdir, tiny(repo_config))
    out = run_snakemake(workdir, "--cores", "2", PAPER, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return workdir


def read(workdir: Path, path: str) -> dict:
    return json.loads((workdir / path).read_text())


def test_every_table_and_figure_is_built(run):
    missing = [f for f in outputs.files(PAPER) if not (run / f).stat().st_size]
    assert not missing
    assert (run / "reports/figures/keskar2017_parametric_C4.png").stat().st_size > 5_000


def test_tables_hold_the_run_folders_numbers(run):
    table2 = pd.read_csv(run / "reports/tables/keskar2017_table2.csv").set_index("network")
    table3 = pd.read_csv(run / "reports/tables/keskar2017_table3.csv").set_index("experiment")
    table4 = pd.read_csv(run / "reports/tables/keskar2017_table4.csv").set_index("experiment")
    hessian = pd.read_csv(run / "reports/tables/keskar2017_hessian.csv").set_index("experiment")
    for regime in ("SB", "LB"):
        d = f"{F1}/{regime}/seed0"
        summary = read(run, f"{d}/summary.json")
        assert table2.loc["F1", f"test_{regime}_mean"] == pytest.approx(
            summary["final"]["test_acc"]
        )
        for eps, label in ((1e-3, "1e-3"), (5e-4, "5e-4")):
            for table, space in ((table3, "full"), (table4, "sub100")):
                result = read(run, files.sharpness(d, space, eps))
                assert table.loc["F1", f"{regime}_phi_{label}_mean"] == pytest.approx(result["phi"])
                assert table.loc["F1", f"{regime}_phi_{label}_n"] == 1
                converged = table.loc["F1", f"{regime}_phi_converged_{label}_mean"]
                assert converged == pytest.approx(result["phi_converged"])
                assert result["phi_converged"] >= result["phi"]  # continues the paper's run
                assert result["trace_phi"][min(10, len(result["trace_phi"]) - 1)] == (
                    pytest.approx(result["phi"])
                )
                assert result["max_iter"] == 10 and 1 <= result["iterations"] <= 10
                assert result["f_max"] >= result["f_x"] and result["phi"] >= 0
                assert result["bn_eval"] == summary["spec"]["bn_eval"] and result["wall_time_s"] > 0
                # f(x) is the run's own final training loss: same loss, same data, same mode
                assert result["f_x"] == pytest.approx(summary["final"]["train_loss"], rel=1e-4)
        hess = read(run, files.hessian(d))
        assert hessian.loc["F1", f"{regime}_lambda_max_mean"] == pytest.approx(
            hess["top_eigenvalue"]
        )
        assert hessian.loc["F1", f"{regime}_trace_mean"] == pytest.approx(hess["trace"])
        assert hess["n_samples"] == 4
    assert table3.loc["F1", "SB_phi_1e-3_paper_mean"] == 1.23
    assert table3.loc["C1", "note"] == "needs cifar10: run with scale=small"


def test_phi_along_training_reuses_the_final_phi(run):
    for regime in ("SB", "LB"):
        d = f"{F1}/{regime}/seed0"
        frame = pd.read_csv(run / files.training_sharpness(d))
        assert list(frame["epoch"]) == [1, 2, 3]
        final = read(run, files.sharpness(d, "full", 1e-3))
        assert frame["phi"].iloc[-1] == pytest.approx(final["phi"])
        metrics = pd.read_csv(run / d / "metrics.csv").set_index("epoch")
        for row in frame.itertuples():
            assert row.f_x == pytest.approx(metrics.loc[row.epoch, "train_loss"], rel=1e-4)


def test_parametric_line_and_warm_start(run):
    line = pd.read_csv(run / files.parametric(PAPER, "F1", 0))
    assert line["alpha"].iloc[0] == -1 and line["alpha"].iloc[-1] == 2 and len(line) == 25
    accuracies = line[["train_acc", "test_acc"]]
    assert ((accuracies >= 0) & (accuracies <= 100)).all().all()
    warm = read(run, "results/keskar2017/F1_warmstart/k2/seed0/summary.json")["spec"]
    assert warm["init_checkpoint"] == f"{F1}/SB/seed0/checkpoint_epoch2.pt"
    assert (run / warm["init_checkpoint"]).exists()
    assert not (run / "results/keskar2017/F1_warmstart/k10").exists()  # needs 10 SB epochs


def test_one_product_rebuilds_alone(run):
    table = run / "reports/tables/keskar2017_table4.csv"
    table.unlink()
    plan = run_snakemake(run, "--cores", "1", str(table.relative_to(run)), "-n", "--quiet", "rules")
    assert planned_jobs(plan.stdout) == ["table"], plan.stdout


def planned_jobs(stdout: str) -> list[str]:
    """The rules of a dry run's first job-stats table."""
    lines = stdout.splitlines()
    jobs = []
    for line in lines[lines.index("Job stats:") + 3 :]:
        if not line.strip() or line.split()[0] == "total":
            break
        jobs.append(line.split()[0])
    return jobs


def test_rescaled_weights_keep_the_function_and_the_adaptive_sharpness(run):
    """Issue 21 on real (tiny) runs: the reparametrization job and its two tables."""
    table = pd.read_csv(run / "reports/tables/keskar2017_reparametrization.csv")
    adaptive = pd.read_csv(run / "reports/tables/keskar2017_adaptive_sharpness.csv")
    for regime in ("SB", "LB"):
        record = read(run, files.reparametrization(f"{F1}/{regime}/seed0"))
        one, *rescaled = record["alphas"]
        assert one["alpha"] == 1 and one["phi"] is None  # Table 3's, read by the tables
        phi = read(run, files.sharpness(f"{F1}/{regime}/seed0", "full", 1e-3))["phi"]
        row = table.set_index("case").loc[f"F1 {regime}"]
        assert row["phi_ref_mean"] == pytest.approx(phi)
        for other in rescaled:
            assert other["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5)
            assert other["test_acc"] == pytest.approx(one["test_acc"], abs=1e-9)
            assert other["adaptive"] == pytest.approx(one["adaptive"], rel=1e-9)  # alpha 8: exact
            assert other["phi"] != pytest.approx(phi, rel=0.1)
        assert adaptive.set_index("experiment").loc["F1", f"{regime}_adaptive_mean"] == (
            pytest.approx(one["adaptive"])
        )
