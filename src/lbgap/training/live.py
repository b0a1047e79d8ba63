"""A training run's curves while it runs: `metrics_live.csv` and, optionally, TensorBoard.

metrics.csv is written once, when the run ends; the live file holds the same rows so far,
rewritten after every epoch (a resumed run's restored epochs included), so a figure of a
running sweep can be drawn from it (`python -m lbgap.training.live`). It is removed when metrics.csv
is written. TensorBoard event files (`tensorboard: true` in the config) go to the run
folder's `tensorboard/`, for `tensorboard --logdir results`. Neither changes a result.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

from lbgap.config import layout

LIVE_FILE = layout.LIVE_METRICS
TENSORBOARD_DIR = "tensorboard"
CURVES = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "batch", "noise_scale")


def tensorboard_missing() -> str | None:
    """The one-line fix when `tensorboard: true` cannot work here, else None."""
    if importlib.util.find_spec("tensorboard") is None:
        return "tensorboard: true needs the tensorboard package: pip install tensorboard"
    return None


class EpochLog:
    """Writes each finished epoch's row where a reader can see it while the run goes on."""

    def __init__(self, out: Path, tensorboard: bool = False) -> None:
        self.out, self.writer = Path(out), None
        if tensorboard:
            if problem := tensorboard_missing():
                raise ValueError(problem)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / TENSORBOARD_DIR))

    def epoch(self, rows: list[dict]) -> None:
        """After an epoch: every row so far to the live file, the last one to TensorBoard."""
        tmp = self.out / f"{LIVE_FILE}.tmp"
        pd.DataFrame(rows).to_csv(tmp, index=False)
        tmp.replace(self.out / LIVE_FILE)
        if self.writer is not None and rows:
            row = rows[-1]
            for key in CURVES:
                if row.get(key) is not None:
                    self.writer.add_scalar(key, float(row[key]), int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        """The run's metrics.csv is written: the live copy goes."""
        (self.out / LIVE_FILE).unlink(missing_ok=True)
        if self.writer is not None:
            self.writer.close()


def latest_metrics(run_dir: Path) -> pd.DataFrame | None:
    """A run's epochs: metrics.csv when it has ended, else its live file, else None."""
    for name in (layout.METRICS, LIVE_FILE):
        if (Path(run_dir) / name).exists():
            return pd.read_csv(Path(run_dir) / name)
    return None


def sweep(root: Path) -> pd.DataFrame:
    """Every run below `root` (finished or running), one row per epoch, with its folder."""
    dirs = sorted({p.parent for name in (layout.METRICS, LIVE_FILE) for p in root.rglob(name)})
    frames = [
        f.assign(run=str(d.relative_to(root))) for d in dirs if (f := latest_metrics(d)) is not None
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Curves of the runs below a folder, as they run")
    parser.add_argument("root", type=Path, help="e.g. results/keskar2017/F1_batch_sweep")
    parser.add_argument("--metric", default="test_acc", choices=CURVES)
    parser.add_argument("--png", type=Path, required=True)
    args = parser.parse_args(argv)
    frame = sweep(args.root)
    if frame.empty or args.metric not in frame:
        print(f"error: no {args.metric} of a run below {args.root} yet", file=sys.stderr)
        return 1
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run, curve in frame.groupby("run", sort=True):
        ax.plot(curve["epoch"], curve[args.metric], marker=".", label=run)
    ax.set(xlabel="epoch", ylabel=args.metric, title=str(args.root))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"{args.png}: {frame['run'].nunique()} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
