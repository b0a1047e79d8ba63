"""Hoffer, Hubara, Soudry 2017: its claims checked on our runs, and later work's on the same runs.

Judged and rendered by lbgap.products.claims; each reads one of this paper's tables.
"""

from __future__ import annotations

from lbgap.products.verdicts import ACC, Claim, Column, greater, less

# The paper's own claims, with its numbers beside ours.
CLAIMS: list[Claim] = [
    Claim(
        "hoffer2017-gap",
        "hoffer2017",
        "LB test accuracy below SB",
        "table1",
        Column("LB", "LB_acc", "LB", ACC, diverged="LB_diverged", at_chance="accuracy"),
        Column("SB", "SB_acc", "SB", ACC, diverged="SB_diverged", at_chance="accuracy"),
        less(),
    ),
    Claim(
        "hoffer2017-ra",
        "hoffer2017",
        "+RA closes the gap: test accuracy within 1 point of SB (or above)",
        "table1",
        Column("+RA", "+RA_acc", "+RA", ACC, diverged="+RA_diverged", at_chance="accuracy"),
        Column("SB", "SB_acc", "SB", ACC, diverged="SB_diverged", at_chance="accuracy"),
        greater(margin=-1.0),
    ),
]

# Later work checked on this paper's runs (no paper numbers beside them).
BEYOND: list[Claim] = []
