"""Shared pieces of the benchmarks: machine facts, alternating timed rounds, JSON results.

Benchmarks compare two sides measured in the same process, alternating their order from round
to round (A B, B A, ...), and report medians with the spread, because a shared machine is noisy:
a ratio taken in one run survives load from other processes far better than absolute numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))  # runnable from a checkout without installing the package

import torch  # noqa: E402

from lbgap.config.run_spec import RunSpec  # noqa: E402


# ---------------------------------------------------------------- command line
def parser(description: str, name: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: where the JSON goes and how many CPU threads."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--out", type=Path, default=RESULTS / f"{name}.json", help="JSON file for the results"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (torch.set_num_threads), the same for every side compared; "
        "1 is what each quick-scale training job uses, and a single thread is not stalled by "
        "another process taking its sibling's core, so ratios stay stable on a shared machine",
    )
    return p


def set_threads(threads: int) -> None:
    """The same intra-op thread count for both sides of a comparison."""
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


# ---------------------------------------------------------------- machine facts
def machine_info() -> dict[str, Any]:
    """What a reader needs to judge the numbers: hardware, software, threads, load."""
    from lbgap.products.provenance import cpu_model

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


# ---------------------------------------------------------------- timing
def sync(device: torch.device | str) -> None:
    """Wait for queued GPU work so that a wall-clock reading covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Timer:
    """Wall and process CPU time of a block; cpu_share < 1 means the CPU was shared."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Timer:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c

    @property
    def cpu_share(self) -> float:
        """Process CPU seconds per wall second per thread (1.0: the threads ran all the time)."""
        return self.cpu / max(self.wall, 1e-12) / max(self.threads, 1)


def alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each side once per round, reversing the order every round; returns values per side.

    Each callable returns one measurement (e.g. samples/s). Reversing the order cancels a drift
    in machine load between the first and the second side of a round.
    """
    names = list(sides)
    values: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            values[name].append(sides[name]())
    return values


def spread(values: list[float]) -> dict[str, float]:
    """Median, extremes and the relative spread (max - min) / median of repeated values."""
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "rel_spread": (max(values) - min(values)) / med if med else float("nan"),
        "n": len(values),
    }


def ratios(a: list[float], b: list[float]) -> dict[str, float]:
    """Per-round ratios a/b (the two sides of one round ran back to back) and their spread."""
    return {
        **spread([x / y for x, y in zip(a, b, strict=True)]),
        "per_round": [x / y for x, y in zip(a, b, strict=True)],
    }


# ---------------------------------------------------------------- data and results
def synthetic_prepared(path: Path, dataset: str, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A prepared-data file like lbgap.data.prepare.prepare writes, with random uint8 images.

    Timing does not depend on pixel values, and this works offline for any shape (CIFAR too).
    """
    from lbgap.data.prepare import dataset_info, save_tensors

    info = dataset_info(dataset)
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randint(0, 256, (n, *info.shape), generator=g, dtype=torch.uint8)
        return x, torch.randint(0, info.classes, (n,), generator=g)

    (train_x, train_y), (test_x, test_y) = split(n_train), split(n_test)
    payload = {
        "dataset": dataset,
        "train_x": train_x,
        "train_y": train_y,
        "test_x": test_x,
        "test_y": test_y,
    }
    save_tensors(path, payload)
    return path


def run_spec(
    network: str,
    dataset: str,
    batch: int,
    data: Path,
    optimizer: dict[str, Any],
    *,
    width: float = 1.0,
    device: str = "cpu",
) -> RunSpec:
    """A run spec like the workflow writes: one epoch of `network` at a constant `batch` and the
    optimizer's LR, with nothing that is not timed (no noise measurement, no checkpoint)."""
    return RunSpec.of(
        {
            "paper": "bench",
            "experiment": network,
            "variant": f"B{batch}",
            "seed": 0,
            "scale": "bench",
            "network": network,
            "dataset": dataset,
            "data": str(data),
            "width": width,
            "ghost_batch": None,
            "optimizer": optimizer,
            "schedule": {
                "base_lr": optimizer["lr"],
                "base_batch": batch,
                "batch_size": batch,
                "epochs": 1,
            },
            "n_train": None,
            "image_size": None,
            "batch_size": batch,
            "augment": False,
            "grad_clip": None,
            "grad_clip_epochs": None,
            "zero_init_residual": False,
            "micro_batch": None,
            "regime_adaptation": False,
            "momentum_correction": True,
            "save_epochs": [],
            "device": device,
            "amp": "fp32",
            "channels_last": False,
            "compile": False,
            "deterministic": True,
            "bn_eval": "running",
            "eval_chunk": 4096,
            "noise_every": 0,
        }
    )


def speed_settings(**keys: Any) -> RunSpec:
    """A spec with these speed settings (amp, channels_last, compile, deterministic), for the
    benchmarks that build a model and its step themselves."""
    base = run_spec("resnet20", "cifar10", 2, Path("unused.pt"), {"name": "sgd", "lr": 0.1})
    return dataclasses.replace(base, **keys)


def write_result(
    path: Path, name: str, payload: dict[str, Any], machine: dict[str, Any] | None = None
) -> Path:
    """benchmarks/results/<name>.json: machine facts (taken at the start), then the numbers."""
    from lbgap.io import write_json

    machine = dict(machine or machine_info())
    machine["load_average_1m_end"] = round(os.getloadavg()[0], 2)
    record = {"benchmark": name, "machine": machine, **payload}
    write_json(path, record)
    print(f"wrote {path}")
    return path


def load_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
