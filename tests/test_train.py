"""Training: seeded determinism, invariance to world size and accumulation, divergence."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lbgap.training import live, train

PYTHON = sys.executable


def make_spec(data_path, **overrides) -> dict:
    """A spec file's keys for a seconds-long run (n_train None: all the prepared samples)."""
    spec = {
        "paper": "test", "experiment": "F1", "variant": "SB", "seed": 3, "scale": "quick",
        "network": "F1", "dataset": "mnist", "data": str(data_path), "n_train": None,
        "width": 0.25, "image_size": None, "batch_size": 64, "ghost_batch": None,
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
        "schedule": {"base_lr": 0.1, "base_batch": 64, "batch_size": 64, "epochs": 2},
        "augment": False, "grad_clip": None, "grad_clip_epochs": None,
        "zero_init_residual": False, "micro_batch": None, "regime_adaptation": False,
        "momentum_correction": True, "noise_every": 0, "save_epochs": [], "device": "cpu",
        "amp": "fp32", "channels_last": False, "compile": False, "deterministic": True,
        "bn_eval": "running", "eval_chunk": 4096,
    }  # fmt: skip
    for key, value in overrides.items():
        if key in ("batch_size", "epochs"):
            spec["schedule"][key] = value
        if key != "epochs":
            spec[key] = value
    return spec


