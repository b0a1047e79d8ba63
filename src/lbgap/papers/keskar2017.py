"""Keskar et al. 2017: SB vs LB accuracy (Table 2) and training curves."""

from __future__ import annotations

import pandas as pd

from lbgap import results
from lbgap.figures import training_curves
from lbgap.papers import Product, reference
from lbgap.tables import format_paper

PAPER = "keskar2017"


def table2(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test accuracy (%) of SB and LB (Keskar et al. Table 2), ours beside the paper's."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        row = {"network": name, "dataset": exp["dataset"], "note": exp["skip"] or ""}
        view = {"Network": exp["label"]}
        for split in ("train", "test"):
            for regime in ("SB", "LB"):
                key = f"{split}_{regime}"
                p_mean, p_std = reference(PAPER, "table2", name, key)
                dirs = exp["variants"].get(regime, {}).get("dirs", [])
                stats, diverged = results.final_metric(dirs, f"{split}_acc")
                row |= {
                    f"{key}_mean": stats["mean"],
                    f"{key}_std": stats["std"],
                    f"{key}_n": stats["n"],
                    f"{key}_diverged": diverged,
                    f"{key}_paper_mean": p_mean,
                    f"{key}_paper_std": p_std,
                }
                view[f"{split} {regime} (ours)"] = (
                    results.format_cell(stats, diverged) if dirs else "not run"
                )
                view[f"{split} {regime} (paper)"] = format_paper(p_mean, p_std)
        view["Note"] = exp["skip"] or f"scale={plan['scale']}"
        rows.append(row)
        shown.append(view)
    return pd.DataFrame(rows), pd.DataFrame(shown)


PRODUCTS = [
    Product("table2", "table", table2),
    Product("training_curves", "figure", training_curves),
]
