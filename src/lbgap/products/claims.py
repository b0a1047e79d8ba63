"""The claims table: each paper's central claims, checked on our results.

Each paper declares its claims beside its tables (lbgap.products.papers.<paper>.claims, with
the types of lbgap.products.verdicts); this module judges and renders them all alike.

A claim reads one table's CSV (reports/tables/<paper>_<table>.csv), so it does not depend on how
the analysis computed it. Each side (A, B) names its columns in that CSV: `<column>_mean`,
`<column>_std`, `<column>_n` (or a plain `<column>`, e.g. a count of updates) and the paper's
`<column>_paper_mean` / `<column>_paper_std` (or `<column>_paper`). The per-seed values for the
test come from a `<column>_values` column (numbers separated by `;`) when the table has one,
else from the runs' summary.json (the side's `variant` and `metric`), else the test runs on the
table's mean, std and n. A claim is judged once per table row (e.g. per network).
Verdicts follow lbgap.products.verdicts. A claim whose table or row is missing at this scale says so
and shows no number.

A diverged seed is a result, not a missing one. Each side names the table column counting its
diverged seeds (`{variant}_diverged`); an accuracy or error enters them at chance level of the
row's dataset (accuracy 100 / classes %, error 100 minus that), so they count against a claim
or, where divergence is the paper's point (no warmup at 8k), for it; a quantity with no value
for a diverged run (phi, updates) counts them against the claim (lbgap.products.verdicts). The
claims table shows how many seeds diverged per side.

A claim about minima both sides reach (Keskar et al. trained until the loss stopped improving)
names the sides' final training accuracy and loss (`Fit`). Where A's are clearly worse than B's
(`undertrained`: accuracy more than UNDERTRAINED_ACC points below, or loss more than
UNDERTRAINED_LOSS above), the row is flagged and the claim there is at best inconclusive.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lbgap.config import layout
from lbgap.config.datasets import DATASET_TITLES, DATASETS
from lbgap.io import write_text
from lbgap.products import htmlview, outputs, verdicts
from lbgap.products.papers.goyal2017 import claims as goyal2017_claims
from lbgap.products.papers.hoffer2017 import claims as hoffer2017_claims
from lbgap.products.papers.keskar2017 import claims as keskar2017_claims
from lbgap.products.papers.smith2018 import claims as smith2018_claims
from lbgap.products.tables import data_note
from lbgap.products.verdicts import Claim, Column, Side, Verdict
from lbgap.words import plural

# A's training fit is clearly worse than B's when its final training accuracy is more than this
# many points below B's: the paper's own Table 2 has LB at most 1.64 points below SB (F2, whose
# LB std is 2.08), which must not count as under-trained ...
UNDERTRAINED_ACC = 2.0
# ... or its final training loss (mean cross-entropy, nats per sample) more than this above
# B's: the correct class's mean probability a tenth lower (e^-0.1 = 0.90).
UNDERTRAINED_LOSS = 0.1

# Every paper's own claims first, then later work's, paper by paper (the claims table's order).
CLAIMS: list[Claim] = [
    *keskar2017_claims.CLAIMS,
    *hoffer2017_claims.CLAIMS,
    *goyal2017_claims.CLAIMS,
    *smith2018_claims.CLAIMS,
    *keskar2017_claims.BEYOND,
    *hoffer2017_claims.BEYOND,
    *goyal2017_claims.BEYOND,
    *smith2018_claims.BEYOND,
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
        path = Path(layout.summary(d))
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


def chance(row: pd.Series, kind: str | None) -> float | None:
    """A diverged seed's value: chance accuracy or error (%) of the row's dataset (None: the
    quantity has none, or the row names no known dataset: the seed then counts against)."""
    dataset = row.get("dataset")
    if kind is None or dataset not in DATASETS:
        return None
    accuracy = 100.0 / DATASETS[dataset].classes
    return accuracy if kind == "accuracy" else 100.0 - accuracy


def diverged_seeds(row: pd.Series, col: Column) -> int:
    count = _num(row, col.diverged) if col.diverged else None
    return int(count or 0)


def side(row: pd.Series, col: Column, plan: dict | None, experiment: str) -> tuple[Side, Side]:
    """Ours (finished seeds) and the paper's side from one table row (`<column>_mean`, or
    `<column>` itself); `with_diverged` adds our diverged seeds."""
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


def with_diverged(ours: Side, row: pd.Series, col: Column) -> Side:
    """Our side with its diverged seeds: at chance level where the quantity has one, else
    counted apart (`Side.diverged`: against the claim, lbgap.products.verdicts)."""
    lost = diverged_seeds(row, col)
    value = chance(row, col.at_chance)
    return ours.with_seeds(value, lost) if value is not None else replace(ours, diverged=lost)


def _fit_columns(claim: Claim) -> tuple[Column, ...]:
    fit = claim.fit
    return () if fit is None else (fit.acc_a, fit.acc_b, fit.loss_a, fit.loss_b)


def missing_columns(claim: Claim, table: pd.DataFrame) -> list[str]:
    cols = set(table.columns)
    missing = [] if claim.key in cols else [claim.key]
    for col in (claim.a, claim.b, *_fit_columns(claim)):
        if f"{col.column}_mean" not in cols and col.column not in cols:
            missing.append(f"{col.column}_mean")
        if col.diverged and col.diverged not in cols:
            missing.append(col.diverged)
    return list(dict.fromkeys(missing))


def undertrained(claim: Claim, row: pd.Series, plan: dict | None, experiment: str) -> str | None:
    """Why A's final training fit is clearly worse than B's in this row (UNDERTRAINED_ACC,
    UNDERTRAINED_LOSS; a diverged seed enters the accuracy at chance), or None."""
    if claim.fit is None:
        return None
    acc_a, acc_b, loss_a, loss_b = (
        with_diverged(side(row, c, plan, experiment)[0], row, c) for c in _fit_columns(claim)
    )
    why = []
    if acc_a.ran and acc_b.ran and acc_a.mean < acc_b.mean - UNDERTRAINED_ACC:
        why.append(
            f"train accuracy {acc_a.mean:.2f} vs {acc_b.mean:.2f}, more than "
            f"{UNDERTRAINED_ACC:g} points below"
        )
    if loss_a.ran and loss_b.ran and loss_a.mean > loss_b.mean + UNDERTRAINED_LOSS:
        why.append(
            f"train loss {loss_a.mean:.3g} vs {loss_b.mean:.3g}, more than "
            f"{UNDERTRAINED_LOSS:g} above"
        )
    if acc_a.diverged:  # no chance level known for this row
        why.append(f"{plural(acc_a.diverged, 'seed')} diverged")
    return f"{claim.fit.acc_a.label} under-trained ({'; '.join(why)})" if why else None


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


def other_data(plan: dict | None, experiment: str) -> str | None:
    """The paper's dataset where the row ran on another one (F1 on Fashion-MNIST at quick)."""
    exp = (plan or {}).get("experiments", {}).get(experiment, {})
    ours, theirs = exp.get("dataset"), exp.get("paper_dataset")
    return DATASET_TITLES.get(theirs, theirs) if ours and theirs and ours != theirs else None


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
        read_a, paper_a = side(row, claim.a, plan, experiment)
        read_b, paper_b = side(row, claim.b, plan, experiment)
        ours_a, ours_b = with_diverged(read_a, row, claim.a), with_diverged(read_b, row, claim.b)
        outcome = verdicts.judge(claim.rule, ours_a, ours_b, (claim.a.label, claim.b.label))
        paper_effect = (
            claim.rule.effect(paper_a.mean, paper_b.mean) if paper_a.ran and paper_b.ran else None
        )
        verdict, note = outcome.verdict, outcome.reason
        flag = undertrained(claim, row, plan, experiment) if verdict != Verdict.NOT_RUN else None
        if verdict == Verdict.NOT_RUN:
            skip = row.get("note")
            labels = f"{claim.a.label} and {claim.b.label}"
            note = skip if isinstance(skip, str) and skip else f"no {labels} numbers in this row"
        else:
            note += _seed_notes(row, ((claim.a, read_a), (claim.b, read_b)))
        other = None if claim.beyond else other_data(plan, experiment)  # later work: none quoted
        if other:
            note = f"{note}; the paper's numbers are on {other}".lstrip("; ")
        if flag:  # the claim is about minima both reach: it cannot hold on this row
            verdict = Verdict.INCONCLUSIVE if verdict == Verdict.REPRODUCED else verdict
            note = f"{flag}: not a gap between minima both reach; {note}"
        records.append(
            _record(
                claim,
                _case_name(row, claim.key, plan),
                **_side_fields("a", ours_a, paper_a, diverged_seeds(row, claim.a)),
                **_side_fields("b", ours_b, paper_b, diverged_seeds(row, claim.b)),
                effect=outcome.effect,
                paper_effect=paper_effect,
                p_value=outcome.p,
                verdict=str(verdict),
                undertrained=flag or "",
                note=note,
            )
        )
    return records


