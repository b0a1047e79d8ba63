"""Preemption: a run stopped by a signal and rerun ends exactly like an uninterrupted one.

SLURM signals every process of a job step before a time limit or on preemption; the training
checkpoints (write, then rename), exits non-zero so Snakemake's retry reruns it, and the rerun
resumes from the checkpoint with the data order and every RNG state restored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_train import spec_file

from lbgap.training import train


def make_spec(data: Path, **overrides) -> dict:
    """A seconds-long F1 run that uses every kind of state: momentum, augmentation, noise."""
    spec = {
        "paper": "test", "experiment": "F1", "variant": "LB", "seed": 5, "scale": "quick",
        "network": "F1", "dataset": "mnist", "data": str(data), "n_train": None,
        "width": 0.25, "image_size": None, "batch_size": 50, "ghost_batch": 10,
        "augment": True, "noise_every": 3, "device": "cpu", "bn_eval": "running",
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"base_lr": 0.05, "base_batch": 50, "batch_size": 50, "epochs": 3},
        "grad_clip": None, "grad_clip_epochs": None, "zero_init_residual": False,
        "micro_batch": None, "regime_adaptation": False, "momentum_correction": True,
        "save_epochs": [], "amp": "fp32", "channels_last": False, "compile": False,
        "deterministic": True, "eval_chunk": 4096,
    }  # fmt: skip
    spec.update(overrides)
    return spec


def assert_same_run(a: Path, b: Path) -> None:
    """Same metrics and steps (wall-clock columns aside) and bit-identical final weights."""
    ma = pd.read_csv(a / "metrics.csv").drop(columns="train_time_s")
    mb = pd.read_csv(b / "metrics.csv").drop(columns="train_time_s")
    pd.testing.assert_frame_equal(ma, mb, check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(a / "steps.csv"), pd.read_csv(b / "steps.csv"), check_exact=True
    )
    wa = torch.load(a / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(b / "checkpoint.pt", weights_only=True)["model"]
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in ("status", "epochs", "updates", "samples", "final"):
        assert sa[key] == sb[key], key


def stop_after(monkeypatch, updates: int) -> None:
    """Make the next run behave as if SIGTERM arrived just before update `updates` + 1."""
    step = train.Trainer.step

    def step_then_maybe_stop(self, *args, **kwargs):
        loss = step(self, *args, **kwargs)
        if self.updates + 1 == updates:
            self.stop_requested = True
        return loss

    monkeypatch.setattr(train.Trainer, "step", step_then_maybe_stop)


def test_stop_mid_epoch_then_resume_is_exact(tmp_path, prepared_mnist, monkeypatch):
    spec = make_spec(prepared_mnist)
    train.run(spec, tmp_path / "whole")
    with monkeypatch.context() as m:
        stop_after(m, 13)  # epoch 2 of 3, iteration 3 of 10
        with pytest.raises(train.Preempted):
            train.run(spec, tmp_path / "cut")
    cut = tmp_path / "cut"
    assert (cut / train.STATE_FILE).exists()
    assert not any((cut / f).exists() for f in ("summary.json", "metrics.csv", "checkpoint.pt"))
    state = torch.load(cut / train.STATE_FILE, weights_only=False)
    assert (state["epoch"], state["iteration"], len(state["steps"])) == (1, 3, 13)
    train.run(spec, cut)
    assert_same_run(cut, tmp_path / "whole")
    assert not (cut / train.STATE_FILE).exists()


def test_timed_checkpoints_change_nothing(tmp_path, prepared_mnist, monkeypatch):
    """checkpoint_minutes tiny: a save before every update, same run, state removed at the end."""
    saves = []
    save = train.Trainer.save_state
    monkeypatch.setattr(train.Trainer, "save_state", lambda self: saves.append(save(self)))
    train.run(make_spec(prepared_mnist), tmp_path / "often", checkpoint_minutes=1e-9)
    assert len(saves) == 3 * 10
    monkeypatch.undo()
    train.run(make_spec(prepared_mnist), tmp_path / "never")
    assert_same_run(tmp_path / "often", tmp_path / "never")
    assert not (tmp_path / "often" / train.STATE_FILE).exists()


def test_state_of_another_configuration_is_not_resumed(tmp_path, prepared_mnist, monkeypatch):
    with monkeypatch.context() as m:
        stop_after(m, 5)
        with pytest.raises(train.Preempted):
            train.run(make_spec(prepared_mnist), tmp_path)
    other = make_spec(prepared_mnist, seed=6)
    train.run(other, tmp_path)
    train.run(other, tmp_path / "fresh")
    assert_same_run(tmp_path, tmp_path / "fresh")


# ---------------------------------------------------------------- a real signal
def launch(
    spec: dict, out: Path, signal_after_line: str | None = None, sig: int = signal.SIGTERM
) -> tuple[int, str]:
    """`lbgap.training.launch` (torchrun, one CPU rank); optionally signal its whole process group,
    as SLURM signals every process of a job step (SIGTERM), a terminal's Ctrl-C (SIGINT) or a
    closed terminal (SIGHUP) do, once a line containing `signal_after_line` shows.
    Two ranks under SLURM: tests/test_slurm.py."""
    cmd = [sys.executable, "-m", "lbgap.training.launch", "--",
           "--spec", spec_file(out, spec), "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if signal_after_line and signal_after_line in line:
                os.killpg(proc.pid, sig)
                signal_after_line = None
        return proc.wait(timeout=120), "".join(lines)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=str)
def test_signal_to_the_job_then_rerun_is_exact(tmp_path, prepared_mnist, sig):
    spec = make_spec(prepared_mnist)
    spec["schedule"]["epochs"] = 8
    rc, out = launch(spec, tmp_path / "cut", signal_after_line="epoch 1/", sig=sig)
    cut = tmp_path / "cut"
    assert rc != 0, f"the run was not stopped by the signal:\n{out[-3000:]}"
    assert "checkpointing before exit" in out
    assert (cut / train.STATE_FILE).exists() and not (cut / "summary.json").exists()
    assert not list(cut.glob(".*.tmp")), "a half-written file was left behind"
    rerun = [
        sys.executable,
        "-m",
        "lbgap.training.train",
        "--spec",
        spec_file(cut, spec),
        "--out",
        str(cut),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(rerun, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "resumed from" in out.stdout, out.stdout + out.stderr
    train.run(spec, tmp_path / "whole")  # in this process, one thread like the launched rank
    assert_same_run(cut, tmp_path / "whole")
