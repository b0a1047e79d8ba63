"""Tables: our numbers beside the papers', as CSV (numbers) and Markdown (for reading)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import pandas as pd

from lbgap import reference, results
from lbgap.io import write_text


def _fmt_paper(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def keskar2017_table2(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test accuracy of SB and LB (Keskar et al. Table 2), ours beside the paper's."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        row = {"network": name, "dataset": exp["dataset"], "note": exp["skip"] or ""}
        view = {"Network": exp["label"]}
        for split in ("train", "test"):
            for regime in ("SB", "LB"):
                key = f"{split}_{regime}"
                p_mean, p_std = reference.value(plan["paper"], "table2", name, key)
                dirs = exp["variants"].get(regime, {}).get("dirs", [])
                stats, diverged = (
                    results.final_metric(dirs, f"{split}_acc")
                    if dirs
                    else ({"mean": None, "std": None, "n": 0}, 0)
                )
                row |= {
                    f"{key}_mean": stats["mean"],
                    f"{key}_std": stats["std"],
                    f"{key}_n": stats["n"],
                    f"{key}_diverged": diverged,
                    f"{key}_paper_mean": p_mean,
                    f"{key}_paper_std": p_std,
                }
                ours = results.format_cell(stats, diverged) if dirs else "not run"
                view[f"{split} {regime} (ours)"] = ours
                view[f"{split} {regime} (paper)"] = _fmt_paper(p_mean, p_std)
        view["Note"] = exp["skip"] or f"scale={plan['scale']}"
        rows.append(row)
        shown.append(view)
    return pd.DataFrame(rows), pd.DataFrame(shown)


TABLES: dict[str, Callable[[dict], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "keskar2017_table2": keskar2017_table2,
}


def render_markdown(view: pd.DataFrame, title: str, plan: dict) -> str:
    header = (
        f"# {title}\n\nScale: `{plan['scale']}`. Accuracy in %, mean ± std over seeds; "
        "(paper) columns quote the paper, (ours) columns are computed by this pipeline.\n\n"
    )
    return header + view.to_markdown(index=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build one table from finished runs.")
    parser.add_argument("--name", required=True, choices=sorted(TABLES))
    parser.add_argument("--plan", required=True, help="the paper's plan as JSON text")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--md", required=True)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan)
    data, view = TABLES[args.name](plan)
    write_text(args.csv, data.to_csv(index=False))
    title = (TABLES[args.name].__doc__ or args.name).strip().splitlines()[0]
    write_text(args.md, render_markdown(view, title, plan))
    print(view.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
