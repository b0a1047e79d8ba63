"""Speed settings: resolution per device, bf16 autocast, channels_last and torch.compile in runs.

The GPU tests run only where a GPU is visible (they are skipped on CPU machines and in CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from test_data import write_cifar10
from test_resume import assert_same_run, stop_after
from test_train import make_spec, spec_file

from lbgap.config.run_spec import RunSpec
from lbgap.training import train
from lbgap.training.acceleration import Acceleration, compile_mode
from lbgap.training.ghost_bn import GhostBatchNorm2d
from lbgap.training.models import build_model

CPU = torch.device("cpu")
GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a GPU")


def settings(**keys) -> RunSpec:
    """A run's spec with these acceleration settings (the rest as in make_spec)."""
    return RunSpec.of(make_spec("unused.pt", **keys))


def test_auto_means_float32_and_default_layout_on_a_cpu():
    a = Acceleration.resolve(settings(amp="auto", channels_last="auto"), CPU, build_model("C1", 10))
    assert (a.amp, a.channels_last, a.compile, a.deterministic) == ("fp32", False, None, True)


def test_explicit_settings_and_no_channels_last_without_convolutions():
    conv = Acceleration.resolve(
        settings(amp="bf16", channels_last=True), CPU, build_model("C1", 10)
    )
    mlp = Acceleration.resolve(
        settings(channels_last=True, compile=True), CPU, build_model("F1", 10)
    )
    assert (conv.amp, conv.channels_last) == ("bf16", True)
    assert (mlp.amp, mlp.channels_last, mlp.compile) == ("fp32", False, "default")
    with pytest.raises(ValueError, match="amp must be one of"):
        Acceleration.resolve(settings(amp="fp16"), CPU, build_model("F1", 10))


@pytest.mark.parametrize(
    ("value", "mode"),
    [(False, None), (None, None), (True, "default"), ("reduce-overhead", "reduce-overhead")],
)
def test_compile_modes(value, mode):
    assert compile_mode(value) == mode


def test_unknown_compile_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="compile must be false, true or one of"):
        compile_mode("fast")


def test_ghost_batch_norm_keeps_float32_statistics_under_bf16_autocast():
    torch.manual_seed(0)
    bn = GhostBatchNorm2d(8, ghost_size=16)
    x = (torch.randn(64, 8, 4, 4) * 3 + 100).bfloat16()  # a large mean: bf16 sums would drift
    out = bn(x)
    reference = GhostBatchNorm2d(8, ghost_size=16)(x.float())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.02)
    assert torch.isfinite(bn.running_var).all() and bn.running_mean.dtype == torch.float32


def test_auto_on_a_cpu_is_the_float32_run(tmp_path, prepared_mnist):
    """The defaults change nothing on a CPU: the same numbers as a spec without the keys."""
    plain = make_spec(prepared_mnist, epochs=1)
    auto = make_spec(prepared_mnist, epochs=1, amp="auto", channels_last="auto")
    train.run(plain, tmp_path / "plain")
    train.run(auto, tmp_path / "auto")
    a = pd.read_csv(tmp_path / "plain" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "auto" / "steps.csv")["loss"]
    pd.testing.assert_series_equal(a, b)
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["acceleration"]["amp"] == "fp32"


def test_bf16_channels_last_run_trains_and_says_so(tmp_path, prepared_cifar):
    spec = cifar_spec(prepared_cifar, amp="bf16", channels_last=True, ghost_batch=16)
    train.run(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert summary["acceleration"]["amp"] == "bf16" and summary["acceleration"]["channels_last"]
    assert steps["loss"].notna().all() and steps["loss"].iloc[-1] < steps["loss"].iloc[0]


def test_compiled_run_matches_eager(tmp_path, prepared_mnist):
    eager = make_spec(prepared_mnist, epochs=1)
    compiled = make_spec(prepared_mnist, epochs=1, compile=True)
    train.run(eager, tmp_path / "eager")
    train.run(compiled, tmp_path / "compiled")
    a = pd.read_csv(tmp_path / "eager" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "compiled" / "steps.csv")["loss"]
    assert (a - b).abs().max() < 1e-3
    summary = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert summary["acceleration"]["compile"] == "default"


# ---------------------------------------------------------------- on a GPU
@pytest.fixture(scope="module")
def prepared_cifar(tmp_path_factory):
    """Random CIFAR-10 in its real pickled format, 320 train / 64 test images, prepared."""
    import torchvision

    from lbgap.data.prepare import prepare

    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root, n_per_batch=64)
    out = root / "prepared" / "cifar10.pt"
    with pytest.MonkeyPatch.context() as mp:  # torchvision's md5 check knows only the real files
        mp.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
        prepare("cifar10", root, out, out.with_suffix(".json"))
    return out