def spec_file(folder: Path, spec: dict) -> str:
    """The spec as the workflow hands it to training: a spec.json in the run's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec))
    return str(folder / "spec.json")


def run_torchrun(spec: dict, out, nproc: int) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "lbgap.training.launch", "--nproc-per-node", str(nproc), "--",
           "--spec", spec_file(Path(out), spec), "--out", str(out)]  # fmt: skip
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


def test_one_and_two_ranks_and_micro_batches_give_the_same_trajectory(tmp_path, prepared_mnist):
    """gloo on CPU: 1 rank, 2 ranks and 1 rank accumulating micro-batches agree step by step
    and epoch by epoch (ghost batch norm, F1), with augmentation on over several epochs: each
    sample gets the same crop and flip, and later epochs the same order, whatever the split."""
    spec = make_spec(prepared_mnist, ghost_batch=16, epochs=3, augment=True)
    one = run_torchrun(spec, tmp_path / "one", 1)
    two = run_torchrun(spec, tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    train.run({**spec, "micro_batch": 16}, tmp_path / "micro")
    a, b, c = (pd.read_csv(tmp_path / run / "steps.csv") for run in ("one", "two", "micro"))
    assert len(a) == len(b) == len(c) == 3 * (500 // 64)
    for other in (b, c):
        for column in ("loss", "weight_distance"):
            assert (a[column] - other[column]).abs().max() < 1e-4
    metrics = [pd.read_csv(tmp_path / run / "metrics.csv") for run in ("one", "two", "micro")]
    for other in metrics[1:]:
        for column in ("train_loss", "test_loss"):
            assert (metrics[0][column] - other[column]).abs().max() < 1e-4
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["world_size"] == 2


def test_two_ranks_without_ghost_batch_norm_normalize_over_the_global_batch(
    tmp_path, prepared_mnist
):
    """Plain batch norm on 2 gloo ranks: statistics over the whole batch, as on one process
    (each rank's half alone gave other losses and running statistics)."""
    spec = make_spec(prepared_mnist, epochs=1)
    one = run_torchrun(spec, tmp_path / "one", 1)
    two = run_torchrun(spec, tmp_path / "two", 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (pd.read_csv(tmp_path / run / "steps.csv") for run in ("one", "two"))
    assert len(a) == len(b) == 500 // 64
    assert (a["loss"] - b["loss"]).abs().max() < 1e-4
    a, b = (pd.read_csv(tmp_path / run / "metrics.csv") for run in ("one", "two"))
    assert (a["test_loss"] - b["test_loss"]).abs().max() < 1e-4


def test_divergence_is_a_result_not_a_crash(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist, optimizer={"name": "sgd", "lr": 1e12, "momentum": 0.9})
    spec["schedule"]["base_lr"] = 1e12
    assert train.main(["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["epochs"] == 1  # stopped after the first epoch


def test_batch_not_divisible_by_micro_batch_is_a_clear_error(tmp_path, prepared_mnist, capsys):
    spec = make_spec(prepared_mnist, micro_batch=24)
    assert train.main(["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "micro_batch 24" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error(tmp_path, prepared_mnist, capsys):
    spec = make_spec(prepared_mnist, device="cuda")
    assert train.main(["--spec", spec_file(tmp_path, spec), "--out", str(tmp_path)]) == 2
    assert "no GPU" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_noise_measurement_does_not_change_the_run(tmp_path, prepared_mnist):
    train.run(make_spec(prepared_mnist, ghost_batch=16), tmp_path / "plain")
    train.run(make_spec(prepared_mnist, ghost_batch=16, noise_every=1), tmp_path / "measured")
    a = pd.read_csv(tmp_path / "plain" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "measured" / "steps.csv")["loss"]
    assert (a == b).all()
    metrics = pd.read_csv(tmp_path / "measured" / "metrics.csv")
    # tr(Sigma) is well measured; |G|^2 (and so B_noise) may be lost in the noise this early
    assert (metrics["noise_trace_sigma"] > 0).all()
    assert metrics["b_noise"].isna().all() == (metrics["noise_grad_sq"] <= 0).all()


def test_no_noise_scale_where_half_a_batch_would_normalize_otherwise(tmp_path, prepared_mnist):
    """F1 has batch norm: without ghost batches the side pass's half batch would have other
    statistics, so B_noise is NaN, not a biased number."""
    train.run(make_spec(prepared_mnist, noise_every=1), tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics[["b_noise", "noise_grad_sq", "noise_trace_sigma"]].isna().all().all()


def test_long_epochs_print_progress(tmp_path, prepared_mnist, capsys, monkeypatch):
    monkeypatch.setattr(train, "PROGRESS_SECONDS", 0.0)  # a line after every update
    train.run(make_spec(prepared_mnist, epochs=1), tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if "iteration" in line]
    assert len(lines) == 500 // 64
    assert lines[0].startswith("[F1/SB/seed3] epoch 1/1 iteration 1/7 batch 64 | loss ")
    assert lines[-1].split("|")[-2].strip().endswith("samples/s")
    shares = [int(line.split("% done")[0].rsplit(" ", 1)[1]) for line in lines]
    assert shares == sorted(shares) and shares[0] == round(100 / 7) and shares[-1] == 100
    assert all(", ETA " in line for line in lines)


def test_epoch_lines_say_how_far_and_how_long_to_go(tmp_path, prepared_mnist, capsys):
    train.run(make_spec(prepared_mnist, epochs=2), tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if "test loss" in line]
    assert [line.split(" | ")[-1].split(", ETA")[0].split(", ")[-1] for line in lines] == [
        "50% done",
        "100% done",
    ]
    assert lines[-1].endswith("ETA 0s")


def test_each_epoch_is_written_as_it_ends(tmp_path, prepared_mnist, monkeypatch):
    """The live file holds every epoch so far; the final metrics.csv is the last one's copy."""
    seen: list[bytes] = []
    end_epoch = train.Trainer.end_epoch

    def watched(self, batch, lr):
        end_epoch(self, batch, lr)
        seen.append((tmp_path / live.LIVE_FILE).read_bytes())

    monkeypatch.setattr(train.Trainer, "end_epoch", watched)
    train.run(make_spec(prepared_mnist, epochs=3), tmp_path)
    final = (tmp_path / "metrics.csv").read_bytes()
    assert [len(pd.read_csv(io.BytesIO(b))) for b in seen] == [1, 2, 3]
    assert seen[-1] == final and final.startswith(seen[0].splitlines()[0])
    assert not (tmp_path / live.LIVE_FILE).exists()
    assert live.latest_metrics(tmp_path)["epoch"].tolist() == [1, 2, 3]


def test_tensorboard_needs_its_package_or_writes_event_files(tmp_path, prepared_mnist, capsys):
    spec = spec_file(tmp_path, make_spec(prepared_mnist, epochs=1))
    rc = train.main(["--spec", spec, "--out", str(tmp_path), "--tensorboard", "1"])
    if live.tensorboard_missing():
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err == f"error: {live.tensorboard_missing()}"
        assert "pip install tensorboard" in err
    else:
        assert rc == 0 and list((tmp_path / live.TENSORBOARD_DIR).glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("losses", "diverged"),
    [
        ([2.3, 2.0, 1.7], False),
        ([2.3, float("nan")], True),  # not finite
        ([2.3, float("inf")], True),
        ([2.3, 1e16], True),  # finite, but a blow-up (Adam at LR 1e6)
        ([2.0 * train.DIVERGED_LOSS_FACTOR * 2.3 - 2.3, 2.3], False),  # a spike: mean just under
        ([2.0 * train.DIVERGED_LOSS_FACTOR * 2.31 - 2.3, 2.3], True),  # mean just over
    ],
)
def test_divergence_rule(losses, diverged):
    """An epoch diverged when a loss is not finite or the mean exceeds 100 x ln(10) (~230)."""
    assert (train.divergence(losses, 10) is not None) == diverged


def test_a_loss_that_blows_up_finitely_is_divergence(tmp_path, prepared_mnist):
    spec = make_spec(prepared_mnist, optimizer={"name": "adam", "lr": 1e6}, epochs=3)
    spec["schedule"]["base_lr"] = 1e6
    train.run(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert steps["loss"].notna().all() and steps["loss"].max() < float("inf")  # finite
    assert summary["status"] == "diverged" and summary["epochs"] == 1
    assert "above 100 x ln(10)" in summary["diverged_because"]


@pytest.mark.parametrize(
    ("losses", "patience", "stop"),
    [
        ([1.0, 0.9, 0.95, 0.93], 2, True),  # best at epoch 2, then 2 epochs without a better one
        ([1.0, 0.9, 0.95, 0.93], 3, False),
        ([1.0, 0.9, 0.9], 1, True),  # equal is no improvement
        ([1.0, 0.9, 0.8, 0.7], 1, False),
        ([1.0, 1.0, 1.0, 1.0], None, False),  # no patience: the schedule's epochs
    ],
)
def test_stalled_is_keskars_stopping_rule(losses, patience, stop):
    assert train.stalled(losses, patience) == stop


def test_patience_stops_a_run_whose_training_loss_stalls(tmp_path, prepared_mnist):
    """An LR too small to move float32 weights: the training loss (batch statistics at
    evaluation, so no running average moves it) never improves after epoch 1."""
    optimizer = {"name": "sgd", "lr": 1e-30, "momentum": 0.0}
    spec = make_spec(prepared_mnist, optimizer=optimizer, epochs=8, bn_eval="batch", patience=2)
    spec["schedule"]["base_lr"] = 1e-30
    train.run(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 3
    assert summary["stopping"] == {
        "rule": "patience",
        "patience": 2,
        "max_epochs": 8,
        "stopped_early": True,
        "best_train_loss_epoch": 1,
    }
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 3
    # without patience the same run trains every epoch, and says so
    train.run({k: v for k, v in spec.items() if k != "patience"}, tmp_path / "fixed")
    fixed = json.loads((tmp_path / "fixed" / "summary.json").read_text())
    assert fixed["epochs"] == 8 and fixed["stopping"]["rule"] == "epochs"
    assert fixed["stopping"]["stopped_early"] is False


def test_two_ranks_stop_together_on_patience(tmp_path, prepared_mnist):
    """The ranks agree on stopping (gloo on CPU): the job ends, after the same epoch."""
    optimizer = {"name": "sgd", "lr": 1e-30, "momentum": 0.0}
    spec = make_spec(prepared_mnist, optimizer=optimizer, epochs=6, bn_eval="batch", patience=1)
    spec["schedule"]["base_lr"] = 1e-30
    done = run_torchrun(spec, tmp_path, 2)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["stopping"]["stopped_early"] is True
