"""Build one product of a paper from its plan: the workflow's table and figure jobs.

`python -m lbgap.products.papers table --paper P --name N --plan plan.json --csv C --md M`
`python -m lbgap.products.papers figure --paper P --name N --plan plan.json --png G --pdf F`

The command lives with the papers (the products stage), above `lbgap.products.tables` and
`lbgap.products.figures`, which hold only what the papers' builders share and never import a paper.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lbgap.io import read_json
from lbgap.products.papers import product


def build_table(args: argparse.Namespace, plan: dict) -> None:
    from lbgap.products.tables import write_table

    build = product(args.paper, args.name).build
    data, view = build(plan)
    title = (build.__doc__ or args.name).strip().splitlines()[0]
    write_table(data, view, title, plan, args.csv, args.md)
    print(view.to_markdown(index=False))


def build_figure(args: argparse.Namespace, plan: dict) -> None:
    from lbgap.products.figures import save

    fig = product(args.paper, args.name).build(plan)
    if plan.get("standins"):  # never to be read as a result
        fig.text(0.005, 0.005, "stand-in data: a rehearsal of the code", color="red", fontsize=7)
    save(fig, args.png, args.pdf)
    print(f"wrote {Path(args.png).name} and {Path(args.pdf).name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build one table or figure from finished runs.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    outputs = {"table": ("--csv", "--md"), "figure": ("--png", "--pdf")}
    for kind, files in outputs.items():
        sub = kinds.add_parser(kind, help=f"one {kind} of a paper")
        sub.add_argument("--paper", required=True)
        sub.add_argument("--name", required=True)
        sub.add_argument("--plan", required=True, help="the paper's plan.json")
        for flag in files:
            sub.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    plan = read_json(args.plan)
    (build_table if args.kind == "table" else build_figure)(args, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
