"""Gradient noise scale estimators (McCandlish et al. 2018)."""

import math

import numpy as np
import pytest

from lbgap.training.noise import NoiseScaleTracker, gradient_noise_scale, squared_grad_norm


def test_estimators_exact_on_expected_norms():
    # |G|^2 = 4, tr(Sigma) = 64: E|G_8|^2 = 4 + 64/8 = 12, E|G_32|^2 = 4 + 64/32 = 6.
    est = gradient_noise_scale(12.0, 6.0, 8, 32)
    assert est["grad_sq"] == pytest.approx(4.0, rel=1e-12)
    assert est["trace_sigma"] == pytest.approx(64.0, rel=1e-12)
    assert est["b_simple"] == pytest.approx(16.0, rel=1e-12)


def test_nonpositive_grad_estimate_gives_nan():
    # (32*2 - 8*10) / 24 < 0: noise dominates, B_simple undefined.
    assert math.isnan(gradient_noise_scale(10.0, 2.0, 8, 32)["b_simple"])


def test_batch_sizes_validated():
    with pytest.raises(ValueError, match="b_small < b_big"):
        gradient_noise_scale(1.0, 1.0, 32, 32)


def test_tracker_is_ratio_of_debiased_averages():
    t = NoiseScaleTracker(beta=0.5)
    assert math.isnan(t.b_simple)
    t.update(12.0, 6.0, 8, 32)  # |G|^2 = 4, S = 64
    assert t.grad_sq == pytest.approx(4.0) and t.trace_sigma == pytest.approx(64.0)
    t.update(6.0, 3.0, 4, 16)  # |G|^2 = (48 - 24) / 12 = 2, S = 3 / (3/16) = 16
    # Debiased EMA after two steps weights them 1:2.
    assert t.grad_sq == pytest.approx((4.0 + 2 * 2.0) / 3)
    assert t.trace_sigma == pytest.approx((64.0 + 2 * 16.0) / 3)
    assert t.b_simple == pytest.approx(96.0 / 8.0)  # ratio of averages, not (16 + 2 * 8) / 3
    assert t.count == 2


def _linear_regression_grad_norms(rng, draws: int, d: int, b_small: int, b_big: int):
    """Squared norms of minibatch gradients of 0.5 (x.w - y)^2 at w = w* + delta.

    x ~ N(0, I), y = x.w* + N(0, sigma^2) with sigma = 1 and |delta| = 1, so the per-example
    gradient x (x.delta - noise) has mean G = delta and covariance (|delta|^2 + sigma^2) I +
    delta delta^T: tr(Sigma) = 2d + 1, |G|^2 = 1. The small batch is a slice of the big one,
    as with one rank's gradient and the all-reduced gradient.
    """
    delta = rng.standard_normal(d)
    delta /= np.linalg.norm(delta)
    x = rng.standard_normal((draws, b_big, d))
    residual = x @ delta - rng.standard_normal((draws, b_big))
    g = x * residual[..., None]
    g_big = g.mean(axis=1)
    g_small = g[:, :b_small].mean(axis=1)
    return (g_small**2).sum(axis=1), (g_big**2).sum(axis=1)


def test_recovers_b_simple_on_linear_regression():
    d, b_small, b_big = 10, 8, 64
    true_b_simple = 2 * d + 1
    small_sq, big_sq = _linear_regression_grad_norms(
        np.random.default_rng(0), 10_000, d, b_small, b_big
    )
    est = gradient_noise_scale(float(small_sq.mean()), float(big_sq.mean()), b_small, b_big)
    assert est["grad_sq"] == pytest.approx(1.0, rel=0.1)
    assert est["trace_sigma"] == pytest.approx(true_b_simple, rel=0.1)
    assert est["b_simple"] == pytest.approx(true_b_simple, rel=0.1)

    tracker = NoiseScaleTracker(beta=0.9995)
    for s, b in zip(small_sq.tolist(), big_sq.tolist(), strict=True):
        tracker.update(s, b, b_small, b_big)
    assert tracker.b_simple == pytest.approx(true_b_simple, rel=0.1)
    # A single pair is far too noisy to be trusted on its own.
    single = [
        gradient_noise_scale(s, b, b_small, b_big)["grad_sq"]
        for s, b in zip(small_sq[:200].tolist(), big_sq[:200].tolist(), strict=True)
    ]
    assert np.std(single) > 0.3


def test_squared_grad_norm():
    torch = pytest.importorskip("torch")
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1, 1))
    c = torch.nn.Parameter(torch.zeros(3))  # no grad: skipped
    a.grad = torch.tensor([1.0, 2.0])
    b.grad = torch.tensor([[3.0]])
    assert squared_grad_norm([a, b, c]) == pytest.approx(14.0)
    assert squared_grad_norm([c]) == 0.0
