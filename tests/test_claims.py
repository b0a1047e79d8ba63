"""Verdicts on both sides of every threshold, and claims read from constructed tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lbgap.products import claims, verdicts
from lbgap.products.claims import Claim, Column
from lbgap.products.verdicts import Side, Verdict, greater, judge, less, within

TIGHT = (-0.1, 0.0, 0.1)  # seed noise around a mean: std 0.1
WIDE = (-5.0, 0.0, 5.0)  # std 5: no test can separate means a point apart


def seeds(mean: float, offsets=TIGHT) -> Side:
    return Side.of([mean + o for o in offsets])


# ---------------------------------------------------------------- verdicts
@pytest.mark.parametrize(
    ("rule", "a", "b", "expected"),
    [
        # A below B: clearly below, noisy below, above
        (less(), seeds(97.0), seeds(98.0), Verdict.REPRODUCED),
        (less(), seeds(97.0, WIDE), seeds(98.0, WIDE), Verdict.INCONCLUSIVE),
        (less(), seeds(98.2), seeds(98.0), Verdict.NOT_REPRODUCED),
        # A at least 10x B: 10.5x and 9.5x
        (greater(ratio=10.0), seeds(105.0), seeds(10.0), Verdict.REPRODUCED),
        (greater(ratio=10.0), seeds(95.0), seeds(10.0), Verdict.NOT_REPRODUCED),
        # A not worse than B by more than 1 point: 0.5 below, 1.5 below
        (greater(margin=-1.0), seeds(97.5), seeds(98.0), Verdict.REPRODUCED),
        (greater(margin=-1.0), seeds(96.5), seeds(98.0), Verdict.NOT_REPRODUCED),
        # |A - B| within 0.5: 0.2 apart (either sign), 0.7 apart, 0.2 apart but noisy
        (within(0.5), seeds(23.8), seeds(23.6), Verdict.REPRODUCED),
        (within(0.5), seeds(23.4), seeds(23.6), Verdict.REPRODUCED),
        (within(0.5), seeds(24.3), seeds(23.6), Verdict.NOT_REPRODUCED),
        (within(0.5), seeds(23.8, WIDE), seeds(23.6, WIDE), Verdict.INCONCLUSIVE),
        # |A - B| within 1% of B: 0.5% apart, 2% apart (exact: one number per checkpoint)
        (
            within(0.01, relative=True, exact=True),
            Side(100.5, 0.0, 1),
            Side(100.0, 0.0, 1),
            Verdict.REPRODUCED,
        ),
        (
            within(0.01, relative=True, exact=True),
            Side(0.49, 0.0, 1),
            Side(0.5, 0.0, 1),
            Verdict.NOT_REPRODUCED,
        ),
    ],
)
def test_verdict_on_both_sides_of_each_threshold(rule, a, b, expected):
    assert judge(rule, a, b).verdict == expected


def test_too_few_seeds_is_inconclusive_even_when_the_claim_holds():
    a, b = Side.of([97.0, 97.1]), Side.of([98.0, 98.1])
    outcome = judge(less(), a, b)
    assert outcome.verdict == Verdict.INCONCLUSIVE and outcome.p is None
    assert "fewer than 3 seeds" in outcome.reason
    # ... and a claim that fails on the means is not reproduced with any number of seeds
    assert judge(less(), b, a).verdict == Verdict.NOT_REPRODUCED


@pytest.mark.parametrize("missing", ["a", "b"])
def test_a_side_without_seeds_is_not_run(missing):
    ran = seeds(97.0)
    a, b = (Side(None), ran) if missing == "a" else (ran, Side(None))
    outcome = judge(less(), a, b)
    assert outcome.verdict == Verdict.NOT_RUN
    assert outcome.effect is None and outcome.p is None


def test_exact_quantities_need_no_test():
    fewer, more = Side(29_000.0, 0.0, 1), Side(80_000.0, 0.0, 1)
    assert judge(less(exact=True), fewer, more).verdict == Verdict.REPRODUCED
    assert judge(less(exact=True), more, fewer).verdict == Verdict.NOT_REPRODUCED


def test_seeds_that_all_agree_decide_by_the_means():
    a, b = Side.of([100.0] * 3), Side.of([99.0] * 3)
    outcome = judge(greater(), a, b)
    assert outcome.verdict == Verdict.REPRODUCED and outcome.p is None


def test_p_value_is_one_sided_welch_on_the_transformed_side():
    a, b = [97.0, 97.4, 96.9, 97.2], [98.0, 97.1, 98.6]
    outcome = judge(less(margin=0.2), Side.of(a), Side.of(b))
    expected = stats.ttest_ind(a, np.add(b, 0.2), equal_var=False, alternative="less").pvalue
    student = stats.ttest_ind(a, np.add(b, 0.2), equal_var=True, alternative="less").pvalue
    assert outcome.p == pytest.approx(expected)
    assert not math.isclose(expected, student)  # unequal variances: Welch differs
    # From the summary statistics alone (a table without per-seed values): the same test
    summary = [Side(s.mean, s.std, s.n) for s in (Side.of(a), Side.of(b))]
    assert judge(less(margin=0.2), *summary).p == pytest.approx(expected)


def test_relative_equivalence_scales_the_tolerance_by_b():
    a, b = [101.7, 101.8, 101.9], [100.9, 101.0, 101.1]
    rule = within(0.02, relative=True)
    lower = stats.ttest_ind(a, np.multiply(b, 0.98), equal_var=False, alternative="greater")
    upper = stats.ttest_ind(a, np.multiply(b, 1.02), equal_var=False, alternative="less")
    assert rule.p_value(Side.of(a), Side.of(b)) == pytest.approx(max(lower.pvalue, upper.pvalue))
    assert rule.effect(101.8, 101.0) == pytest.approx(100 * (101.8 / 101.0 - 1))
    assert rule.describe("A", "B") == "A within 2% of B"
    assert not within(0.5).holds(101.8, 101.0) and rule.holds(101.8, 101.0)


def test_equivalence_p_value_is_the_larger_one_sided_test():
    a, b = [23.7, 23.8, 23.9], [23.5, 23.6, 23.7]
    lower = stats.ttest_ind(a, np.subtract(b, 0.5), equal_var=False, alternative="greater")
    upper = stats.ttest_ind(a, np.add(b, 0.5), equal_var=False, alternative="less")
    p = judge(within(0.5), Side.of(a), Side.of(b)).p
    assert p == pytest.approx(max(lower.pvalue, upper.pvalue))


# ---------------------------------------------------------------- claims from tables
GAP = Claim(
    "gap",
    "paperx",
    "LB test accuracy below SB",
    "table2",
    Column("LB", "test_LB", variant="LB", metric="final.test_acc"),
    Column("SB", "test_SB", variant="SB", metric="final.test_acc"),
    less(),
    key="network",
)


def table_row(
    network: str,
    lb: list[float],
    sb: list[float],
    note: str = "",
    diverged: tuple[int, int] = (0, 0),
    train_acc: tuple[float, float] = (99.5, 99.5),
    train_loss: tuple[float, float] = (0.02, 0.02),
) -> dict:
    """A row of Keskar's Table 2 as lbgap.products.papers.keskar2017 writes it: test accuracies per
    seed (finished seeds), and per regime (LB, SB) the diverged seeds and the training fit."""
    row = {"network": network, "dataset": "mnist", "note": note}
    for name, values in (("test_LB", lb), ("test_SB", sb)):
        s = Side.of(values)
        row |= {f"{name}_mean": s.mean, f"{name}_std": s.std, f"{name}_n": s.n}
        row |= {f"{name}_paper_mean": 97.81 if name == "test_LB" else 98.03}
        row |= {f"{name}_paper_std": 0.07}
    for i, regime in enumerate(("LB", "SB")):
        n = len(lb if regime == "LB" else sb)
        for split in ("test", "train"):
            row[f"{split}_{regime}_diverged"] = diverged[i]
        row |= {f"train_{regime}_mean": train_acc[i], f"train_{regime}_n": n}
        row |= {f"train_loss_{regime}_mean": train_loss[i], f"train_loss_{regime}_n": n}
    return row


def write_runs(root, experiment: str, variant: str, values: list[float]) -> list[str]:
    dirs = []
    for seed, value in enumerate(values):
        d = root / "results" / "paperx" / experiment / variant / f"seed{seed}"
        d.mkdir(parents=True)
        summary = {"status": "completed", "final": {"test_acc": value}}
        (d / "summary.json").write_text(json.dumps(summary))
        dirs.append(str(d))
    return dirs


def plan_of(variants: dict[str, list[str]], experiment: str = "F1") -> dict:
    exp = {"label": "F1 (MNIST)", "variants": {v: {"dirs": d} for v, d in variants.items()}}
    return {"paper": "paperx", "scale": "quick", "experiments": {experiment: exp}}


def test_claim_reads_the_table_and_tests_the_runs_seeds(tmp_path):
    lb, sb = [96.0, 96.2, 96.1], [97.5, 97.7, 97.6]
    plan = plan_of(
        {"LB": write_runs(tmp_path, "F1", "LB", lb), "SB": write_runs(tmp_path, "F1", "SB", sb)}
    )
    table = pd.DataFrame([table_row("F1", lb, sb)])
    (rec,) = claims.evaluate(GAP, table, plan)
    assert rec["verdict"] == "reproduced"
    assert rec["case"] == "F1 (MNIST)"  # the plan's label
    assert rec["a_mean"] == pytest.approx(np.mean(lb)) and rec["a_n"] == 3
    assert rec["a_seeds"] == "96;96.2;96.1"
    assert rec["effect"] == pytest.approx(np.mean(lb) - np.mean(sb))
    assert rec["paper_effect"] == pytest.approx(97.81 - 98.03)
    expected = stats.ttest_ind(lb, sb, equal_var=False, alternative="less").pvalue
    assert rec["p_value"] == pytest.approx(expected)


def test_per_seed_values_column_wins_over_the_runs():
    row = table_row("F1", [90.0, 90.1, 90.2], [97.0, 97.1, 97.2])
    row |= {"test_LB_values": "99;99.1;99.2", "test_SB_values": "97;97.1;97.2"}
    (rec,) = claims.evaluate(GAP, pd.DataFrame([row]), None)
    assert rec["a_seeds"] == "99;99.1;99.2"
    assert rec["p_value"] > 0.99  # the per-seed values point the other way


def test_rows_not_run_and_missing_tables_show_no_number():
    table = pd.DataFrame(
        [table_row("F1", [96.0, 96.2], [97.5, 97.7]), table_row("C1", [], [], "needs cifar10")]
    )
    f1, c1 = claims.evaluate(GAP, table, None)
    assert f1["verdict"] == "inconclusive"  # holds, but two seeds and no test
    assert c1["verdict"] == "not run at this scale" and c1["note"] == "needs cifar10"
    assert c1.get("a_mean") is None or math.isnan(c1["a_mean"])
    (missing,) = claims.evaluate(GAP, None, None)
    assert missing["verdict"] == "not run at this scale"
    assert "paperx_table2.csv not produced" in missing["note"]


def test_a_claim_not_wired_to_its_table_says_so():
    table = pd.DataFrame([{"network": "F1", "LB_acc_mean": 96.0, "SB_acc_mean": 97.0}])
    (rec,) = claims.evaluate(GAP, table, None)
    assert rec["verdict"] == "not run at this scale"
    assert "not wired" in rec["note"] and "test_LB_mean" in rec["note"]


def test_plain_columns_serve_exact_claims():
    claim = Claim(
        "updates", "paperx", "fewer updates", "table", Column("inc", "inc_updates"),
        Column("dec", "dec_updates"), less(exact=True),
    )  # fmt: skip
    table = pd.DataFrame([{"experiment": "W", "inc_updates": 290, "dec_updates": 800}])
    (rec,) = claims.evaluate(claim, table, None)
    assert rec["verdict"] == "reproduced" and rec["effect"] == -510


def test_every_claim_names_its_columns_and_a_known_rule():
    ids = [c.id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    for claim in claims.CLAIMS:
        assert claim.a.column and claim.b.column and claim.key
        assert claim.rule.kind in ("less", "greater", "within")
        assert claim.table_file == f"reports/tables/{claim.paper}_{claim.table}.csv"


def test_written_tables_list_every_claim_and_the_verdict_counts(tmp_path):
    table = pd.DataFrame([table_row("F1", [98.5, 98.6, 98.7], [97.5, 97.6, 97.7])])
    frame = claims.build({"keskar2017_table2.csv": table}, {})
    md = claims.markdown(frame, "quick")
    page = claims.html(frame, "quick")
    for claim in claims.CLAIMS:
        assert claim.statement in md and claim.statement in page
    assert "1 not reproduced" in md
    assert '<span class="verdict not-reproduced">not reproduced</span>' in page
    assert verdicts.Verdict.NOT_RUN.value in md


# ---------------------------------------------------------------- wired to the real tables
# Tables of seed 0 only at quick (issue 21's rescaled checkpoints, within the quick budget).
RESCALED = ("adaptive_sharpness",)


def _built_claims() -> list[Claim]:
    from lbgap.products import papers

    return [c for c in claims.CLAIMS if c.table in {p.name for p in papers.products(c.paper)}]


def _built_table(claim: Claim, tmp_path: Path, monkeypatch) -> tuple[pd.DataFrame, dict]:
    """The paper module's own table of the claim, built from constructed quick-scale runs."""
    from paper_fakes import plan_and_specs, quick_config, write_reparametrization, write_run

    from lbgap.products import papers

    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(quick_config(), claim.paper)
    for run, spec in specs.items():
        write_run(run.dir, spec, test_acc=90.0 + 0.1 * run.seed)
    product = papers.product(claim.paper, claim.table)
    alphas = plan.get("analysis", {}).get("reparametrization", {}).get("alphas", [])
    for i, path in enumerate(product.inputs(plan)):  # sharpness results of the analyses
        if Path(path).name.startswith("sharpness_") and not Path(path).exists():
            Path(path).write_text(json.dumps({"phi": 1.0 + i, "bn_eval": "running"}))
        if Path(path).name == "reparametrization.json":  # LB's after SB's: LB sharper
            write_reparametrization(path, alphas, level=1.0 + i)
    data, _ = product.build(plan)
    return data, plan


