"""Table cells shared by the paper modules: one variant's numbers, ours and the paper's.

Every table names its CSV columns the same way, `{variant}_{quantity}_{stat}`: `_mean`, `_std`
(sample std over seeds), `_n` (finished seeds) and `_values` (per seed, `;`-separated) for
ours, `_paper_mean` and `_paper_std` for the paper's, and `{variant}_diverged` for seeds that
diverged. A reader (the claims) can then compare variants of one row, or run a t-test, without
knowing the paper.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.products import results
from lbgap.products.papers import reference
from lbgap.products.tables import format_paper


def experiment_columns(name: str, exp: dict) -> dict:
    """The first CSV columns of a table row: which experiment, network and dataset it is."""
    return {"experiment": name, "network": exp["network"], "dataset": exp["dataset"]}


def experiment_notes(plan: dict) -> list[str]:
    """The config's note of each experiment that has one, for a table's notes: where a row
    departs from the paper, the reader learns it beside the numbers."""
    return [f"{e['label']}: {e['note'].strip()}" for e in plan["experiments"].values() if e["note"]]


def dirs_of(exp: dict, variant: str) -> list[str]:
    """Run folders of one variant of a plan's experiment (none if absent or not run)."""
    return exp["variants"].get(variant, {}).get("dirs", [])


def batch_of(exp: dict, variant: str) -> int | None:
    """The (initial) batch size of one variant of a plan's experiment (None if absent)."""
    return exp["variants"].get(variant, {}).get("batch_size")


def measured(
    dirs: list[str], prefix: str, key: str = "test_acc", error: bool = False
) -> tuple[dict, str]:
    """Our final `key` over seeds as CSV columns (with the per-seed values, `;`-separated, in
    seed order) and a Markdown cell.

    With `error`, the quantity is 100 - accuracy (top-1 error %, as Goyal et al. report it);
    the std is the same either way.
    """
    stats, diverged = results.final_metric(dirs, key)
    if error and stats["n"]:
        stats = {**stats, "mean": 100.0 - stats["mean"]}
    runs = results.summaries(dirs) if dirs else []
    seeds = [r["final"][key] for r in runs if r["status"] == "completed"]
    seeds = [100.0 - v if error else v for v in seeds if v is not None]
    cols = {
        f"{prefix}_mean": stats["mean"],
        f"{prefix}_std": stats["std"],
        f"{prefix}_n": stats["n"],
        f"{prefix}_values": ";".join(f"{v:.4f}" for v in seeds),
    }
    cell = results.format_cell(stats, diverged) if dirs else "not run"
    return cols, cell


def diverged(dirs: list[str]) -> int:
    return sum(s["status"] == "diverged" for s in results.summaries(dirs)) if dirs else 0


def quoted(paper: str, table: str, row: str, column: str, prefix: str) -> tuple[dict, str]:
    """The paper's (mean, std) for one cell as CSV columns and a Markdown cell ('-' if none)."""
    mean, std = reference(paper, table, row, column)
    return {f"{prefix}_paper_mean": mean, f"{prefix}_paper_std": std}, format_paper(mean, std)


def beside_paper(
    dirs: list[str],
    variant: str,
    quantity: str,
    paper_row: tuple[str, str, str],
    error: bool = False,
) -> tuple[dict, str, str]:
    """One variant's final `quantity` beside the paper's, the cell every paper table starts from.

    `paper_row` is (paper, table, row) in reference.yaml; the paper's column is the variant.
    Returns the CSV columns (ours, the seeds that diverged, the paper's), our Markdown cell and
    the paper's. With `error`, ours is 100 - accuracy (see `measured`).
    """
    prefix = f"{variant}_{quantity}"
    ours, cell = measured(dirs, prefix, error=error)
    paper, paper_cell = quoted(*paper_row, variant, prefix)
    return ours | {f"{variant}_diverged": diverged(dirs)} | paper, cell, paper_cell


def run_totals(dirs: list[str]) -> dict:
    """Epochs, parameter updates and samples of a variant's runs (equal over seeds)."""
    runs = results.summaries(dirs) if dirs else []
    out = {}
    for key in ("epochs", "updates", "samples"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = int(round(float(np.mean(values)))) if values else None
    return out


def median_column(dirs: list[str], column: str) -> float | None:
    """Median over every epoch and seed of a metrics.csv column's finite values (None if none)."""
    values = []
    for d in dirs:
        frame = pd.read_csv(layout.metrics(d))
        if column in frame:
            col = frame[column].astype(float)
            values += col[np.isfinite(col)].tolist()
    return float(np.median(values)) if values else None


def spec_of(dirs: list[str]) -> RunSpec | None:
    """The resolved spec of a variant's first run (equal over seeds but for the seed)."""
    return results.run_spec(dirs[0]) if dirs else None


def fmt_int(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{int(value):,}"
