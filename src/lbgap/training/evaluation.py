"""Loss and accuracy over a whole split, in large chunks, in the configured batch-norm mode."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EVAL_MODES = ("running", "batch")


@contextlib.contextmanager
def bn_eval_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Evaluation mode; with mode "batch", batch norm uses each chunk's own statistics.

    "running" is PyTorch's default (running averages from training). "batch" mimics the Keras
    batch-norm mode of Keskar et al.'s published code, which normalized with the current batch's
    statistics even at test time; it hides the running buffers without updating them.
    """
    if mode not in BN_EVAL_MODES:
        raise ValueError(f"bn_eval must be one of {BN_EVAL_MODES}, got {mode!r}")
    was_training = model.training
    model.eval()
    hidden = []
    if mode == "batch":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                hidden.append((m, m.running_mean, m.running_var))
                m.running_mean = m.running_var = None
    try:
        yield
    finally:
        for m, mean, var in hidden:
            m.running_mean, m.running_var = mean, var
        model.train(was_training)


def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, chunk: int = 4096, bn_mode: str = "running"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (%) of `model` on (x, y)."""
    batches = zip(x.split(chunk), y.split(chunk), strict=True)
    return loss_and_accuracy(evaluation_sums(model, batches, bn_mode))


@torch.no_grad()
def evaluation_sums(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], bn_mode: str = "running"
) -> Tensor:
    """(summed loss, correct, samples) in float64, over batches held or streamed (ImageNet).

    Sums rather than means, so that ranks' shares of a split add up.
    """
    total_loss, correct, n = 0.0, 0, 0  # device tensors after the first batch: one sync
    with bn_eval_mode(model, bn_mode):
        for xs, ys in batches:
            logits = model(xs)
            total_loss = total_loss + F.cross_entropy(logits.float(), ys, reduction="sum").double()
            correct = correct + (logits.argmax(1) == ys).sum()
            n += len(ys)
    return torch.tensor([float(total_loss), float(correct), n], dtype=torch.float64)


def loss_and_accuracy(sums: Tensor) -> tuple[float, float]:
    total_loss, correct, n = sums.tolist()
    n = max(n, 1.0)
    return total_loss / n, 100.0 * correct / n