@pytest.mark.parametrize("claim", _built_claims(), ids=lambda c: c.id)
def test_each_claim_reads_its_real_table(claim, tmp_path, monkeypatch):
    """The paper module's own table, built from constructed runs, has the claim's columns."""
    data, plan = _built_table(claim, tmp_path, monkeypatch)
    records = claims.evaluate(claim, data, plan)
    assert not [r["note"] for r in records if "not wired" in r["note"]]
    ran = [r for r in records if r["verdict"] != "not run at this scale"]
    assert ran, f"no case of {claim.id} ran at the quick scale"
    seeds = 1 if claim.rule.exact else 3  # exact quantities: one number, equal over seeds
    if claim.table in RESCALED:  # analyses of seed 0 only at quick
        seeds = 1
    assert all(r["a_n"] == seeds and r["b_n"] == seeds for r in ran)


@pytest.mark.parametrize("claim", _built_claims(), ids=lambda c: c.id)
def test_only_claims_with_paper_numbers_say_which_data_those_are_on(claim, tmp_path, monkeypatch):
    """Where a row ran on another dataset than the paper's (F1 on Fashion-MNIST at quick), the
    papers' claims say their numbers are on MNIST; later work's claims quote none, so never."""
    data, plan = _built_table(claim, tmp_path, monkeypatch)
    for exp in plan["experiments"].values():
        exp["dataset"], exp["paper_dataset"] = "fashion_mnist", "mnist"
    ran = [r for r in claims.evaluate(claim, data, plan) if r["verdict"] != "not run at this scale"]
    said = [r for r in ran if "the paper's numbers are on MNIST" in r["note"]]
    assert said == ([] if claim.beyond else ran)


