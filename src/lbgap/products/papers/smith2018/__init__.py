"""Smith et al. 2018: grow the batch instead of decaying the LR (Section 5.1, Figures 1-2).

Variants are the three schedules: `decaying_lr`, `hybrid`, `increasing_batch`. The table gives
final test accuracy and the parameter updates each schedule needed; the figures show the
schedules (LR, batch and the noise scale g) and test accuracy against epochs and updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lbgap.products import figures, results
from lbgap.products.figures import plt
from lbgap.products.papers import Product
from lbgap.products.papers.cells import (
    batch_of,
    beside_paper,
    dirs_of,
    experiment_columns,
    experiment_notes,
    fmt_int,
    quoted,
    run_totals,
    spec_of,
)
from lbgap.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAPER = "smith2018"
SCHEDULES = {
    "decaying_lr": "decaying learning rate",
    "hybrid": "hybrid",
    "increasing_batch": "increasing batch size",
}
# Schedules coincide until their first milestone: line styles keep every one visible.
STYLES = {"decaying_lr": {"ls": "-"}, "hybrid": {"ls": "--"}, "increasing_batch": {"ls": ":"}}


def _final_batch(dirs: list[str]) -> int | None:
    frame = results.metrics(dirs[:1]) if dirs else pd.DataFrame()
    return int(frame["batch"].iloc[-1]) if len(frame) else None


def table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Final test accuracy (%) and parameter updates of the three schedules (Smith et al.)."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        row = experiment_columns(name, exp) | {"note": exp["skip"] or ""}
        for v, schedule in SCHEDULES.items():
            dirs = dirs_of(exp, v)
            cols, cell, paper_cell = beside_paper(dirs, v, "acc", (PAPER, "table", name))
            updates_paper, updates_paper_cell = quoted(
                PAPER, "table", name, f"{v}_updates", f"{v}_updates"
            )
            totals = run_totals(dirs)
            row |= cols | {
                f"{v}_updates": totals["updates"],
                f"{v}_samples": totals["samples"],
                f"{v}_epochs": totals["epochs"],
                f"{v}_initial_batch": batch_of(exp, v),
                f"{v}_final_batch": _final_batch(dirs),
                f"{v}_updates_paper": updates_paper[f"{v}_updates_paper_mean"],
            }
            shown.append(
                {
                    "Network": exp["label"],
                    "Schedule": schedule,
                    "batch (first → last)": (
                        f"{row[f'{v}_initial_batch']} → {row[f'{v}_final_batch']}" if dirs else "-"
                    ),
                    "updates (ours)": fmt_int(totals["updates"]),
                    "test accuracy % (ours)": cell,
                    "test accuracy % (paper)": paper_cell,
                    "updates (paper)": updates_paper_cell,
                    "Note": exp["skip"] or "",
                }
            )
        rows.append(row)
    view = pd.DataFrame(shown)
    view.attrs["notes"] = [
        "Updates: parameter updates over the whole run; every schedule sees the same samples "
        "per epoch. The paper's numbers are left blank ('-') until confirmed against the "
        "paper (a secondary source gives about 94.3-94.4% and about 80k (decaying LR) vs 29k "
        "(increasing batch) updates for the SGD WRN-16-4).",
        *experiment_notes(plan),
    ]
    return pd.DataFrame(rows), view


def _grid(n_rows: int, n_cols: int, width: float = 4.6) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        max(n_rows, 1), n_cols, figsize=(width * n_cols, 3.6 * max(n_rows, 1)), squeeze=False
    )
    return fig, axes


def schedules(plan: dict) -> Figure:
    """The schedules as run: LR, batch size and noise scale g against epochs."""
    ran = figures.ran_experiments(plan)
    fig, axes = _grid(len(ran), 3)
    for (ax_lr, ax_b, ax_g), exp in zip(axes, ran.values(), strict=False):
        for v, schedule in SCHEDULES.items():
            dirs = dirs_of(exp, v)[:1]  # the same schedule for every seed
            frame = results.metrics(dirs)
            if frame.empty:
                continue
            spec = spec_of(dirs)
            momentum = spec.optimizer_settings()["momentum"]
            frame["g"] = frame["lr"] * spec.n_train / (frame["batch"] * (1 - momentum))
            x = np.concatenate([[0], frame["epoch"]])
            for ax, col in ((ax_lr, "lr"), (ax_b, "batch"), (ax_g, "g")):
                y = np.concatenate([[frame[col].iloc[0]], frame[col]])
                ax.plot(x, y, drawstyle="steps-pre", label=schedule, lw=1.6, **STYLES[v])
        ax_lr.set(yscale="log", ylabel="learning rate", title=f"{exp['label']}: learning rate")
        ax_b.set(yscale="log", ylabel="batch size (samples)", title="batch size")
        ax_g.set(
            yscale="log",
            ylabel="g = eps N / (B (1 - m))",
            title="noise scale g (equal for all three)",
        )
        for ax in (ax_lr, ax_b, ax_g):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    return figures.finish(
        fig, axes[0, 0], ran, f"Smith et al. schedules as run (scale={plan['scale']})"
    )


def accuracy_curves(plan: dict) -> Figure:
    """Test accuracy against epochs and against parameter updates, per schedule."""
    ran = figures.ran_experiments(plan)
    fig, axes = _grid(len(ran), 2, width=5.6)
    for (ax_e, ax_u), exp in zip(axes, ran.values(), strict=False):
        for v, schedule in SCHEDULES.items():
            frame = results.metrics(dirs_of(exp, v))
            if frame.empty:
                continue
            label = f"{schedule} ({plural(frame['seed'].nunique(), 'seed')})"
            figures._band(ax_e, frame, "epoch", "test_acc", label, **STYLES[v])
            figures._band(ax_u, frame, "updates", "test_acc", label, **STYLES[v])
        ax_e.set(xlabel="epoch", title=f"{exp['label']}: vs epochs")
        ax_u.set(xlabel="parameter updates", title=f"{exp['label']}: vs updates")
        for ax in (ax_e, ax_u):
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
    return figures.finish(
        fig,
        axes[0, 0],
        ran,
        f"Test accuracy, mean ± std over seeds (scale={plan['scale']})\nthe paper: the three "
        "schedules reach equivalent accuracy, growing the batch with fewer updates",
    )


PRODUCTS = [
    Product("table", "table", table),
    Product("schedules", "figure", schedules),
    Product("test_accuracy", "figure", accuracy_curves),
]
