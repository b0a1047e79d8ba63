"""Keskar et al. 2017: its claims checked on our runs, and later work's on the same runs.

Judged and rendered by lbgap.products.claims; each reads one of this paper's tables.
"""

from __future__ import annotations

from lbgap.products.verdicts import ACC, Claim, Column, Fit, greater, less, within

# The paper's own claims, with its numbers beside ours.
CLAIMS: list[Claim] = [
    Claim(
        "keskar2017-gap",
        "keskar2017",
        "LB test accuracy below SB (the generalization gap)",
        "table2",
        Column("LB", "test_LB", "LB", ACC, diverged="test_LB_diverged", at_chance="accuracy"),
        Column("SB", "test_SB", "SB", ACC, diverged="test_SB_diverged", at_chance="accuracy"),
        less(),
        key="network",
        fit=Fit(
            Column("LB", "train_LB", diverged="train_LB_diverged", at_chance="accuracy"),
            Column("SB", "train_SB", diverged="train_SB_diverged", at_chance="accuracy"),
            Column("LB", "train_loss_LB", diverged="train_LB_diverged"),
            Column("SB", "train_loss_SB", diverged="train_SB_diverged"),
        ),
    ),
    Claim(
        "keskar2017-sharpness",
        "keskar2017",
        # 5x: the paper's own Table 3 ranges from 8.7x (C3) to 223x (F2) at eps 1e-3, so a
        # 10x rule failed one of the paper's rows (tests/test_claims.py checks every claim on
        # the paper's numbers).
        "LB sharpness phi (eps 1e-3, full space) at least 5x SB phi",
        "table3",
        Column("LB", "LB_phi_1e-3", diverged="LB_diverged"),
        Column("SB", "SB_phi_1e-3", diverged="SB_diverged"),
        greater(ratio=5.0),
        unit="x",
    ),
]

# Later work checked on this paper's runs (no paper numbers beside them).
BEYOND: list[Claim] = [
    Claim(
        "dinh2017-function",
        "keskar2017",
        "Dinh et al. 2017: the rescaled networks compute the same function: training loss "
        "within 1e-5 of the checkpoint at every alpha",
        "reparametrization",
        Column("rescaled", "train_loss_worst", diverged="diverged"),
        Column("checkpoint", "train_loss_ref", diverged="diverged"),
        within(1e-5, exact=True),
        key="case",
        unit="nats",
        beyond="Dinh et al. 2017",
    ),
    Claim(
        "dinh2017-accuracy",
        "keskar2017",
        "Dinh et al. 2017: the rescaled networks classify as the checkpoint: test accuracy "
        "within 0.01 points at every alpha",
        "reparametrization",
        Column("rescaled", "test_acc_worst", diverged="diverged"),
        Column("checkpoint", "test_acc_ref", diverged="diverged"),
        within(0.01, exact=True),
        key="case",
        beyond="Dinh et al. 2017",
    ),
    Claim(
        "dinh2017-phi",
        "keskar2017",
        "Dinh et al. 2017: the same function is sharper by Keskar phi once rescaled: phi at "
        "the largest alpha at least 2x that of the checkpoint",
        "reparametrization",
        Column("rescaled", "phi_rescaled", diverged="diverged"),
        Column("checkpoint", "phi_ref", diverged="diverged"),
        greater(ratio=2.0, exact=True),
        key="case",
        unit="x",
        beyond="Dinh et al. 2017",
    ),
    Claim(
        "dinh2017-eigenvalue",
        "keskar2017",
        "Dinh et al. 2017: the same function has a larger top Hessian eigenvalue once "
        "rescaled: at the largest alpha at least 2x that of the checkpoint",
        "reparametrization",
        Column("rescaled", "lambda_max_rescaled", diverged="diverged"),
        Column("checkpoint", "lambda_max_ref", diverged="diverged"),
        greater(ratio=2.0, exact=True),
        key="case",
        unit="x",
        beyond="Dinh et al. 2017",
    ),
    Claim(
        "kwon2021-invariant",
        "keskar2017",
        "Kwon et al. 2021: adaptive sharpness is not changed by the rescaling: within 1% of "
        "the checkpoint at every alpha",
        "reparametrization",
        Column("rescaled", "adaptive_worst", diverged="diverged"),
        Column("checkpoint", "adaptive_ref", diverged="diverged"),
        within(0.01, exact=True, relative=True),
        key="case",
        unit="%",
        beyond="Kwon et al. 2021",
    ),
    Claim(
        "dinh2017-ranking",
        "keskar2017",
        "Dinh et al. 2017: the phi ranking is not a property of the function: SB weights "
        "rescaled by the largest alpha (the same SB function) have a larger phi than LB",
        "adaptive_sharpness",
        Column("SB rescaled", "SB_phi_rescaled", diverged="SB_diverged"),
        Column("LB", "LB_phi", diverged="LB_diverged"),
        greater(),
        unit="",
        beyond="Dinh et al. 2017",
    ),
    Claim(
        "kwon2021-lb-sharper",
        "keskar2017",
        "Kwon et al. 2021: by adaptive sharpness (scale-invariant), LB still sharper than SB",
        "adaptive_sharpness",
        Column("LB", "LB_adaptive", diverged="LB_diverged"),
        Column("SB", "SB_adaptive", diverged="SB_diverged"),
        greater(),
        unit="",
        beyond="Kwon et al. 2021",
    ),
]
