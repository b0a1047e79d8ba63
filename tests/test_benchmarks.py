"""The benchmark scripts run and write their JSON; no timing is asserted (see benchmarks/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def run(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(BENCH / script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


HELP = """
import contextlib, io, runpy, sys
sys.path.insert(0, sys.argv[1])
for script in sys.argv[2:]:
    sys.argv = [script, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_path(script, run_name="__main__")
    assert "usage:" in out.getvalue(), script
    print("ok", script)
"""


def test_every_benchmark_is_a_script_with_help():
    """`python benchmarks/<name>.py --help` for each (one interpreter: torch imports once)."""
    assert {"bench_train_step.py", "bench_sharpness.py", "bench_workflow.py"} <= set(SCRIPTS)
    paths = [str(BENCH / s) for s in SCRIPTS]
    proc = subprocess.run(
        [sys.executable, "-c", HELP, str(BENCH), *paths],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("ok ") == len(SCRIPTS)


def test_train_step_benchmark_writes_its_json(tmp_path):
    out = tmp_path / "train_step.json"
    proc = run(
        "bench_train_step.py", "--cases", "F1@256", "--width", "0.05", "--rounds", "2",
        "--round-seconds", "0.01", "--n-train", "512", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "train_step"
    assert {"torch", "cpu_count", "torch_threads"} <= set(result["machine"])
    case = result["cases"]["F1@256"]
    assert {"ratio", "ratio_wall", "ratio_cpu_time", "met", "target"} <= set(case)
    assert case["ratio"] > 0 and len(case["ratio_wall"]["per_round"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_benchmark_says_it_was_skipped(tmp_path):
    out = tmp_path / "gpu.json"
    proc = run("bench_gpu.py", "--out", str(out))
    assert proc.returncode == 0 and "skipped: no GPU" in proc.stdout
    assert json.loads(out.read_text())["skipped"] is True
    measured = '{"skipped": false, "device_name": "NVIDIA H200"}'
    out.write_text(measured)  # `make bench` on a CPU machine keeps a GPU's measurements
    proc = run("bench_gpu.py", "--out", str(out))
    assert proc.returncode == 0 and "are kept" in proc.stdout and out.read_text() == measured


def test_gpu_benchmark_code_path_on_cpu(tmp_path):
    out = tmp_path / "gpu_cpu.json"
    proc = run(
        "bench_gpu.py", "--device", "cpu", "--configs", "resnet20:cifar10:2",
        "--variants", "fp32", "bf16+channels_last", "--steps", "1", "--warmup", "0",
        "--repeats", "1", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads(out.read_text())["configs"]["resnet20:cifar10:2"]
    assert config["flops_per_step"] > 0
    for variant in ("fp32", "bf16+channels_last"):
        assert config["variants"][variant]["images_per_s"] > 0
        assert config["variants"][variant]["mfu"] is None  # no peak known for a CPU


def test_ddp_benchmark_runs_the_trainer_under_torchrun(tmp_path):
    out = tmp_path / "ddp.json"
    proc = run(
        "bench_ddp.py", "--nprocs", "1", "--steps", "2", "--warmup", "1", "--rounds", "1",
        "--n-train", "512", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "ddp"
    run_1 = result["runs"]["1"][0]
    assert run_1["world_size"] == 1 and run_1["steps"] == 2 and run_1["samples_per_s"] > 0


def test_jpeg_benchmark_writes_its_folder_rates_and_projection(tmp_path):
    """16 JPEGs; the training comparison's code path on the CPU with ResNet-20 at 32 px."""
    out = tmp_path / "jpeg.json"
    proc = run(
        "bench_jpeg.py", "--images", "16", "--size", "32", "--batch", "8", "--rounds", "1",
        "--train-device", "cpu", "--network", "resnet20", "--train-batch", "4",
        "--train-steps", "1", "--warmup", "1", "--workers", "0", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "jpeg" and result["folder"]["train_images"] == 16
    assert 50 < result["folder"]["mean_file_kb"] < 250  # ImageNet's files average ~110 KB
    for side in ("pil", "decode_jpeg_cpu", "worker_share"):
        assert result["per_core"][side]["images_per_cpu_s"]["median"] > 0
    rates = result["training"]["images_per_s"]
    assert set(rates) == {"synthetic", "device_decode", "pil_workers"}
    assert result["training"]["met"] is None  # the target is for a GPU
    plan = result["projection"]
    assert "no GPU in this run" in plan["per_gpu_source"]
    assert plan["hours_by_gpus"]["256"] < plan["hours_by_gpus"]["8"] < plan["hours_by_gpus"]["1"]
    assert plan["cpu_cores_per_gpu"]["pil"] > 0
