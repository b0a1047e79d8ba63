"""Smith et al. 2018: its claims checked on our runs, and later work's on the same runs.

Judged and rendered by lbgap.products.claims; each reads one of this paper's tables.
"""

from __future__ import annotations

from lbgap.products.verdicts import ACC, Claim, Column, less, within

# The paper's own claims, with its numbers beside ours.
CLAIMS: list[Claim] = [
    Claim(
        "smith2018-match",
        "smith2018",
        "Increasing the batch matches decaying the LR: test accuracy within 0.5 points",
        "table",
        Column(
            "increasing batch",
            "increasing_batch_acc",
            "increasing_batch",
            ACC,
            diverged="increasing_batch_diverged",
            at_chance="accuracy",
        ),
        Column(
            "decaying LR",
            "decaying_lr_acc",
            "decaying_lr",
            ACC,
            diverged="decaying_lr_diverged",
            at_chance="accuracy",
        ),
        within(0.5),
    ),
    Claim(
        "smith2018-updates",
        "smith2018",
        "Increasing the batch needs fewer parameter updates than decaying the LR, at the same "
        "accuracy (the count is fixed by the schedule: true by construction)",
        "table",
        Column(
            "increasing batch", "increasing_batch_updates", diverged="increasing_batch_diverged"
        ),
        Column("decaying LR", "decaying_lr_updates", diverged="decaying_lr_diverged"),
        less(exact=True),
        unit="updates",
        requires="smith2018-match",
    ),
    # Beyond the four papers (issue 21), on Keskar's SB and LB checkpoints. A rescaling is
    # arithmetic on one set of weights, so the first five are properties of each checkpoint,
    # not averages over seeds: `exact`, the means decide whatever the number of seeds.
]

# Later work checked on this paper's runs (no paper numbers beside them).
BEYOND: list[Claim] = []