@pytest.mark.parametrize("claim", _built_claims(), ids=lambda c: c.id)
def test_each_claim_holds_on_the_papers_own_numbers(claim, tmp_path, monkeypatch):
    """A claim's rule must hold on the means of every row for which the paper gives both sides
    (its Table numbers, quoted in src/lbgap/products/papers/reference.yaml)."""
    data, plan = _built_table(claim, tmp_path, monkeypatch)
    records = claims.evaluate(claim, data, plan)
    quoted = [r for r in records if r["a_paper_mean"] is not None and r["b_paper_mean"] is not None]
    quoted = [r for r in quoted if not (pd.isna(r["a_paper_mean"]) or pd.isna(r["b_paper_mean"]))]
    for r in quoted:
        a, b = r["a_paper_mean"], r["b_paper_mean"]
        assert claim.rule.holds(a, b), f"{claim.id} fails the paper's {r['case']}: {a} vs {b}"
    if claim.paper != "smith2018" and not claim.beyond:  # smith2018: numbers not confirmed
        assert quoted, f"no row of {claim.id} quotes the paper"
    if claim.beyond:  # later work: the paper has no numbers for it, and the table shows none
        assert not quoted


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("reproduced", "reproduced"),
        ("inconclusive", "inconclusive"),
        ("not reproduced", "not reproduced"),
        ("not run at this scale", "not reproduced"),
    ],
)
def test_a_claim_true_by_construction_counts_only_with_the_claim_it_serves(match, expected):
    updates = next(c for c in claims.CLAIMS if c.id == "smith2018-updates")
    assert updates.requires == "smith2018-match" and "by construction" in updates.statement
    records = [
        {"claim": "smith2018-match", "case": "W", "verdict": match, "note": ""},
        {"claim": "smith2018-updates", "case": "W", "verdict": "reproduced", "note": "holds"},
    ]
    out = claims.by_construction(records, claims.CLAIMS)
    assert out[1]["verdict"] == expected and out[1]["note"].startswith("by construction")
    assert out[0] == records[0]


