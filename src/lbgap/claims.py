"""The claims table: each paper's central claims, checked on our results.

A claim reads one table's CSV (reports/tables/<paper>_<table>.csv), so it does not depend on how
the analysis computed it. Each side (A, B) names its columns in that CSV: `<column>_mean`,
`<column>_std`, `<column>_n` (or a plain `<column>`, e.g. a count of updates) and the paper's
`<column>_paper_mean` / `<column>_paper_std` (or `<column>_paper`). The per-seed values for the
test come from a `<column>_values` column (numbers separated by `;`) when the table has one,
else from the runs' summary.json (the side's `variant` and `metric`), else the test runs on the
table's mean, std and n. A claim is judged once per table row (e.g. per network).
Verdicts follow lbgap.verdicts. A claim whose table or row is missing at this scale says so
and shows no number.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lbgap import htmlview, verdicts
from lbgap.io import write_text
from lbgap.tables import data_note
from lbgap.verdicts import Rule, Side, Verdict, greater, less, within
from lbgap.words import plural


@dataclass(frozen=True)
class Column:
    """One side of a claim: its label, its column prefix in the table, where its seeds are."""

    label: str
    column: str
    variant: str | None = None  # the run variant whose summary.json holds the per-seed values
    metric: str | None = None  # key in summary.json, dotted: "final.test_acc", "updates"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    statement: str
    table: str  # the product name: reads reports/tables/<paper>_<table>.csv
    a: Column
    b: Column
    rule: Rule
    key: str = "experiment"  # the column that names a row (a case): the plan's experiment
    unit: str = "points"
    # A claim true by construction (the schedule fixes it) counts only together with the claim
    # it serves: its verdict is that claim's, case by case, and the table says so.
    requires: str | None = None

    @property
    def table_file(self) -> str:
        return f"reports/tables/{self.paper}_{self.table}.csv"


ACC = "final.test_acc"

# The columns are the wiring to each table (lbgap.papers.cells names them
# `{variant}_{quantity}`): change them here if a table names them differently. Without
# `variant`/`metric` the test runs on the table's mean, std and n.
CLAIMS: list[Claim] = [
    Claim(
        "keskar2017-gap",
        "keskar2017",
        "LB test accuracy below SB (the generalization gap)",
        "table2",
        Column("LB", "test_LB", variant="LB", metric=ACC),
        Column("SB", "test_SB", variant="SB", metric=ACC),
        less(),
        key="network",
    ),
    Claim(
        "keskar2017-sharpness",
        "keskar2017",
        # 5x: the paper's own Table 3 ranges from 8.7x (C3) to 223x (F2) at eps 1e-3, so a
        # 10x rule failed one of the paper's rows (tests/test_claims.py checks every claim on
        # the paper's numbers).
        "LB sharpness phi (eps 1e-3, full space) at least 5x SB phi",
        "table3",
        Column("LB", "LB_phi_1e-3"),
        Column("SB", "SB_phi_1e-3"),
        greater(ratio=5.0),
        unit="x",
    ),
    Claim(
        "hoffer2017-gap",
        "hoffer2017",
        "LB test accuracy below SB",
        "table1",
        Column("LB", "LB_acc", variant="LB", metric=ACC),
        Column("SB", "SB_acc", variant="SB", metric=ACC),
        less(),
    ),
    Claim(
        "hoffer2017-ra",
        "hoffer2017",
        "+RA closes the gap: test accuracy within 1 point of SB (or above)",
        "table1",
        Column("+RA", "+RA_acc", variant="+RA", metric=ACC),
        Column("SB", "SB_acc", variant="SB", metric=ACC),
        greater(margin=-1.0),
    ),
    Claim(
        "goyal2017-warmup",
        "goyal2017",
        "Gradual warmup at 8k: top-1 error within 0.5 points of the baseline",
        "table1",
        Column("gradual warmup", "gradual_warmup_err"),
        Column("baseline", "baseline_err"),
        within(0.5),
    ),
    Claim(
        "goyal2017-no-warmup",
        "goyal2017",
        "No warmup at 8k: top-1 error higher than the baseline",
        "table1",
        Column("no warmup", "no_warmup_err"),
        Column("baseline", "baseline_err"),
        greater(),
    ),
    Claim(
        "smith2018-match",
        "smith2018",
        "Increasing the batch matches decaying the LR: test accuracy within 0.5 points",
        "table",
        Column("increasing batch", "increasing_batch_acc", "increasing_batch", ACC),
        Column("decaying LR", "decaying_lr_acc", "decaying_lr", ACC),
        within(0.5),
    ),
    Claim(
        "smith2018-updates",
        "smith2018",
        "Increasing the batch needs fewer parameter updates than decaying the LR, at the same "
        "accuracy (the count is fixed by the schedule: true by construction)",
        "table",
        Column("increasing batch", "increasing_batch_updates"),
        Column("decaying LR", "decaying_lr_updates"),
        less(exact=True),
        unit="updates",
        requires="smith2018-match",
    ),
]


# ---------------------------------------------------------------- reading the inputs
def _num(row: pd.Series, name: str) -> float | None:
    value = row.get(name)
    if value is None or isinstance(value, str) or math.isnan(float(value)):
        return None
    return float(value)


def seed_values(plan: dict | None, experiment: str, col: Column) -> tuple[float, ...]:
    """Per-seed values of a side from its runs' summary.json (completed runs only)."""
    if plan is None or col.variant is None or col.metric is None:
        return ()
    exp = plan["experiments"].get(experiment, {})
    values = []
    for d in exp.get("variants", {}).get(col.variant, {}).get("dirs", []):
        path = Path(d) / "summary.json"
        if not path.exists():
            continue
        value: object = json.loads(path.read_text())
        if value.get("status") != "completed":
            continue
        for part in col.metric.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None and math.isfinite(float(value)):
            values.append(float(value))
    return tuple(values)


