import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lbgap.analysis.hessian import (
    hessian_vector_product,
    hutchinson_trace,
    rademacher,
    top_eigenvalue,
)
from lbgap.analysis.sharpness import flat_params


def tiny_problem(seed: int = 0):
    """2-layer tanh net with 4*6 + 6 + 6*3 + 3 = 51 parameters, float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    x = torch.randn(45, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (45,))
    return model, x, y


def explicit_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dense Hessian of the same network written out by hand on a flat vector."""

    def loss(flat: torch.Tensor) -> torch.Tensor:
        w1, b1 = flat[:24].view(6, 4), flat[24:30]
        w2, b2 = flat[30:48].view(3, 6), flat[48:51]
        return F.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)

    return torch.autograd.functional.hessian(loss, flat_params(model))


@pytest.fixture(scope="module")
def problem():
    model, x, y = tiny_problem()
    return model, x, y, explicit_hessian(model, x, y)


def test_hvp_matches_dense_hessian_with_ragged_chunks(problem):
    model, x, y, H = problem
    hvp = hessian_vector_product(model, x, y, chunk_size=16)  # 16 + 16 + 13 samples
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hvp(v), H @ v, rtol=1e-10, atol=1e-12)


def test_top_eigenvalue_matches_eigvalsh(problem):
    model, x, y, H = problem
    expected = torch.linalg.eigvalsh(H).max().item()
    lam = top_eigenvalue(model, x, y, tol=1e-10, chunk_size=16)
    assert lam == pytest.approx(expected, rel=1e-8)
    # The default tolerance is loose but still accurate to it.
    assert top_eigenvalue(model, x, y) == pytest.approx(expected, rel=1e-3)


def test_hutchinson_samples_are_exact_quadratic_forms(problem):
    model, x, y, H = problem
    n = 40
    res = hutchinson_trace(model, x, y, n_samples=n, seed=5, chunk_size=16)
    gen = torch.Generator().manual_seed(5)
    forms = [float(v @ H @ v) for v in (rademacher(H.shape[0], gen, H.dtype) for _ in range(n))]
    assert res["trace"] == pytest.approx(np.mean(forms), rel=1e-10)
    assert res["trace_std_err"] == pytest.approx(np.std(forms, ddof=1) / np.sqrt(n), rel=1e-8)
    assert res == hutchinson_trace(model, x, y, n_samples=n, seed=5, chunk_size=16)


def test_hutchinson_trace_is_within_its_standard_error(problem):
    model, x, y, H = problem
    n = 500
    res = hutchinson_trace(model, x, y, n_samples=n, seed=0)
    # For Rademacher probes Var(v^T H v) = 2 * sum_{i != j} H_ij^2 exactly.
    off = H - torch.diag(torch.diag(H))
    sigma = float(torch.sqrt(2 * (off**2).sum())) / np.sqrt(n)
    assert res["trace_std_err"] == pytest.approx(sigma, rel=0.25)
    assert abs(res["trace"] - float(torch.trace(H))) < 4 * sigma
    assert res["n_samples"] == n


def test_hutchinson_needs_two_samples(problem):
    model, x, y, _ = problem
    with pytest.raises(ValueError):
        hutchinson_trace(model, x, y, n_samples=1)