def test_a_claim_true_by_construction_that_did_not_run_keeps_its_reason():
    records = [
        {"claim": "smith2018-match", "case": "W", "verdict": "not run at this scale", "note": "x"},
        {"claim": "smith2018-updates", "case": "W", "verdict": "not run at this scale",
         "note": "runs at scale=quick"},
    ]  # fmt: skip
    assert claims.by_construction(records, claims.CLAIMS) == records


# ---------------------------------------------------------------- diverged seeds, under-training
def _claim(claim_id: str) -> Claim:
    return next(c for c in claims.CLAIMS if c.id == claim_id)


KESKAR_GAP = _claim("keskar2017-gap")


def test_side_with_seeds_from_summary_stats_equals_the_per_seed_values():
    values = [97.0, 97.4, 96.9]
    expected = Side.of([*values, 10.0, 10.0])
    from_stats = Side(np.mean(values), np.std(values, ddof=1), 3).with_seeds(10.0, 2)
    assert from_stats.n == expected.n == 5
    assert from_stats.mean == pytest.approx(expected.mean)
    assert from_stats.std == pytest.approx(expected.std)
    assert Side.of(values).with_seeds(10.0, 2) == expected


def test_a_diverged_seed_enters_an_accuracy_at_chance_level():
    lb, sb = [96.0, 96.2], [97.5, 97.6, 97.7]
    row = table_row("F1", lb, sb, diverged=(1, 0))
    (rec,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([row]), None)
    chance = 100.0 / 10  # MNIST: 10 classes
    assert rec["a_n"] == 3 and rec["a_diverged"] == 1 and rec["b_diverged"] == 0
    assert rec["a_mean"] == pytest.approx(np.mean([*lb, chance]))
    assert "1 LB seed diverged, counted at chance accuracy 10.00" in rec["note"]
    # a row that names no known dataset has no chance level: the seed counts against
    (rec,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([{**row, "dataset": None}]), None)
    assert rec["verdict"] == "not reproduced" and "1 LB seed diverged" in rec["note"]
    assert "LB under-trained (1 seed diverged)" in rec["undertrained"]


