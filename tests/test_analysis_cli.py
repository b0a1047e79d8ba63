"""The single-run analysis commands: python -m lbgap.sharpness / lbgap.hessian on a trained run."""

from __future__ import annotations

import json

import pytest
from test_train import make_spec

from lbgap import hessian, sharpness, train


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, prepared_mnist):
    out = tmp_path_factory.mktemp("run")
    train.run(make_spec(prepared_mnist, epochs=1), out)
    return out


def test_sharpness_command_writes_phi_and_where_it_came_from(tmp_path, trained_run, prepared_mnist):
    out = tmp_path / "phi.json"
    sharpness.main(["--run-dir", str(trained_run), "--data", str(prepared_mnist),
                    "--max-iter", "2", "--device", "cpu", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["phi"] >= 0 and result["n_evals"] >= 2
    assert (result["run_dir"], result["device"]) == (str(trained_run), "cpu")


def test_hessian_command_writes_eigenvalue_and_trace(tmp_path, trained_run, prepared_mnist):
    out = tmp_path / "hessian.json"
    hessian.main(["--run-dir", str(trained_run), "--data", str(prepared_mnist), "--samples", "2",
                  "--max-iter", "3", "--device", "cpu", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["n_samples"] == 2 and result["top_eigenvalue"] > 0
    assert result["data"] == str(prepared_mnist)
