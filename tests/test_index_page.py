"""reports/index.html lists figures that no run fed in one table instead of drawing them blank."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lbgap.products import index_page


def test_figures_not_run_are_one_table_not_blank_pictures(tmp_path):
    claims = tmp_path / "tables/claims.csv"
    claims.parent.mkdir()
    pd.DataFrame(columns=["paper", "claim", "verdict"]).to_csv(claims, index=False)
    ran, blank = Path("reports/figures/p_curves.png"), Path("reports/figures/p_parametric_C1.png")
    page = index_page.build(
        tmp_path / "index.html",
        {"p": [ran, ran.with_suffix(".pdf"), blank, blank.with_suffix(".pdf")]},
        {"p": "Paper"},
        claims,
        [],
        "quick",
        {"p": {str(blank): "needs cifar10: run with scale=small"}},
    )
    assert page.count('class="thumb"') == 1 and "p_curves.png" in page
    assert page.count("Figures not run at this scale") == 1
    table = page[page.index("Figures not run at this scale") :]
    assert "p_parametric_C1" in table and "needs cifar10: run with scale=small" in table