@pytest.mark.parametrize(
    ("claim_id", "expected"),
    [
        # no warmup at 8k diverging on every seed: chance error, above the baseline (the
        # paper's point), and every seed agrees
        ("goyal2017-no-warmup", "reproduced"),
        # gradual warmup diverging: chance error, far outside 0.5 of the baseline
        ("goyal2017-warmup", "not reproduced"),
    ],
)
def test_every_seed_diverged_is_a_result_for_or_against_the_claim(claim_id, expected):
    claim = _claim(claim_id)
    baseline = Side.of([23.5, 23.6, 23.7])
    row = {"experiment": "R50", "dataset": "imagenet", claim.a.diverged: 3}
    row |= {f"{claim.a.column}_mean": None, f"{claim.a.column}_n": 0}
    row |= {f"{claim.b.column}_{k}": v for k, v in (("mean", 23.6), ("std", baseline.std))}
    row |= {f"{claim.b.column}_n": 3, f"{claim.b.column}_values": "23.5;23.6;23.7"}
    row[claim.b.diverged] = 0
    (rec,) = claims.evaluate(claim, pd.DataFrame([row]), None)
    assert rec["verdict"] == expected
    assert rec["a_n"] == 3 and rec["a_diverged"] == 3
    assert rec["a_mean"] == pytest.approx(100.0 - 100.0 / 1000)  # chance error on ImageNet


def test_a_diverged_seed_of_a_quantity_without_value_counts_against_the_claim():
    claim = _claim("keskar2017-sharpness")
    row = {"experiment": "F1", "dataset": "mnist", "LB_diverged": 1, "SB_diverged": 0}
    row |= {"LB_phi_1e-3_mean": 205.0, "LB_phi_1e-3_n": 2, "LB_phi_1e-3_values": "200;210"}
    row |= {"SB_phi_1e-3_mean": 1.1, "SB_phi_1e-3_n": 3, "SB_phi_1e-3_values": "1;1.1;1.2"}
    (rec,) = claims.evaluate(claim, pd.DataFrame([row]), None)
    assert rec["verdict"] == "not reproduced"  # 186x on the finished seeds, but one diverged
    assert "1 LB seed diverged" in rec["note"] and "against the claim" in rec["note"]
    assert rec["a_n"] == 2 and rec["a_diverged"] == 1
    # every LB seed diverged: no phi at all, still a result, not "not run"
    row |= {"LB_diverged": 3, "LB_phi_1e-3_mean": None, "LB_phi_1e-3_n": 0}
    row |= {"LB_phi_1e-3_values": ""}
    (rec,) = claims.evaluate(claim, pd.DataFrame([row]), None)
    assert rec["verdict"] == "not reproduced" and "3 LB seeds diverged" in rec["note"]