def side(row: pd.Series, col: Column, plan: dict | None, experiment: str) -> tuple[Side, Side]:
    """Ours and the paper's side from one table row (`<column>_mean`, or `<column>` itself)."""
    if isinstance(row.get(f"{col.column}_values"), str):
        values = tuple(float(v) for v in row[f"{col.column}_values"].split(";") if v.strip())
    else:
        values = seed_values(plan, experiment, col)
    mean = _num(row, f"{col.column}_mean")
    if mean is None and f"{col.column}_mean" not in row:
        mean = _num(row, col.column)
    n = _num(row, f"{col.column}_n")
    n = int(n) if n is not None else (len(values) or int(mean is not None))
    ours = Side(mean, _num(row, f"{col.column}_std"), n if mean is not None else 0, values)
    p_mean = _num(row, f"{col.column}_paper_mean")
    if p_mean is None:
        p_mean = _num(row, f"{col.column}_paper")  # a quoted number with no std
    paper = Side(p_mean, _num(row, f"{col.column}_paper_std"), int(p_mean is not None))
    return ours, paper


def missing_columns(claim: Claim, table: pd.DataFrame) -> list[str]:
    cols = set(table.columns)
    missing = [] if claim.key in cols else [claim.key]
    for c in (claim.a.column, claim.b.column):
        if f"{c}_mean" not in cols and c not in cols:
            missing.append(f"{c}_mean")
    return missing


# ---------------------------------------------------------------- judging
def _record(claim: Claim, case: str, **fields) -> dict:
    return {
        "claim": claim.id,
        "paper": claim.paper,
        "statement": claim.statement,
        "table": Path(claim.table_file).name,
        "columns": f"{claim.a.column} vs {claim.b.column}",
        "rule": claim.rule.describe(claim.a.label, claim.b.label),
        "case": case,
        "a": claim.a.label,
        "b": claim.b.label,
        **fields,
    }


def _not_run(claim: Claim, case: str, note: str) -> dict:
    return _record(claim, case, a_n=0, b_n=0, verdict=str(Verdict.NOT_RUN), note=note)


