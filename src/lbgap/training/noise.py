"""Gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018).

A minibatch gradient of size B satisfies E|G_B|^2 = |G|^2 + tr(Sigma)/B, where G is the true
gradient and Sigma the per-example gradient covariance. Measuring |G_B|^2 at two batch sizes
gives unbiased estimates of |G|^2 and tr(Sigma) (the paper's Appendix A.1). In data-parallel
training the small batch can be one rank's local gradient and the big batch the all-reduced
one, so the estimate is almost free; on one process, two micro-batch sizes work too.

The per-example gradients must be independent draws (sampling with replacement, or
B << dataset size); without replacement tr(Sigma) is shrunk by (N - B) / (N - 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _check_sizes(b_small: int, b_big: int) -> None:
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big; got b_small={b_small}, b_big={b_big}")


def _ratio(num: float, den: float) -> float:
    """num / den, or NaN when the |G|^2 estimate is not positive (noise dominates)."""
    return num / den if den > 0 else math.nan


def gradient_noise_scale(g_small_sq: float, g_big_sq: float, b_small: int, b_big: int) -> dict:
    """Unbiased |G|^2 and tr(Sigma) from squared gradient norms at two batch sizes.

    Returns ``{"grad_sq": |G|^2, "trace_sigma": S, "b_simple": S / |G|^2}`` with
    |G|^2 = (b_big |G_big|^2 - b_small |G_small|^2) / (b_big - b_small) and
    S = (|G_small|^2 - |G_big|^2) / (1/b_small - 1/b_big). A single pair is very noisy (and
    |G|^2 may come out negative, giving NaN); average with :class:`NoiseScaleTracker`.
    """
    _check_sizes(b_small, b_big)
    grad_sq = (b_big * g_big_sq - b_small * g_small_sq) / (b_big - b_small)
    trace_sigma = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / b_big)
    return {
        "grad_sq": grad_sq,
        "trace_sigma": trace_sigma,
        "b_simple": _ratio(trace_sigma, grad_sq),
    }


class NoiseScaleTracker:
    """Exponential moving averages of |G|^2 and tr(Sigma), reporting their ratio.

    McCandlish et al. average the two estimates separately and take the ratio of the
    averages: the ratio of single noisy estimates is biased and can blow up when the |G|^2
    estimate is near zero. The averages are bias-corrected (as in Adam) so early reports are
    not pulled towards 0. Batch sizes may change between updates (e.g. growing batches).
    """

    def __init__(self, beta: float = 0.99) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1); got {beta!r}")
        self.beta = beta
        self.count = 0
        self._grad_sq = 0.0
        self._trace_sigma = 0.0

    def update(self, g_small_sq: float, g_big_sq: float, b_small: int, b_big: int) -> float:
        """Add one pair of squared norms; return the current B_simple."""
        est = gradient_noise_scale(g_small_sq, g_big_sq, b_small, b_big)
        b = self.beta
        self._grad_sq = b * self._grad_sq + (1.0 - b) * est["grad_sq"]
        self._trace_sigma = b * self._trace_sigma + (1.0 - b) * est["trace_sigma"]
        self.count += 1
        return self.b_simple

    def _debiased(self, value: float) -> float:
        if self.count == 0:
            return math.nan
        return value / (1.0 - self.beta**self.count)

    @property
    def grad_sq(self) -> float:
        """Averaged |G|^2 estimate (NaN before the first update)."""
        return self._debiased(self._grad_sq)

    @property
    def trace_sigma(self) -> float:
        """Averaged tr(Sigma) estimate (NaN before the first update)."""
        return self._debiased(self._trace_sigma)

    @property
    def b_simple(self) -> float:
        """Ratio of the averages; NaN before any update or while the |G|^2 average is <= 0."""
        return _ratio(self.trace_sigma, self.grad_sq) if self.count else math.nan


def squared_grad_norm(params: Iterable[Any]) -> float:
    """Sum of squared ``.grad`` entries over torch parameters (those without grad skipped).

    Accumulates on the device and synchronises once.
    """
    import torch

    sums = [p.grad.detach().float().pow(2).sum() for p in params if p.grad is not None]
    if not sums:
        return 0.0
    return float(torch.stack(sums).sum())