def _seed_notes(row: pd.Series, reads: tuple[tuple[Column, Side], ...]) -> str:
    """What the seeds behind the numbers need said: per-seed values that do not match the
    table's n, and diverged seeds counted at chance level."""
    note = ""
    for col, read in reads:
        if read.values and len(read.values) != read.n:
            note += f"; {plural(len(read.values), 'per-seed value')} but n={read.n} in the table"
        lost, value = diverged_seeds(row, col), chance(row, col.at_chance)
        if lost and value is not None:
            seeds = plural(lost, f"{col.label} seed")
            note += f"; {seeds} diverged, counted at chance {col.at_chance} {value:.2f}"
    return note


def _side_fields(prefix: str, ours: Side, paper: Side, diverged: int) -> dict:
    """A side's record fields; `n` counts the seeds in the mean (diverged ones at chance too)
    and `diverged` every seed that diverged."""
    return {
        f"{prefix}_mean": ours.mean,
        f"{prefix}_std": ours.std,
        f"{prefix}_n": ours.n,
        f"{prefix}_diverged": diverged,
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


def _fmt(mean: float | None, std: float | None, n: int | None, unit: str, diverged: int = 0) -> str:
    """'97.81 ± 0.07 (n=3, 1 diverged)'; counts (unit 'updates') as whole numbers."""
    lost = f"{diverged} diverged" if diverged else ""
    if _missing(mean) or unit == "updates":
        text = "-" if _missing(mean) else f"{mean:,.0f}"
        return text + (f" ({lost})" if lost else "")
    text = f"{mean:.2f}" + ("" if _missing(std) else f" ± {std:.2f}")
    counts = ", ".join(c for c in (f"n={n}" if n else "", lost) if c)
    return text + (f" ({counts})" if counts else "")


def _effect(value: float | None, unit: str) -> str:
    if _missing(value):
        return ""
    if unit == "x":
        return f"{value:.1f}x"
    if unit == "updates":
        return f"{value:+,.0f} {unit}"
    if 0 < abs(value) < 0.005:  # a difference at float rounding (a rescaled network's loss)
        return f"{value:+.1e} {unit}".rstrip()
    return f"{value:+.2f} {unit}".rstrip()


def _pair(rec: dict, g: dict, which: str, unit: str) -> str:
    """Three lines: A, B and the effect, from our (which='') or the paper's ('paper_') numbers."""
    op = "/" if unit == "x" else "-"
    lines = []
    for side in ("a", "b"):
        n = None if which else int(rec[f"{side}_n"])
        diverged = 0 if which else int(g.get(f"{side}_diverged") or 0)
        stats = (g[f"{side}_{which}mean"], g[f"{side}_{which}std"], n, unit, diverged)
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
    "this scale** (no runs or no table). Rules: `src/lbgap/products/verdicts.py`. "
    "A diverged seed is a result: 'k diverged' gives a side's diverged seeds; an accuracy "
    "or error counts them at chance level (in n and the mean), a quantity with none (phi, "
    "updates) counts them against the claim. Keskar's gap is about minima both regimes reach: "
    "where LB's final training "
    f"accuracy is more than {UNDERTRAINED_ACC:g} points below SB's or its training loss more "
    f"than {UNDERTRAINED_LOSS:g} above, the row is flagged 'under-trained' and is at best "
    "inconclusive. Claims of later work (Dinh et al. 2017, Kwon et al. 2021, You et al. 2017) "
    "are checked on the same runs and have no paper numbers beside them; those about one "
    "checkpoint rescaled (the same weights, no seed noise) are decided by the means."
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
    parser.add_argument("--plans", nargs="*", default=[], help="the papers' plan.json")
    parser.add_argument("--tables", nargs="*", default=[], help="the tables' CSV files")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--md", required=True)
    parser.add_argument("--html", required=True)
    args = parser.parse_args(argv)
    plans = outputs.read_plans(args.plans)
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
