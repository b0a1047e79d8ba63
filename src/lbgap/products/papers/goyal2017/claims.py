"""Goyal et al. 2017: its claims checked on our runs, and later work's on the same runs.

Judged and rendered by lbgap.products.claims; each reads one of this paper's tables.
"""

from __future__ import annotations

from lbgap.products.verdicts import Claim, Column, greater, less, within

# The paper's own claims, with its numbers beside ours.
CLAIMS: list[Claim] = [
    Claim(
        "goyal2017-warmup",
        "goyal2017",
        "Gradual warmup at 8k: top-1 error within 0.5 points of the baseline",
        "table1",
        Column(
            "gradual warmup",
            "gradual_warmup_err",
            diverged="gradual_warmup_diverged",
            at_chance="error",
        ),
        Column("baseline", "baseline_err", diverged="baseline_diverged", at_chance="error"),
        within(0.5),
    ),
    Claim(
        "goyal2017-no-warmup",
        "goyal2017",
        "No warmup at 8k: top-1 error higher than the baseline",
        "table1",
        # A diverged seed without warmup enters at chance error: for the claim, as in the paper.
        Column("no warmup", "no_warmup_err", diverged="no_warmup_diverged", at_chance="error"),
        Column("baseline", "baseline_err", diverged="baseline_diverged", at_chance="error"),
        greater(),
    ),
]

# Later work checked on this paper's runs (no paper numbers beside them).
BEYOND: list[Claim] = [
    Claim(
        "you2017-lars-holds",
        "goyal2017",
        "You et al. 2017: with LARS the largest kn holds the baseline: top-1 error at most 1 "
        "point above it",
        "lars",
        Column("LARS", "largest_err", diverged="largest_diverged", at_chance="error"),
        Column("baseline", "baseline_err", diverged="baseline_diverged", at_chance="error"),
        less(margin=1.0),
        beyond="You et al. 2017",
    ),
    Claim(
        "you2017-lars-vs-sgd",
        "goyal2017",
        "You et al. 2017: at the largest kn, LARS has a lower top-1 error than SGD with the "
        "linear rule and gradual warmup",
        "lars",
        Column("LARS", "largest_err", diverged="largest_diverged", at_chance="error"),
        Column("SGD", "largest_sgd_err", diverged="largest_sgd_diverged", at_chance="error"),
        less(),
        beyond="You et al. 2017",
    ),
]
