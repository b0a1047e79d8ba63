"""Facts about the networks that planning needs without building them (no torch import).

lbgap.training.models builds the networks; the matrix (a batch-norm check) and the Hoffer table
(+GBN is +LR without batch norm) only need to know which have no batch norm.
"""

from __future__ import annotations

NO_BATCH_NORM = frozenset({"alexnet"})  # torchvision's AlexNet, as the papers' code has it
