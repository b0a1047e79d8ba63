"""Training: seeded determinism, invariance to world size and accumulation, divergence."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from lbgap import train

PYTHON = sys.executable


def make_spec(data_path, **overrides) -> dict:
    spec = {
        "paper": "test", "experiment": "F1", "variant": "SB", "seed": 3, "scale": "quick",
        "network": "F1", "dataset": "mnist", "data": str(data_path), "width": 0.25,
        "ghost_batch": None, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"base_lr": 0.1, "base_batch": 64, "batch_size": 64, "epochs": 2},
        "device": "cpu", "bn_eval": "running", "noise_every": 0,
    }  # fmt: skip
    for key, value in overrides.items():
        if key in ("batch_size", "epochs"):
            spec["schedule"][key] = value
        else:
            spec[key] = value
    return spec


def run_torchrun(spec: dict, out, nproc: int) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "lbgap.launch", "--nproc-per-node", str(nproc), "--",
           "--spec", json.dumps(spec), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


def test_same_seed_same_numbers(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist)
    train.run(spec, tmp_path / "a")
    train.run(spec, tmp_path / "b")
    a = pd.read_csv(tmp_path / "a" / "metrics.csv").drop(columns="train_time_s")
    b = pd.read_csv(tmp_path / "b" / "metrics.csv").drop(columns="train_time_s")
    pd.testing.assert_frame_equal(a, b)
    other = make_spec(prepared_mnist, seed=4)
    train.run(other, tmp_path / "c")
    c = pd.read_csv(tmp_path / "c" / "metrics.csv")
    assert c["train_loss"].iloc[-1] != a["train_loss"].iloc[-1]


def test_outputs_of_a_run(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist, save_epochs=[1])
    train.run(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert summary["status"] == "completed" and summary["spec"] == spec
    assert summary["final"]["test_acc"] == metrics["test_acc"].iloc[-1]
    assert list(metrics["epoch"]) == [1, 2]
    assert summary["updates"] == len(steps) == 2 * (500 // 64)
    assert (steps["weight_distance"] > 0).all()
    assert (tmp_path / "checkpoint_epoch1.pt").exists() and (tmp_path / "checkpoint.pt").exists()
    assert not (tmp_path / train.STATE_FILE).exists()


def test_gradient_accumulation_gives_the_same_trajectory(tmp_path, prepared_mnist):
    """With ghost batch norm, splitting the batch into micro-batches changes nothing."""
    whole = make_spec(prepared_mnist, ghost_batch=16)
    split = make_spec(prepared_mnist, ghost_batch=16, micro_batch=16)
    train.run(whole, tmp_path / "whole")
    train.run(split, tmp_path / "split")
    a = pd.read_csv(tmp_path / "whole" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "split" / "steps.csv")["loss"]
    assert (a - b).abs().max() < 1e-4


def test_one_and_two_ranks_give_the_same_trajectory(tmp_path, prepared_mnist):
    """gloo on CPU: the per-step losses of 1 and 2 ranks agree (ghost batch norm, F1)."""
    spec = make_spec(prepared_mnist, ghost_batch=16, epochs=1)
    one = run_torchrun(spec, tmp_path / "one", 1)
    two = run_torchrun(spec, tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a = pd.read_csv(tmp_path / "one" / "steps.csv")
    b = pd.read_csv(tmp_path / "two" / "steps.csv")
    assert len(a) == len(b) == 500 // 64
    assert (a["loss"] - b["loss"]).abs().max() < 1e-4
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def test_divergence_is_a_result_not_a_crash(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist, optimizer={"name": "sgd", "lr": 1e12, "momentum": 0.9})
    spec["schedule"]["base_lr"] = 1e12
    assert train.main(["--spec", json.dumps(spec), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["epochs"] == 1  # stopped after the first epoch


def test_batch_not_divisible_by_micro_batch_is_a_clear_error(tmp_path, prepared_mnist, capsys):
    spec = make_spec(prepared_mnist, micro_batch=24)
    assert train.main(["--spec", json.dumps(spec), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "micro_batch 24" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error(tmp_path, prepared_mnist, capsys):
    spec = make_spec(prepared_mnist, device="cuda")
    assert train.main(["--spec", json.dumps(spec), "--out", str(tmp_path)]) == 2
    assert "no GPU" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_noise_measurement_does_not_change_the_run(tmp_path, prepared_mnist):
    train.run(make_spec(prepared_mnist), tmp_path / "plain")
    train.run(make_spec(prepared_mnist, noise_every=1), tmp_path / "measured")
    a = pd.read_csv(tmp_path / "plain" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "measured" / "steps.csv")["loss"]
    assert (a == b).all()
    metrics = pd.read_csv(tmp_path / "measured" / "metrics.csv")
    # tr(Sigma) is well measured; |G|^2 (and so B_noise) may be lost in the noise this early
    assert (metrics["noise_trace_sigma"] > 0).all()
    assert metrics["b_noise"].isna().all() == (metrics["noise_grad_sq"] <= 0).all()


def test_long_epochs_print_progress(tmp_path, prepared_mnist, capsys, monkeypatch):
    monkeypatch.setattr(train, "PROGRESS_SECONDS", 0.0)  # a line after every update
    train.run(make_spec(prepared_mnist, epochs=1), tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if "iteration" in line]
    assert len(lines) == 500 // 64
    assert lines[0].startswith("[F1/SB/seed3] epoch 1/1 iteration 1/7 batch 64 | loss ")
    assert lines[-1].split("|")[-1].strip().endswith("samples/s")
