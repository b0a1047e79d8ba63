"""The papers' published numbers, as data (src/lbgap/reference/papers.yaml)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml


@cache
def papers() -> dict:
    return yaml.safe_load((Path(__file__).parent / "papers.yaml").read_text())


def value(paper: str, table: str, row: str, column: str) -> tuple[float | None, float | None]:
    """The paper's (mean, std) for one cell, or (None, None) where the paper gives none."""
    cell = papers().get(paper, {}).get(table, {}).get(row, {}).get(column)
    return tuple(cell) if cell else (None, None)  # type: ignore[return-value]
