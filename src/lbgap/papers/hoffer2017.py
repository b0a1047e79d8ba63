"""Hoffer, Hubara, Soudry 2017: closing the gap with +LR, +GBN, +RA (Table 1), and log-t growth.

Table 1's columns are cumulative (+GBN includes +LR, +RA includes both); the variant names of
config.yaml are the paper's column names. A quick-scale analog row quotes the paper row it
stands for (PAPER_ROW), and its Note says so.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lbgap import figures
from lbgap.papers import Product, run_files
from lbgap.papers.cells import dirs_of, diverged, fmt_int, measured, quoted, run_totals

PAPER = "hoffer2017"
VARIANTS = ("SB", "LB", "+LR", "+GBN", "+RA")
PAPER_ROW = {"F1_analog": "F1"}  # analog experiment -> the paper row it stands for


def table1(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test accuracy (%) of SB, LB, +LR, +GBN, +RA (Hoffer et al. Table 1), ours and the paper's."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        paper_row = PAPER_ROW.get(name, name)
        row = {
            "experiment": name,
            "network": exp["network"],
            "dataset": exp["dataset"],
            "paper_row": paper_row,
            "note": exp["skip"] or "",
        }
        view = {"Network": exp["label"]}
        for v in VARIANTS:
            dirs = dirs_of(exp, v)
            ours, cell = measured(dirs, f"{v}_acc")
            paper, paper_cell = quoted(PAPER, "table1", paper_row, v, f"{v}_acc")
            totals = run_totals(dirs)
            row |= ours | {f"{v}_diverged": diverged(dirs)} | paper
            row |= {
                f"{v}_batch": exp["variants"].get(v, {}).get("batch_size"),
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
        *[f"{e['label']}: {e['note'].strip()}" for e in plan["experiments"].values() if e["note"]],
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
    frames = [pd.read_csv(Path(d) / "steps.csv", usecols=cols) for d in dirs]
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


def weight_distance(plan: dict) -> Figure:
    """||w_t - w_0|| against log t per variant: the paper's 'ultra-slow diffusion' (~ log t)."""
    ran = {n: e for n, e in plan["experiments"].items() if not e["skip"]}
    fig, axes = plt.subplots(1, max(len(ran), 1), figsize=(7.0 * max(len(ran), 1), 4.8))
    axes = np.atleast_1d(axes)
    for ax, exp in zip(axes, ran.values(), strict=False):
        for v in VARIANTS:
            steps = _steps(dirs_of(exp, v))
            if steps.empty:
                continue
            batch = exp["variants"][v]["batch_size"]
            figures._band(ax, steps, "update", "weight_distance", f"{v} (batch {batch})")
        sb = _steps(dirs_of(exp, "SB"))
        if not sb.empty:
            _log_fit(ax, sb)
        ax.set(
            xscale="log",
            xlabel="parameter updates t (log scale)",
            ylabel="||w_t - w_0|| (Euclidean, all weights)",
            title=exp["label"],
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return figures.finish(
        fig,
        axes[0],
        ran,
        f"Distance from initialization, mean ± std over seeds (scale={plan['scale']})\n"
        "the paper: it grows like log t while the LR is constant",
    )


PRODUCTS = [
    Product("table1", "table", table1),
    Product(
        "weight_distance",
        "figure",
        weight_distance,
        inputs=lambda plan: run_files(plan, ("summary.json", "steps.csv")),
    ),
]