def _case_name(row: pd.Series, key: str, plan: dict | None) -> str:
    """The plan's label of the row's experiment (e.g. 'F1 (MNIST)'), else its key."""
    name = str(row[key])
    exp = (plan or {}).get("experiments", {}).get(name)
    if exp and exp.get("label"):
        return exp["label"]
    dataset = row.get("dataset")
    return f"{name} ({dataset})" if isinstance(dataset, str) else name


def evaluate(claim: Claim, table: pd.DataFrame | None, plan: dict | None) -> list[dict]:
    """One record per table row: our and the paper's numbers, effect, p-value, verdict."""
    if table is None:
        return [_not_run(claim, "-", f"table {Path(claim.table_file).name} not produced")]
    if missing := missing_columns(claim, table):
        # Never guess: a claim not wired to its table shows no number (and the tests fail).
        return [_not_run(claim, "-", f"claim not wired to its table: no column {missing}")]
    records = []
    for _, row in table.iterrows():
        experiment = str(row[claim.key])
        ours_a, paper_a = side(row, claim.a, plan, experiment)
        ours_b, paper_b = side(row, claim.b, plan, experiment)
        outcome = verdicts.judge(claim.rule, ours_a, ours_b, (claim.a.label, claim.b.label))
        paper_effect = (
            claim.rule.effect(paper_a.mean, paper_b.mean) if paper_a.ran and paper_b.ran else None
        )
        note = outcome.reason
        if outcome.verdict == Verdict.NOT_RUN:
            skip = row.get("note")
            labels = f"{claim.a.label} and {claim.b.label}"
            note = skip if isinstance(skip, str) and skip else f"no {labels} numbers in this row"
        else:
            for ours in (ours_a, ours_b):
                if ours.values and len(ours.values) != ours.n:
                    values = plural(len(ours.values), "per-seed value")
                    note += f"; {values} but n={ours.n} in the table"
        records.append(
            _record(
                claim,
                _case_name(row, claim.key, plan),
                **_side_fields("a", ours_a, paper_a),
                **_side_fields("b", ours_b, paper_b),
                effect=outcome.effect,
                paper_effect=paper_effect,
                p_value=outcome.p,
                verdict=str(outcome.verdict),
                note=note,
            )
        )
    return records


def _side_fields(prefix: str, ours: Side, paper: Side) -> dict:
    return {
        f"{prefix}_mean": ours.mean,
        f"{prefix}_std": ours.std,
        f"{prefix}_n": ours.n,
        f"{prefix}_seeds": ";".join(f"{v:g}" for v in ours.values),
        f"{prefix}_paper_mean": paper.mean,
        f"{prefix}_paper_std": paper.std,
    }


def by_construction(records: list[dict], claims: list[Claim]) -> list[dict]:
    """A claim true by construction takes, case by case, the verdict of the claim it requires
    when it holds itself; the note says so. Without that claim's case it is not reproduced."""
    verdict_of = {(r["claim"], r["case"]): r["verdict"] for r in records}
    requires = {c.id: c.requires for c in claims if c.requires}
    out = []
    for rec in records:
        needed = requires.get(rec["claim"])
        if needed and rec["verdict"] == str(Verdict.REPRODUCED):
            other = verdict_of.get((needed, rec["case"]), str(Verdict.NOT_RUN))
            if other == str(Verdict.NOT_RUN):
                other = str(Verdict.NOT_REPRODUCED)
            note = f"by construction; counts only with {needed} ({other})"
            rec = {**rec, "verdict": other, "note": f"{note}; {rec['note']}".rstrip("; ")}
        elif needed and rec["verdict"] != str(Verdict.NOT_RUN):
            rec = {**rec, "note": f"by construction; {rec['note']}".rstrip("; ")}
        out.append(rec)
    return out


