"""Read finished runs back: summaries and per-epoch metrics, aggregated over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.io import read_json
from lbgap.words import plural


def summaries(dirs: list[str]) -> list[dict]:
    return [read_json(layout.summary(d)) for d in dirs]


def run_spec(run_dir: str | Path) -> RunSpec:
    """The spec a finished run was trained with, from its summary.json."""
    path = Path(layout.summary(run_dir))
    return RunSpec.from_summary(read_json(path), path)


def metrics(dirs: list[str]) -> pd.DataFrame:
    """All seeds' per-epoch metrics in one frame, with the seed as a column."""
    frames = []
    for d in dirs:
        frame = pd.read_csv(layout.metrics(d))
        frame["seed"] = run_spec(d).seed
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def aggregate(values: list[float]) -> dict:
    """Mean, sample std (ddof=1, 0 for one seed) and count of finite values."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": np.nan, "std": np.nan, "n": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "n": int(arr.size),
    }


def final_metric(dirs: list[str], key: str) -> tuple[dict, int]:
    """Aggregate of a final metric over seeds, and how many seeds diverged."""
    if not dirs:
        return {"mean": None, "std": None, "n": 0}, 0
    runs = summaries(dirs)
    diverged = sum(r["status"] == "diverged" for r in runs)
    return aggregate([r["final"].get(key) for r in runs if r["status"] == "completed"]), diverged


def format_cell(stats: dict, diverged: int = 0, digits: int = 2) -> str:
    if stats["n"] == 0:
        return f"diverged ({plural(diverged, 'seed')})" if diverged else "-"
    text = f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
    return text + (f" ({diverged} diverged)" if diverged else "")