def cifar_spec(data, **overrides) -> dict:
    spec = make_spec(data, epochs=2, batch_size=64, **overrides)
    spec.update(network="C1", dataset="cifar10", augment=True)
    return spec


@needs_gpu
def test_gpu_defaults_use_bf16_and_channels_last(tmp_path, prepared_cifar):
    spec = cifar_spec(prepared_cifar, device="cuda", amp="auto", channels_last="auto")
    train.run(spec, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    assert summary["acceleration"] == {
        "amp": "bf16",
        "channels_last": True,
        "compile": None,
        "deterministic": True,
    }
    assert summary["status"] == "completed"


@needs_gpu
@pytest.mark.parametrize("compile_", [False, True, "reduce-overhead"])
def test_gpu_same_seed_same_numbers(tmp_path, prepared_cifar, compile_):
    spec = cifar_spec(prepared_cifar, device="cuda", amp="auto", channels_last="auto")
    spec.update(compile=compile_, ghost_batch=16)
    train.run(spec, tmp_path / "a")
    train.run(spec, tmp_path / "b")
    a = pd.read_csv(tmp_path / "a" / "steps.csv")
    b = pd.read_csv(tmp_path / "b" / "steps.csv")
    pd.testing.assert_series_equal(a["loss"], b["loss"])
    pd.testing.assert_series_equal(a["weight_distance"], b["weight_distance"])


@needs_gpu
def test_gpu_noise_measurement_does_not_change_the_run(tmp_path, prepared_cifar):
    """C1 has dropout: the side pass must restore the GPU's random state too."""
    spec = cifar_spec(prepared_cifar, device="cuda", amp="auto", channels_last="auto")
    train.run(spec, tmp_path / "plain")
    train.run({**spec, "noise_every": 1}, tmp_path / "measured")
    a = pd.read_csv(tmp_path / "plain" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "measured" / "steps.csv")["loss"]
    pd.testing.assert_series_equal(a, b)


@needs_gpu
def test_gpu_stop_then_resume_is_exact(tmp_path, prepared_cifar, monkeypatch):
    """Checkpointed GPU state (weights, optimizer, CUDA and data generators) resumes bit-exactly."""
    spec = cifar_spec(prepared_cifar, device="cuda", amp="auto", channels_last="auto")
    train.run(spec, tmp_path / "whole")
    with monkeypatch.context() as m:
        stop_after(m, 7)  # epoch 2 of 2, iteration 2 of 5
        with pytest.raises(train.Preempted):
            train.run(spec, tmp_path / "cut")
    train.run(spec, tmp_path / "cut")
    assert_same_run(tmp_path / "cut", tmp_path / "whole")


def test_bf16_on_a_gpu_without_it_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    cuda, model = torch.device("cuda"), build_model("C1", 10)
    assert Acceleration.resolve(settings(amp="auto"), cuda, model).amp == "fp32"
    with pytest.raises(ValueError, match="amp: bf16 needs a GPU with bfloat16"):
        Acceleration.resolve(settings(amp="bf16"), cuda, model)


def test_failed_compilation_is_a_one_line_error(tmp_path, prepared_mnist):
    """No working C++ compiler for torch.compile on a CPU: say so, and how to turn it off."""
    spec = make_spec(prepared_mnist, epochs=1, compile=True)
    env = {**os.environ, "CXX": "/bin/false", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    cmd = [
        sys.executable,
        "-m",
        "lbgap.training.train",
        "--spec",
        spec_file(tmp_path / "spec", spec),
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert last.startswith("error: torch.compile failed") and last.endswith("set compile: false")
