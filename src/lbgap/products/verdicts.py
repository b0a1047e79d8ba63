"""Verdicts on a paper's claim from our seeds: one place, so every claim is judged alike.

A claim compares two sides, A and B (e.g. LB and SB), each summarised over seeds as mean, std,
count and, where available, the per-seed values. A rule states what the paper claims:

- ``less(ratio, margin)``:    mean(A) <  ratio * mean(B) + margin   (e.g. LB accuracy below SB)
- ``greater(ratio, margin)``: mean(A) >  ratio * mean(B) + margin   (e.g. LB phi >= 5x SB phi)
- ``within(tol)``:            |mean(A) - mean(B)| <= tol            (e.g. "matches within 0.5")
- ``within(tol, relative=True)``: |mean(A) - mean(B)| <= tol |mean(B)| (e.g. "within 1%")

The verdict, in this order:

1. **not run at this scale**: either side has no seed at all, finished or diverged (the table
   is missing, the row does not run at this scale, or the runs are absent). Nothing is
   computed or shown.
2. **not reproduced** (diverged): a seed diverged on a side whose quantity has no value for a
   diverged run (``Side.diverged``, e.g. phi: a diverged run reaches no minimum). A diverged run
   is a result, and here it counts against the claim. Where the quantity has a value for a
   diverged run (accuracy and error at chance level, lbgap.products.claims), the seed enters the
   numbers instead, and counts for or against the claim as its value says.
3. **not reproduced**: the rule fails on the means (A is not below B, the ratio is under the
   threshold, the difference is outside the tolerance). No test can rescue a failed point
   estimate; the p-value is still reported.
4. **reproduced**: the rule holds on the means, and either the quantity has no seed noise
   (``exact``, e.g. a count of parameter updates fixed by the schedule), or both sides have at
   least ``MIN_SEEDS`` (3) seeds and the test gives p < ``ALPHA`` (0.05). When every seed on
   both sides gives the same value there is no noise to test against, and the means decide.
5. **inconclusive**: the rule holds on the means but p >= 0.05, or a side has fewer than 3
   seeds, so the holding could be seed noise.

The test is Welch's t-test (unequal variances, ``scipy.stats.ttest_ind(equal_var=False)``),
one-sided in the claim's direction, with B transformed as the rule says (A vs ratio * B +
margin), so the p-value tests the claim itself, threshold included. A p-value near 1 means the
seeds point the other way. For ``within`` it is the equivalence test (TOST): the larger of the
two one-sided Welch p-values for A - B > -tol and A - B < tol. It runs on the per-seed values
when both sides have them, else on the sides' mean, std and n (``ttest_ind_from_stats``, the
same statistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from lbgap.config import layout
from lbgap.words import plural

ALPHA = 0.05
MIN_SEEDS = 3


class Verdict(StrEnum):
    REPRODUCED = "reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_REPRODUCED = "not reproduced"
    NOT_RUN = "not run at this scale"


@dataclass(frozen=True)
class Side:
    """One side of a comparison over seeds; `values` are the per-seed numbers, if known, and
    `diverged` the seeds that diverged and are in none of the numbers (they have no value)."""

    mean: float | None
    std: float | None = None
    n: int = 0
    values: tuple[float, ...] = ()
    diverged: int = 0

    @property
    def ran(self) -> bool:
        return self.n > 0 and self.mean is not None and math.isfinite(self.mean)

    @property
    def present(self) -> bool:
        """Whether any seed of this side ran, to the end or until it diverged."""
        return self.ran or self.diverged > 0

    @property
    def seeds(self) -> int:
        """Seeds a test can use: the per-seed values if any, else the count with a std."""
        if self.values:
            return len(self.values)
        return self.n if self.std is not None and math.isfinite(self.std) else 0

    def affine(self, scale: float, shift: float) -> Side:
        """The side transformed as scale * x + shift (the rule's B for its test)."""
        return Side(
            None if self.mean is None else scale * self.mean + shift,
            None if self.std is None else abs(scale) * self.std,
            self.n,
            tuple(scale * v + shift for v in self.values),
        )

    def with_seeds(self, value: float, count: int) -> Side:
        """This side with `count` more seeds of `value` (diverged runs at chance level): from
        the per-seed values when known, else from the mean, std and n."""
        if count <= 0:
            return self
        if self.values or not self.ran:
            return Side.of([*self.values, *[value] * count])
        n = self.n + count
        mean = (self.n * self.mean + count * value) / n
        std = None
        if self.std is not None and math.isfinite(self.std):
            squares = (self.n - 1) * self.std**2 + self.n * self.mean**2 + count * value**2
            std = math.sqrt(max(squares - n * mean**2, 0.0) / (n - 1))
        return Side(mean, std, n)

    @classmethod
    def of(cls, values: list[float]) -> Side:
        """A side from per-seed values (mean, sample std as in the tables)."""
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            return cls(None)
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        return cls(float(arr.mean()), std, int(arr.size), tuple(float(v) for v in arr))


@dataclass(frozen=True)
class Rule:
    """What the paper claims about A against B; see the module docstring."""

    kind: str  # "less", "greater" or "within"
    ratio: float = 1.0
    margin: float = 0.0
    tol: float = 0.0
    exact: bool = False  # no seed noise (e.g. update counts): the means decide, no test
    relative: bool = False  # within: tol is a share of |B| (0.01: within 1%)

    def holds(self, a: float, b: float) -> bool:
        if self.kind == "less":
            return a < self.ratio * b + self.margin
        if self.kind == "greater":
            return a > self.ratio * b + self.margin
        if self.kind == "within":
            return abs(a - b) <= self.tol * (abs(b) if self.relative else 1.0)
        raise ValueError(f"unknown rule kind {self.kind!r}")

    def effect(self, a: float, b: float) -> float:
        """The number a reader compares with the threshold: A/B for ratio rules, (A/B - 1) in
        % for relative ones, else A - B."""
        if self.relative:
            return (a / b - 1.0) * 100.0 if b != 0 else math.nan
        return a / b if self.ratio != 1.0 and b != 0 else a - b

    def describe(self, a: str = "A", b: str = "B") -> str:
        if self.kind == "within" and self.relative:
            return f"{a} within {self.tol * 100:g}% of {b}"
        if self.kind == "within":
            return f"{a} within {self.tol:g} of {b}"
        op = "<" if self.kind == "less" else ">"
        scaled = b if self.ratio == 1.0 else f"{self.ratio:g} x {b}"
        shift = f" {'+' if self.margin > 0 else '-'} {abs(self.margin):g}" if self.margin else ""
        return f"{a} {op} {scaled}{shift}"

    def p_value(self, a: Side, b: Side) -> float:
        """One-sided Welch p-value of the claim (TOST for `within`); NaN if undefined."""
        if self.kind == "within" and self.relative:
            lower = _welch(a, b.affine(1.0 - self.tol, 0.0), "greater")
            upper = _welch(a, b.affine(1.0 + self.tol, 0.0), "less")
            return max(lower, upper)
        if self.kind == "within":
            lower = _welch(a, b.affine(1.0, -self.tol), "greater")
            upper = _welch(a, b.affine(1.0, self.tol), "less")
            return max(lower, upper)
        return _welch(a, b.affine(self.ratio, self.margin), self.kind)


def less(ratio: float = 1.0, margin: float = 0.0, exact: bool = False) -> Rule:
    return Rule("less", ratio=ratio, margin=margin, exact=exact)


def greater(ratio: float = 1.0, margin: float = 0.0, exact: bool = False) -> Rule:
    return Rule("greater", ratio=ratio, margin=margin, exact=exact)


def within(tol: float, exact: bool = False, relative: bool = False) -> Rule:
    return Rule("within", tol=tol, exact=exact, relative=relative)


def _welch(a: Side, b: Side, alternative: str) -> float:
    """Welch's t-test: on the per-seed values when both sides have them, else on the sides'
    mean, std and n (the same test: it depends on nothing else)."""
    from scipy import stats  # here: the pages that only format verdicts need no scipy

    if a.values and b.values:
        if np.ptp(a.values) == 0 and np.ptp(b.values) == 0:
            return math.nan  # no spread on either side: the t statistic is undefined
        return float(
            stats.ttest_ind(a.values, b.values, equal_var=False, alternative=alternative).pvalue
        )
    if not (a.std or b.std):
        return math.nan
    result = stats.ttest_ind_from_stats(
        a.mean, a.std, a.n, b.mean, b.std, b.n, equal_var=False, alternative=alternative
    )
    return float(result.pvalue)


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    effect: float | None
    p: float | None
    reason: str


def judge(
    rule: Rule,
    a: Side,
    b: Side,
    labels: tuple[str, str] = ("A", "B"),
    alpha: float = ALPHA,
    min_seeds: int = MIN_SEEDS,
) -> Outcome:
    """The verdict on `rule` for sides A and B, with the effect, p-value and why."""
    if not (a.present and b.present):
        return Outcome(Verdict.NOT_RUN, None, None, "no finished seeds on one side")
    if a.diverged or b.diverged:
        effect = rule.effect(a.mean, b.mean) if a.ran and b.ran else None
        sides = zip((a, b), labels, strict=True)
        lost = " and ".join(plural(s.diverged, f"{label} seed") for s, label in sides if s.diverged)
        why = f"{lost} diverged, with no value for a diverged run: counted against the claim"
        return Outcome(Verdict.NOT_REPRODUCED, effect, None, why)
    effect = rule.effect(a.mean, b.mean)
    testable = a.seeds >= min_seeds and b.seeds >= min_seeds
    if a.values and b.values:
        testable = len(a.values) >= min_seeds and len(b.values) >= min_seeds
    p = rule.p_value(a, b) if testable else None
    no_noise = p is not None and math.isnan(p)  # every seed agrees on both sides
    if no_noise:
        p = None
    claim = rule.describe(*labels)
    if not rule.holds(a.mean, b.mean):
        return Outcome(Verdict.NOT_REPRODUCED, effect, p, f"{claim} fails on the means")
    if rule.exact or no_noise:
        why = "exact quantity" if rule.exact else "all seeds agree on both sides"
        return Outcome(Verdict.REPRODUCED, effect, p, f"{claim} holds ({why})")
    if not testable:
        return Outcome(
            Verdict.INCONCLUSIVE,
            effect,
            None,
            f"{claim} holds, but fewer than {min_seeds} seeds per side for a test",
        )
    if p < alpha:
        return Outcome(Verdict.REPRODUCED, effect, p, f"{claim} holds, p < {alpha:g}")
    return Outcome(Verdict.INCONCLUSIVE, effect, p, f"{claim} holds, but p >= {alpha:g}")


# ---------------------------------------------------------------- what a claim compares
@dataclass(frozen=True)
class Column:
    """One side of a claim: its label, its column prefix in the table, where its seeds are.

    The columns are the wiring to a paper's table (lbgap.products.papers.cells names them
    `{variant}_{quantity}`): a paper's claims change them if its table names them differently.
    Without `variant`/`metric` the test runs on the table's mean, std and n.
    """

    label: str
    column: str
    variant: str | None = None  # the run variant whose summary.json holds the per-seed values
    metric: str | None = None  # key in summary.json, dotted: "final.test_acc", "updates"
    diverged: str | None = None  # the table column counting this side's diverged seeds
    # How a diverged seed enters: "accuracy" or "error" at the chance level of the row's
    # dataset; None: the quantity has no value for a diverged run, which counts against.
    at_chance: str | None = None


@dataclass(frozen=True)
class Fit:
    """The final training accuracy and loss of sides A and B, for a claim about minima both
    reach: where A's fit is clearly worse than B's, the row is flagged (see `undertrained`)."""

    acc_a: Column
    acc_b: Column
    loss_a: Column
    loss_b: Column


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
    fit: Fit | None = None  # a claim about minima both sides reach: their training fits
    # Later work checked on this paper's runs (e.g. "Dinh et al. 2017"): the paper has no
    # numbers for it, so the claims table shows none.
    beyond: str | None = None

    @property
    def table_file(self) -> str:
        return layout.table(self.paper, self.table, "csv")


ACC = "final.test_acc"  # the metric of accuracy claims: a run's final test accuracy
