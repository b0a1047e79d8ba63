"""The analyses' one command line (python -m lbgap.analysis.jobs, what the workflow runs) on a
trained run: every result uses the run's own seed, batch-norm mode and evaluation chunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import make_spec

from lbgap.analysis import jobs as analyses
from lbgap.training import train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, prepared_mnist):
    out = tmp_path_factory.mktemp("run")
    spec = make_spec(prepared_mnist, epochs=1, bn_eval="batch", eval_chunk=128)
    train.run(spec, out)
    return out


def run_command(*args: str) -> dict:
    assert analyses.main([*args, "--device", "cpu"]) == 0
    return json.loads(Path(args[args.index("--out") + 1]).read_text())


def test_sharpness_command_probes_the_runs_subspace_in_its_bn_mode(
    tmp_path, trained_run, prepared_mnist
):
    out = tmp_path / "phi.json"
    result = run_command("sharpness", "--run", str(trained_run), "--data", str(prepared_mnist),
                         "--space", "sub5", "--eps", "0.001", "--max-iter", "2",
                         "--out", str(out))  # fmt: skip
    assert result["phi"] >= 0 and result["n_evals"] >= 2
    assert (result["subspace_seed"], result["bn_eval"]) == (3, "batch")  # the run's seed and mode
    assert (result["run_dir"], result["device"]) == (str(trained_run), "cpu")


def test_hessian_command_writes_eigenvalue_and_trace_with_the_runs_seed(
    tmp_path, trained_run, prepared_mnist
):
    out = tmp_path / "hessian.json"
    result = run_command("hessian", "--run", str(trained_run), "--data", str(prepared_mnist),
                         "--samples", "2", "--lanczos-vectors", "4", "--tol", "0.1",
                         "--out", str(out))  # fmt: skip
    assert result["n_samples"] == 2 and result["top_eigenvalue"] > 0
    assert (result["seed"], result["bn_eval"]) == (3, "batch")
