"""Hoffer, Hubara, Soudry 2017: closing the gap with +LR, +GBN, +RA (Table 1), and log-t growth.

Table 1's columns are cumulative (+GBN includes +LR, +RA includes both); the variant names of
config.yaml are the paper's column names. A quick-scale analog row quotes the paper row it
stands for (PAPER_ROW), and its Note says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lbgap.config import layout
from lbgap.config.networks import NO_BATCH_NORM
from lbgap.products import figures
from lbgap.products.papers import Product, run_files
from lbgap.products.papers.cells import (
    batch_of,
    beside_paper,
    dirs_of,
    experiment_columns,
    experiment_notes,
    fmt_int,
    run_totals,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAPER = "hoffer2017"
VARIANTS = ("SB", "LB", "+LR", "+GBN", "+RA")
PAPER_ROW = {"F1_analog": "F1"}  # analog experiment -> the paper row it stands for
NO_GBN = "n/a: no batch norm in this network, so +GBN is +LR"


def table1(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test accuracy (%) of SB, LB, +LR, +GBN, +RA (Hoffer et al. Table 1), ours and the paper's."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        paper_row = PAPER_ROW.get(name, name)
        row = experiment_columns(name, exp) | {"paper_row": paper_row, "note": exp["skip"] or ""}
        view = {"Network": exp["label"]}
        for v in VARIANTS:
            # Ghost batch norm cannot act without batch norm: its runs would only repeat +LR.
            no_gbn = v == "+GBN" and exp["network"] in NO_BATCH_NORM
            dirs = [] if no_gbn else dirs_of(exp, v)
            cols, cell, paper_cell = beside_paper(dirs, v, "acc", (PAPER, "table1", paper_row))
            cell = NO_GBN if no_gbn else cell
            totals = run_totals(dirs)
            row |= cols | {
                f"{v}_batch": batch_of(exp, v),
                f"{v}_epochs": totals["epochs"],
                f"{v}_updates": totals["updates"],
            }
            view[f"{v} (ours)"] = cell
            view[f"{v} (paper)"] = paper_cell
        view["Note"] = exp["skip"] or _run_note(name, exp, row)
        rows.append(row)
        shown.append(view)
    view = pd.DataFrame(shown)
    view.attrs["notes"] = [
        "Columns are cumulative: +LR = LB with the LR x sqrt(|B_L|/|B_S|); +GBN adds ghost "
        "batch norm; +RA adds regime adaptation (|B_L|/|B_S| times the epochs).",
        *experiment_notes(plan),
    ]
    return pd.DataFrame(rows), view


def _run_note(name: str, exp: dict, row: dict) -> str:
    """Batches, epochs and updates actually run, and which paper row an analog quotes."""
    note = (
        f"SB {row['SB_batch']}, LB {row['LB_batch']}; epochs {row['SB_epochs']} "
        f"(+RA {row['+RA_epochs']}); updates SB {fmt_int(row['SB_updates'])}, "
        f"+RA {fmt_int(row['+RA_updates'])}"
    )
    if name in PAPER_ROW:
        note = f"analog; paper columns quote row {PAPER_ROW[name]}. " + note
    return note


def _steps(dirs: list[str]) -> pd.DataFrame:
    cols = ["update", "lr", "weight_distance"]
    frames = [pd.read_csv(layout.steps(d), usecols=cols) for d in dirs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _log_fit(ax, steps: pd.DataFrame) -> None:
    """a + b log t fitted to SB's first LR phase (before any decay), drawn over that phase.

    The paper's law holds at a constant LR; after a decay the distance flattens by design.
    """
    mean = steps.groupby("update")[["weight_distance", "lr"]].mean()
    decayed = mean.index[mean["lr"] < mean["lr"].iloc[0]]
    end = decayed[0] if len(decayed) else mean.index.max() + 1
    first = mean[mean.index < end]
    if len(first) < 3:
        return
    slope, icpt = np.polyfit(np.log(first.index), first["weight_distance"], 1)
    t = np.geomspace(first.index.min(), first.index.max(), 50)
    ax.plot(
        t, icpt + slope * np.log(t), "k:", lw=1.2, label="a + b log t, fit to SB's first LR phase"
    )
    if len(decayed):
        ax.axvline(end, color="grey", lw=0.8, ls="--", label=f"SB's first LR decay (update {end})")


def _draw_distances(ax, exp: dict) -> None:
    """Each variant's distance from initialization, and the log t law fitted to SB's."""
    for v in VARIANTS:
        steps = _steps(dirs_of(exp, v))
        if steps.empty:
            continue
        batch = exp["variants"][v]["batch_size"]
        figures._band(ax, steps, "update", "weight_distance", f"{v} (batch {batch})")
    sb = _steps(dirs_of(exp, "SB"))
    if not sb.empty:
        _log_fit(ax, sb)


def weight_distance(plan: dict) -> Figure:
    """||w_t - w_0|| against log t per variant: the paper's 'ultra-slow diffusion' (~ log t)."""
    return figures.panel_per_experiment(
        plan,
        _draw_distances,
        (7.0, 4.8),
        f"Distance from initialization, mean ± std over seeds (scale={plan['scale']})\n"
        "the paper: it grows like log t while the LR is constant",
        xscale="log",
        xlabel="parameter updates t (log scale)",
        ylabel="||w_t - w_0|| (Euclidean, all weights)",
    )


PRODUCTS = [
    Product("table1", "table", table1),
    Product(
        "weight_distance",
        "figure",
        weight_distance,
        inputs=lambda plan: run_files(plan, (layout.SUMMARY, layout.STEPS)),
    ),
]