def build(tables: dict[str, pd.DataFrame], plans: dict[str, dict]) -> pd.DataFrame:
    """All claims' records; `tables` maps a table's file name to its CSV's frame."""
    records = []
    for claim in CLAIMS:
        table = tables.get(Path(claim.table_file).name)
        records += evaluate(claim, table, plans.get(claim.paper))
    return pd.DataFrame(by_construction(records, CLAIMS))


# ---------------------------------------------------------------- writing
def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(mean: float | None, std: float | None, n: int | None, unit: str) -> str:
    """'97.81 ± 0.07 (n=3)'; counts (unit 'updates') as whole numbers."""
    if _missing(mean):
        return "-"
    if unit == "updates":
        return f"{mean:,.0f}"
    text = f"{mean:.2f}" + ("" if _missing(std) else f" ± {std:.2f}")
    return text + (f" (n={n})" if n else "")


def _effect(value: float | None, unit: str) -> str:
    if _missing(value):
        return ""
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:+,.0f} {unit}" if unit == "updates" else f"{value:+.2f} {unit}"


def _pair(rec: dict, g: dict, which: str, unit: str) -> str:
    """Three lines: A, B and the effect, from our (which='') or the paper's ('paper_') numbers."""
    op = "/" if unit == "x" else "-"
    lines = []
    for side in ("a", "b"):
        n = None if which else int(rec[f"{side}_n"])
        stats = (g[f"{side}_{which}mean"], g[f"{side}_{which}std"], n, unit)
        lines.append(f"{rec[side]} {_fmt(*stats)}")
    effect = g["paper_effect" if which else "effect"]
    return "\n".join(lines + [f"{rec['a']} {op} {rec['b']}: {_effect(effect, unit)}"])


