"""The literature table: ResNet-50 ImageNet records as the teams reported them (quoted, not run).

Not a paper of the matrix: its numbers come from src/lbgap/products/papers/reference.yaml, and a
cell we could not confirm against its source stays blank rather than being guessed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from lbgap.io import read_yaml, write_text

REFERENCE = Path(__file__).parent / "papers" / "reference.yaml"
COLUMNS = ("team", "time", "time_minutes", "batch", "hardware", "top1")


def records(reference: str | Path = REFERENCE) -> list[dict]:
    return read_yaml(reference)["literature"]["imagenet_records"]


def table(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numbers for the CSV (blank where unconfirmed) and a Markdown view that says so."""
    data = pd.DataFrame([{k: r.get(k) for k in COLUMNS} for r in rows], columns=list(COLUMNS))
    data["unconfirmed"] = [";".join(k for k in COLUMNS if r.get(k) is None) for r in rows]
    view = pd.DataFrame(
        {
            "Team (quoted)": data["team"],
            "Time": data["time"].fillna(""),
            "Minibatch": [f"{int(b):,}" if pd.notna(b) else "" for b in data["batch"]],
            "Hardware": data["hardware"].fillna(""),
            "Top-1 accuracy %": [f"{a:.2f}" if pd.notna(a) else "" for a in data["top1"]],
        }
    )
    return data, view


def markdown(view: pd.DataFrame, blanks: int) -> str:
    return (
        "# ResNet-50 on ImageNet: training-time records reported in the literature\n\n"
        "**Quoted, not reproduced**: these numbers are the teams' own, as collected by the "
        "survey; this pipeline did not run them. Time is wall-clock training time as reported "
        "(`time_minutes` in the CSV: 'under 30 min' is written as its bound, 30).\n\n"
        + view.to_markdown(index=False)
        + f"\n\nBlank cells ({blanks}): values we could not confirm against the cited paper are "
        "left blank until someone does (column `unconfirmed` of the CSV names them).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the quoted ImageNet records table.")
    parser.add_argument("--reference", default=str(REFERENCE))
    parser.add_argument("--csv", required=True)
    parser.add_argument("--md", required=True)
    args = parser.parse_args(argv)
    data, view = table(records(args.reference))
    blanks = int(data[list(COLUMNS)].isna().sum().sum())
    write_text(args.csv, data.to_csv(index=False))
    write_text(args.md, markdown(view, blanks))
    print(view.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
