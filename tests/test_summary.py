"""The terminal summary after reproduce_all: read from claims.csv and provenance.csv."""

from __future__ import annotations

import pandas as pd
import pytest

from lbgap.products import summary
from lbgap.products.verdicts import Verdict

CLAIMS = [
    # claim, paper, case, a, b, a_mean, b_mean, a_paper_mean, b_paper_mean, verdict
    ("keskar2017-gap", "keskar2017", "F1 (Fashion-MNIST)", "LB", "SB", 86.12, 88.9, 98.03, 98.22,
     Verdict.REPRODUCED),
    ("keskar2017-gap", "keskar2017", "C1", "LB", "SB", None, None, 77.26, 80.04, Verdict.NOT_RUN),
    ("smith2018-match", "smith2018", "F1 analog", "increasing batch", "decaying LR", 97.5, 97.25,
     None, None, Verdict.INCONCLUSIVE),
    ("smith2018-updates", "smith2018", "F1 analog", "increasing batch", "decaying LR", 600.0,
     1500.0, None, None, Verdict.NOT_REPRODUCED),
]  # fmt: skip
COLUMNS = ["claim", "paper", "case", "a", "b", "a_mean", "b_mean", "a_paper_mean",
           "b_paper_mean", "verdict"]  # fmt: skip
COMPUTE = {"jobs": 14, "wall_h": 0.75, "cpu_h": 1.5, "gpu_h": 0.25}


@pytest.fixture
def files(tmp_path):
    claims = pd.DataFrame([[*r[:-1], str(r[-1])] for r in CLAIMS], columns=COLUMNS)
    claims.to_csv(tmp_path / "claims.csv", index=False)
    prov = [("code", "commit", "abc"), ("compute", "smith2018 wall_h", 0.5)]
    prov += [("compute", f"total {k}", v) for k, v in COMPUTE.items()]
    pd.DataFrame(prov, columns=["section", "item", "value"]).to_csv(
        tmp_path / "provenance.csv", index=False
    )
    return tmp_path


def test_summary_counts_verdicts_and_quotes_the_numbers(files):
    out = summary.text(files / "claims.csv", files / "provenance.csv", "i.html", "r.html", 3725)
    print(out)  # what a user sees (pytest -s)
    lines = out.splitlines()
    counts = [sum(r[-1] == v for r in CLAIMS) for v in Verdict]
    assert (
        f"Claims ({len(CLAIMS)} cases): "
        + ", ".join(f"{n} {v}" for n, v in zip(counts, Verdict, strict=True))
        in lines
    )
    for claim, _, case, a, b, am, bm, ap, bp, verdict in CLAIMS:
        shown = [ln for ln in lines if ln.strip().startswith(f"{claim} {case}:")]
        if verdict == Verdict.NOT_RUN:
            assert not shown
            continue
        quoted = f" (paper {ap:.4g} vs {bp:.4g})" if ap else ""
        assert shown == [f"    {claim} {case}: {a} {am:.4g} vs {b} {bm:.4g}{quoted}: {verdict}"]
    assert "  keskar2017 (1 not run at this scale)" in lines and "  smith2018" in lines
    hours = [f"{COMPUTE[k]:.2f}" for k in ("wall_h", "cpu_h", "gpu_h")]
    assert lines[-4] == (
        f"Compute (all {COMPUTE['jobs']} benchmarked jobs): {hours[0]} h of jobs, "
        f"{hours[1]} CPU-hours, {hours[2]} GPU-hours"
    )
    assert lines[-3:] == [
        "This run's wall time: 1h02m",
        "Overview: i.html",
        "Report: r.html not built: make report",
    ]


def test_report_line_says_whether_the_report_exists_or_comes_next(files):
    args = (
        files / "claims.csv",
        files / "provenance.csv",
        str(files / "i.html"),
        str(files / "r.html"),
    )
    pending = summary.text(*args, report_pending=True, shown_from=str(files))
    assert pending.splitlines()[-2:] == ["Overview: i.html", "Report: r.html (written next)"]
    (files / "r.html").write_text("<html></html>")
    assert summary.text(*args, shown_from=str(files)).splitlines()[-1] == "Report: r.html"


def test_command_line_needs_the_run_s_files(files, capsys):
    assert summary.main(["--claims", str(files / "missing.csv")]) == 1
    assert "run reproduce_all first" in capsys.readouterr().err
    argv = ["--claims", str(files / "claims.csv"), "--provenance", str(files / "provenance.csv")]
    assert summary.main(argv) == 0
    assert "Claims (4 cases)" in capsys.readouterr().out
