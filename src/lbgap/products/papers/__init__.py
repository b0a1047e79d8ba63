"""One module per paper: the tables and figures it produces and the files each one reads.

A product's builder takes the paper's plan (lbgap.products.outputs.plan) and returns, for a table,
the numbers (CSV) and the view (Markdown); for a figure, a matplotlib Figure. `inputs` lists the
files it reads, so Snakemake can rebuild any single product by its file name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lbgap.config import layout
from lbgap.io import read_yaml


def run_files(plan: dict, names: tuple[str, ...] = (layout.SUMMARY, layout.METRICS)) -> list[str]:
    """Files of every run in the plan (the default inputs of a product)."""
    return [
        f"{d}/{name}"
        for exp in plan["experiments"].values()
        for variant in exp["variants"].values()
        for d in variant["dirs"]
        for name in names
    ]


@dataclass(frozen=True)
class Product:
    name: str
    kind: str  # "table" or "figure"
    build: Callable[[dict], Any]
    inputs: Callable[[dict], list[str]] = field(default=run_files)
    caption: str = ""

    def files(self, paper: str) -> list[str]:
        if self.kind == "table":
            return [layout.table(paper, self.name, ext) for ext in ("csv", "md")]
        return [layout.figure(paper, self.name, ext) for ext in ("png", "pdf")]


def products(paper: str) -> list[Product]:
    """The paper module's PRODUCTS; a paper without a module has none yet."""
    try:
        module = importlib.import_module(f"lbgap.products.papers.{paper}")
    except ModuleNotFoundError:
        return []
    return list(module.PRODUCTS)


def product(paper: str, name: str) -> Product:
    for p in products(paper):
        if p.name == name:
            return p
    known = [p.name for p in products(paper)]
    raise KeyError(f"{paper} has no product {name!r}; known: {known}")


@cache
def _reference() -> dict:
    return read_yaml(Path(__file__).parent / "reference.yaml")


def reference(paper: str, table: str, row: str, column: str) -> tuple[float | None, float | None]:
    """The paper's (mean, std) for one cell, or (None, None) where the paper gives none."""
    cell = _reference().get(paper, {}).get(table, {}).get(row, {}).get(column)
    return (cell[0], cell[1]) if cell else (None, None)
