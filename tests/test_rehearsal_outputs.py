"""After `make rehearse`: every product of scale=paper was computed, on stand-ins, marked so.

Run by `make rehearse` (marker `rehearsal`), not by `make test`: it reads the finished
rehearsal under rehearsal/.
"""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
from conftest import ROOT

from lbgap.config import matrix
from lbgap.products import outputs

pytestmark = pytest.mark.rehearsal
WORKDIR = ROOT / "rehearsal"
PAPERS = ("keskar2017", "hoffer2017", "goyal2017", "smith2018")


@pytest.fixture(scope="module")
def config(repo_config) -> dict:
    return matrix.prepare_config({**copy.deepcopy(repo_config), "scale": "rehearsal"})


@pytest.mark.parametrize("paper", PAPERS)
def test_every_table_and_figure_of_the_paper_scale_exists(paper):
    missing = [f for f in outputs.files(paper) if not (WORKDIR / f).is_file()]
    assert not missing


def test_the_report_was_built_in_the_rehearsals_folder():
    report = WORKDIR / "reports" / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000


def test_every_paper_run_finished(config):
    runs = matrix.runs(config)
    assert len(runs) == len({(r.paper, r.experiment, r.variant) for r in runs})
    for run in runs:
        summary = json.loads((WORKDIR / run.dir / "summary.json").read_text())
        assert summary["status"] in ("completed", "diverged"), run.dir
        assert summary["spec"]["scale"] == "rehearsal"


@pytest.mark.parametrize("paper", PAPERS)
def test_no_table_row_is_missing_for_lack_of_data(paper):
    for md in (WORKDIR / "reports" / "tables").glob(f"{paper}_*.md"):
        text = md.read_text()
        assert "stand-in data" in text, md.name
        # Rows of the quick scale's analogs say "runs at scale=quick", as at scale=paper.
        for phrase in ("needs ", "runs at scale=small", "runs at scale=paper", "trains only"):
            assert phrase not in text, f"{md.name}: {phrase!r}"
        assert "does not run at this scale" not in text, md.name


def test_every_claim_is_checked():
    claims = pd.read_csv(WORKDIR / "reports" / "tables" / "claims.csv")
    assert set(claims["paper"]) == set(PAPERS)
    not_run = claims[claims["verdict"] == "not run at this scale"]
    assert (not_run["note"] == "runs at scale=quick").all(), not_run[["claim", "case", "note"]]
    checked = claims[claims["verdict"] != "not run at this scale"]
    assert set(checked["claim"]) == set(claims["claim"])
    assert "stand-in data" in (WORKDIR / "reports" / "tables" / "claims.md").read_text()


def test_the_data_were_stand_ins():
    manifests = list((WORKDIR / "data" / "prepared").glob("*_rehearsal.json"))
    assert manifests
    for manifest in manifests:
        record = json.loads(manifest.read_text())
        assert record["standin"] is True and record["official_files"] == "differ"
