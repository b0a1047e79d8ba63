"""The experiment matrix: expansion, per-scale values, batch shares and one-line config errors."""

from __future__ import annotations

import copy
import subprocess
import time

import pytest
from conftest import ROOT, VENV_BIN

from lbgap import matrix


@pytest.fixture
def config(repo_config) -> dict:
    return matrix.prepare_config(copy.deepcopy(repo_config))


def test_quick_runs_only_experiments_with_offline_data(config):
    runs = matrix.runs(config, "keskar2017")
    assert {r.experiment for r in runs} >= {"F1"}
    datasets = {config["papers"][r.paper]["experiments"][r.experiment]["dataset"] for r in runs}
    assert datasets <= set(config["scales"]["quick"]["datasets"])
    skipped = matrix.skipped(config, "keskar2017")
    assert skipped["C1"] == "needs cifar10: run with scale=small"
    assert skipped["F2"] == "needs timit: run with scale=paper"


def test_every_variant_and_seed_is_a_run(config):
    exp = config["papers"]["keskar2017"]["experiments"]["F1"]
    runs = [r for r in matrix.runs(config, "keskar2017") if r.experiment == "F1"]
    assert len(runs) == len(exp["variants"]) * len(config["scales"]["quick"]["seeds"])
    assert runs[0].dir == f"results/keskar2017/F1/{runs[0].variant}/seed{runs[0].seed}"


def test_scale_picks_per_scale_values_and_lb_is_ten_percent(config):
    run = matrix.Run("keskar2017", "F1", "LB", 0)
    quick = matrix.spec(config, run)
    assert quick["batch_size"] == 400  # 10% of 4,000 bundled training digits
    assert (
        quick["schedule"]["epochs"]
        == config["papers"]["keskar2017"]["experiments"]["F1"]["epochs"]["quick"]
    )
    paper = matrix.spec({**config, "scale": "paper"}, run)
    assert paper["batch_size"] == 6000  # 10% of MNIST's 60,000
    assert paper["schedule"]["epochs"] == 100


def test_spec_is_deterministic(config):
    run = matrix.runs(config)[0]
    assert matrix.spec(config, run) == matrix.spec(copy.deepcopy(config), run)


def test_impossible_batch_is_a_one_line_error(config):
    config["papers"]["keskar2017"]["experiments"]["F1"]["variants"]["LB"] = {"batch_size": 9000}
    with pytest.raises(matrix.ConfigError) as err:
        matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    message = str(err.value)
    assert "\n" not in message
    assert "batch_size" in message and "9000" in message and "4000" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(scale="huge"), "config error at scale"),
        (lambda c: c.update(colour="red"), "colour"),
        (
            lambda c: c["papers"]["keskar2017"]["experiments"]["F1"].update(
                variants={"SB": {"batch_size": 256}, "LB": {"batchsize": 3}}
            ),
            "papers.keskar2017.experiments.F1.variants.LB",
        ),
        (
            lambda c: c["papers"]["keskar2017"]["experiments"]["F1"].update(network="F9"),
            "papers.keskar2017.experiments.F1.network",
        ),
        (lambda c: c.update(compile="fast"), "config error at compile"),
        (lambda c: c.update(amp="fp16"), "config error at amp"),
        (lambda c: c.update(deterministic="maybe"), "config error at deterministic"),
    ],
)
def test_bad_config_names_the_key(repo_config, edit, expected):
    config = copy.deepcopy(repo_config)
    edit(config)
    with pytest.raises(matrix.ConfigError) as err:
        matrix.prepare_config(config)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_speed_settings_from_the_command_line_reach_the_spec(repo_config):
    """Snakemake's --config passes text: "false" must become the boolean, not an error."""
    edited = {**repo_config, "compile": "reduce-overhead", "deterministic": "false"}
    edited["download"] = "True"
    config = matrix.prepare_config(edited)
    assert config["deterministic"] is False and config["download"] is True
    spec = matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    assert (spec["compile"], spec["deterministic"], spec["amp"]) == (
        "reduce-overhead",
        False,
        "auto",
    )


def test_variant_overrides_do_not_leak_defaults(config):
    exp = config["papers"]["keskar2017"]["experiments"]["F1"]
    exp["lr_scaling"] = "sqrt"
    exp["variants"]["LB"] = {"batch_size": 1000}
    spec = matrix.spec(config, matrix.Run("keskar2017", "F1", "LB", 0))
    assert spec["schedule"]["lr_scaling"] == "sqrt"
    assert spec["schedule"]["base_batch"] == 256


def test_resources_come_from_scale_and_experiment(config):
    assert matrix.resources(config, "keskar2017", "F1")["gpus"] == 0
    config["scale"] = "paper"
    config["papers"]["keskar2017"]["experiments"]["F1"]["resources"] = {"paper": {"gpus": 8}}
    res = matrix.resources(config, "keskar2017", "F1")
    assert res["gpus"] == 8 and res["tasks"] == 8


def test_paper_scale_dag_builds_in_seconds(tmp_path):
    start = time.perf_counter()
    out = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), "-n", "--quiet", "rules",
         "--config", "scale=paper", "--", "reproduce_all"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    train_jobs = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("train ")]
    assert train_jobs and int(train_jobs[0].split()[1]) >= 60
    assert time.perf_counter() - start < 60


def test_unknown_scale_fails_at_start_with_one_line(tmp_path):
    out = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(ROOT / "config.yaml"), "-n", "--config", "scale=huge"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode != 0
    lines = [ln for ln in (out.stderr + out.stdout).splitlines() if "config error" in ln]
    assert lines and "scale" in lines[0]