def test_the_claims_table_shows_the_diverged_seeds_per_side():
    row = table_row("F1", [96.0, 96.2], [97.5, 97.6, 97.7], diverged=(1, 0))
    frame = claims.build({"keskar2017_table2.csv": pd.DataFrame([row])}, {})
    gap = frame[frame["claim"] == "keskar2017-gap"].iloc[0]
    assert (gap["a_diverged"], gap["b_diverged"]) == (1, 0)  # CSV columns
    md = claims.markdown(frame, "quick")
    lb = Side.of([96.0, 96.2, 100.0 / 10])  # the diverged seed at MNIST's chance accuracy
    assert f"LB {lb.mean:.2f} ± {lb.std:.2f} (n=3, 1 diverged)" in md
    assert "SB 97.60 ± 0.10 (n=3);" in md


@pytest.mark.parametrize(
    ("train_acc", "train_loss", "flagged"),
    [
        ((99.5, 99.6), (0.02, 0.02), False),  # both fit the training set
        ((97.7, 99.6), (0.02, 0.02), False),  # 1.9 points below: within the threshold
        ((97.5, 99.6), (0.02, 0.02), True),  # 2.1 points below
        ((99.5, 99.6), (0.11, 0.02), False),  # 0.09 above
        ((99.5, 99.6), (0.13, 0.02), True),  # 0.11 above
    ],
)
def test_an_under_trained_large_batch_cannot_reproduce_the_gap(train_acc, train_loss, flagged):
    fit = {"train_acc": train_acc, "train_loss": train_loss}
    row = table_row("F1", [96.0, 96.1, 96.2], [97.5, 97.6, 97.7], **fit)
    (rec,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([row]), None)
    assert rec["verdict"] == ("inconclusive" if flagged else "reproduced")
    assert bool(rec["undertrained"]) == flagged
    assert rec["note"].startswith("LB under-trained") == flagged


def test_a_diverged_large_batch_seed_flags_the_gap_as_under_trained():
    """Its training accuracy enters at chance too: LB did not reach a minimum on that seed."""
    row = table_row("F1", [96.0, 96.1, 96.2, 96.1], [97.5, 97.6, 97.7, 97.6], diverged=(1, 0))
    (rec,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([row]), None)
    assert rec["verdict"] == "inconclusive" and "LB under-trained" in rec["undertrained"]


def test_the_papers_own_table2_is_not_under_trained():
    """Keskar et al. trained until the loss stopped improving: their Table 2 (LB up to 1.64
    points below SB in training accuracy, F2) must not be flagged."""
    from lbgap.products.papers import reference

    networks = ["F1", "F2", "C1", "C2", "C3", "C4"]
    for network in networks:
        acc = [reference("keskar2017", "table2", network, f"train_{r}")[0] for r in ("LB", "SB")]
        row = pd.Series(table_row(network, [97.0] * 3, [98.0] * 3, train_acc=tuple(acc)))
        assert claims.undertrained(KESKAR_GAP, row, None, network) is None, network
    assert min(acc) < 100  # the numbers were read


def test_a_row_on_another_dataset_than_the_papers_says_so(tmp_path):
    lb, sb = [88.0, 88.2, 88.1], [89.5, 89.7, 89.6]
    plan = plan_of(
        {"LB": write_runs(tmp_path, "F1", "LB", lb), "SB": write_runs(tmp_path, "F1", "SB", sb)}
    )
    row = table_row("F1", lb, sb)
    (same,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([row]), plan)
    plan["experiments"]["F1"] |= {"dataset": "fashion_mnist", "paper_dataset": "mnist"}
    (other,) = claims.evaluate(KESKAR_GAP, pd.DataFrame([row]), plan)
    assert "the paper's numbers are on MNIST" in other["note"]
    assert "paper's numbers are on" not in same["note"]
    assert other["verdict"] == same["verdict"]  # a label, not a change of the judgement
