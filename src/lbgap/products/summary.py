"""The end of a `reproduce_all` in a few lines: what was found, where to look, what it took.

Everything shown is read from the pipeline's files: the verdicts and our numbers beside the
paper's from reports/tables/claims.csv, the compute (wall, CPU and GPU hours summed from the
runs' benchmark files) from reports/tables/provenance.csv. The workflow prints it from its
`onsuccess` handler; `python -m lbgap.products.summary` prints it again after a run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from lbgap.config import layout
from lbgap.products.verdicts import Verdict
from lbgap.progress import duration
from lbgap.words import plural


def _num(value) -> str:
    """A number as the claims table's CSV holds it, short; '-' where there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.4g}"


def verdict_line(claims: pd.DataFrame) -> str:
    """'Claims: 3 reproduced, 1 inconclusive, ...' over the claims' cases (table rows)."""
    counts = Counter(claims["verdict"])
    parts = [f"{counts.get(str(v), 0)} {v}" for v in Verdict]
    return f"Claims ({plural(len(claims), 'case')}): " + ", ".join(parts)


def headlines(claims: pd.DataFrame) -> list[str]:
    """Per paper, each checked case: our A vs B (the paper's A vs B) and its verdict."""
    lines = []
    for paper, rows in claims.groupby("paper", sort=False):
        ran = rows[rows["verdict"] != str(Verdict.NOT_RUN)]
        skipped = len(rows) - len(ran)
        lines.append(f"  {paper}" + (f" ({skipped} not run at this scale)" if skipped else ""))
        for rec in ran.to_dict("records"):
            ours = f"{rec['a']} {_num(rec['a_mean'])} vs {rec['b']} {_num(rec['b_mean'])}"
            quoted = [_num(rec.get(f"{side}_paper_mean")) for side in ("a", "b")]
            if quoted != ["-", "-"]:
                ours += f" (paper {quoted[0]} vs {quoted[1]})"
            lines.append(f"    {rec['claim']} {rec['case']}: {ours}: {rec['verdict']}")
    return lines


def compute_line(provenance: pd.DataFrame) -> str:
    """The total of provenance's compute section (every benchmarked job of the matrix)."""
    rows = provenance[provenance["section"] == "compute"]
    total = dict(zip(rows["item"], rows["value"], strict=True))
    if "total wall_h" not in total:
        return "Compute: no benchmark files"
    hours = {k: float(total[f"total {k}"]) for k in ("wall_h", "cpu_h", "gpu_h")}
    jobs = int(float(total.get("total jobs", 0)))
    return (
        f"Compute (all {plural(jobs, 'benchmarked job')}): {hours['wall_h']:.2f} h of jobs, "
        f"{hours['cpu_h']:.2f} CPU-hours, {hours['gpu_h']:.2f} GPU-hours"
    )


def text(
    claims_csv: Path,
    provenance_csv: Path,
    index: str,
    report: str,
    wall_s: float | None = None,
    report_pending: bool = False,
    shown_from: str | None = None,
) -> str:
    """The summary. `report_pending`: Snakemake writes the report after this (its
    --report-after-run); `shown_from`: the folder the paths are shown relative to (where the
    run was started, when the scale has a workdir of its own)."""
    claims = pd.read_csv(claims_csv)
    lines = ["", "lbgap: run finished", verdict_line(claims), *headlines(claims)]
    lines.append(compute_line(pd.read_csv(provenance_csv)))
    if wall_s is not None:
        lines.append(f"This run's wall time: {duration(wall_s)}")
    shown = {p: os.path.relpath(p, shown_from) if shown_from else p for p in (index, report)}
    lines.append(f"Overview: {shown[index]}")
    if report_pending:
        lines.append(f"Report: {shown[report]} (written next)")
    elif Path(report).exists():
        lines.append(f"Report: {shown[report]}")
    else:
        lines.append(f"Report: {shown[report]} not built: make report")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What a finished reproduce_all found")
    tables = {name: Path(layout.report_table(name, "csv")) for name in ("claims", "provenance")}
    parser.add_argument("--claims", type=Path, default=tables["claims"])
    parser.add_argument("--provenance", type=Path, default=tables["provenance"])
    parser.add_argument("--index", default=layout.INDEX_HTML)
    parser.add_argument("--report", default=layout.REPORT_HTML)
    args = parser.parse_args(argv)
    for path in (args.claims, args.provenance):
        if not path.exists():
            print(f"error: {path} does not exist; run reproduce_all first", file=sys.stderr)
            return 1
    print(text(args.claims, args.provenance, args.index, args.report), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