def _num_or_none(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _claim_cell(rec: dict) -> str:
    """The claim in words, and its rule (what is computed) below it."""
    rule = rec.get("rule")
    return rec["statement"] + (f"\nrule: {rule}" if isinstance(rule, str) and rule else "")


def view(claims: pd.DataFrame) -> pd.DataFrame:
    """The readable table: one row per claim and case; cases not run are merged per claim.

    The number cells hold three lines (A, B, the effect) separated by newlines.
    """
    units = {c.id: c.unit for c in CLAIMS}
    shown, not_run = [], {}
    for rec in claims.to_dict("records"):
        g = {k: _num_or_none(v) for k, v in rec.items()}
        if rec["verdict"] == str(Verdict.NOT_RUN):
            entry = not_run.setdefault(rec["claim"], (rec, [], []))
            entry[1].append(str(rec["case"]))
            if rec["note"] not in entry[2]:
                entry[2].append(rec["note"])
            continue
        unit = units.get(rec["claim"], "")
        ours = _pair(rec, g, "", unit)
        paper = "-"
        if g["a_paper_mean"] is not None and g["b_paper_mean"] is not None:
            paper = _pair(rec, g, "paper_", unit)
        p = "-" if g["p_value"] is None else f"{g['p_value']:.3g}"
        shown.append([rec, rec["case"], ours, paper, p, rec["verdict"], rec["note"]])
    for rec, cases, notes in not_run.values():
        shown.append([rec, "; ".join(cases), "-", "-", "-", rec["verdict"], "; ".join(notes)])
    order = {c.id: i for i, c in enumerate(CLAIMS)}
    shown.sort(key=lambda r: order.get(r[0]["claim"], len(order)))
    columns = ["Paper", "Claim", "Case", "Ours", "Paper's", "p", "Verdict", "Why"]
    return pd.DataFrame(
        [[r[0]["paper"], _claim_cell(r[0]), *r[1:]] for r in shown], columns=columns
    )


HEADER = (
    "Each row checks one claim of a paper on our runs (A vs B, mean ± std over seeds, n seeds), "
    "beside the paper's own numbers. p: one-sided Welch t-test of the claim over seeds "
    "(equivalence test for 'within' claims), only with at least 3 seeds per side. Verdicts: "
    "**reproduced** (the claim holds on the means and p < 0.05), **inconclusive** (it holds "
    "but p >= 0.05 or too few seeds), **not reproduced** (it fails on the means), **not run at "
    "this scale** (no runs or no table). Rules: `src/lbgap/verdicts.py`."
)


def summary_line(claims: pd.DataFrame) -> str:
    counts = Counter(claims["verdict"])
    return ", ".join(f"{counts.get(str(v), 0)} {v}" for v in Verdict) + " (claim x case)."


NOT_RUN_COLUMNS = ["Paper", "Claim", "Cases", "Why"]


def _split(claims: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checked claims, and the claims (cases) not run at this scale, listed apart."""
    shown = view(claims)
    not_run = shown["Verdict"] == str(Verdict.NOT_RUN)
    skipped = shown[not_run].rename(columns={"Case": "Cases"})[NOT_RUN_COLUMNS]
    return shown[~not_run], skipped


def markdown(claims: pd.DataFrame, scale: str, note: str = "") -> str:
    checked, skipped = (
        t.replace({"\n": "; ", r"\|": r"\|"}, regex=True)  # one line per row, no bare |
        for t in _split(claims)
    )
    text = f"# Claims checked at scale `{scale}`\n\n{note}{HEADER}\n\n"
    text += f"Summary: {summary_line(claims)}\n\n"
    text += (checked.to_markdown(index=False) if len(checked) else "No claim ran.") + "\n"
    if len(skipped):
        text += f"\n## Not run at this scale\n\n{skipped.to_markdown(index=False)}\n"
    return text


def html_body(claims: pd.DataFrame, scale: str, level: int = 1, note: str = "") -> str:
    """The claims table as HTML with coloured verdicts, under a heading of `level`."""
    checked, skipped = _split(claims)
    rows = []
    for r in checked.itertuples(index=False):
        badge = f'<span class="verdict {htmlview.verdict_class(r.Verdict)}">{r.Verdict}</span>'
        ours, paper = (htmlview.escape_lines(c) for c in (r.Ours, r[4]))
        rows.append([r.Paper, r.Claim, r.Case, ours, paper, r.p, badge, r.Why])
    body = (
        f"<h{level}>Claims checked at scale <code>{scale}</code></h{level}>\n"
        + (f"<p>{htmlview.inline(note.strip())}</p>\n" if note else "")
        + f"<p>{htmlview.inline(HEADER)}</p>\n"
        f"<p><strong>Summary:</strong> {summary_line(claims)}</p>\n"
    )
    widths = {1: "14em", 2: "8em", 7: "12em"}  # claim, case, why: readable beside the numbers
    body += htmlview.table(list(checked.columns), rows, [3, 4, 6], widths) if rows else ""
    if len(skipped):
        sub = level + 1
        body += f"\n<h{sub}>Not run at this scale</h{sub}>\n"
        body += htmlview.table(NOT_RUN_COLUMNS, skipped.values.tolist())
    return body


def html(claims: pd.DataFrame, scale: str, note: str = "") -> str:
    """A standalone page (the report's landing page inserts it as it is)."""
    return htmlview.page(f"Claims ({scale})", html_body(claims, scale, note=note))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the papers' claims on our tables.")
    parser.add_argument("--plans", required=True, help="JSON: paper -> plan (lbgap.outputs)")
    parser.add_argument("--tables", nargs="*", default=[], help="the tables' CSV files")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--md", required=True)
    parser.add_argument("--html", required=True)
    args = parser.parse_args(argv)
    plans = json.loads(args.plans)
    scale = next(iter(plans.values()))["scale"] if plans else "?"
    note = "".join(sorted({data_note(plan) for plan in plans.values()}))
    tables = {Path(t).name: pd.read_csv(t) for t in args.tables}
    claims = build(tables, plans)
    write_text(args.csv, claims.to_csv(index=False))
    write_text(args.md, markdown(claims, scale, note))
    write_text(args.html, html(claims, scale, note))
    print(view(claims).to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
