"""lbgap.analysis.lbfgsb against scipy's L-BFGS-B, iterate by iterate, on float64 problems.

The tolerance (module docstring of lbfgsb): x and f within 1e-10 relative of scipy's at every
iteration, the same iteration and evaluation counts and the same stopping message.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from torch import nn

from lbgap.analysis import lbfgsb
from lbgap.analysis.sharpness import flat_loss_and_grad_tensor, flat_params, sharpness

RTOL = 1e-10
GPU = torch.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="needs a GPU")


def both(fn, x0, lo, hi, maxiter=10, m=10, device="cpu", **opts):
    """Run scipy and lbfgsb from x0 on `fn` (numpy in, (f, grad) out): their per-iteration
    x and f, and their results."""
    ref_x, ref_f = [], []

    def scipy_cb(intermediate_result):
        ref_x.append(intermediate_result.x.copy())
        ref_f.append(float(intermediate_result.fun))

    ref = scipy.optimize.minimize(fn, x0, jac=True, method="L-BFGS-B",
                                  bounds=scipy.optimize.Bounds(lo, hi), callback=scipy_cb,
                                  options={"maxiter": maxiter, "maxcor": m, **opts})  # fmt: skip
    got_x, got_f = [], []

    def torch_fn(x):
        f, g = fn(x.cpu().numpy())
        return f, torch.as_tensor(g, device=x.device)

    def cb(x, f):
        got_x.append(x.cpu().numpy().copy())
        got_f.append(f)

    t = lambda v: torch.as_tensor(v, dtype=torch.float64, device=device)  # noqa: E731
    got = lbfgsb.minimize(torch_fn, t(x0), t(lo), t(hi), maxiter=maxiter, m=m, callback=cb, **opts)
    return (np.array(ref_x), np.array(ref_f), ref), (np.array(got_x), np.array(got_f), got)


def assert_same_iterates(ref, got, rtol=RTOL):
    (rx, rf, rres), (gx, gf, gres) = ref, got
    assert len(rx) == len(gx) >= 1
    scale = np.abs(rx).max(axis=1, keepdims=True)
    assert np.all(np.abs(gx - rx) <= rtol * scale), np.abs(gx - rx).max(axis=1) / scale[:, 0]
    assert np.allclose(gf, rf, rtol=rtol, atol=0)
    assert (gres.nit, gres.nfev, gres.status, gres.message) == (
        rres.nit, rres.nfev, rres.status, rres.message,
    )  # fmt: skip


def quadratic_problem(n=40, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, n))
    h = q @ q.T / n + 0.1 * np.eye(n)
    b = 3 * rng.standard_normal(n)
    return lambda x: (0.5 * x @ h @ x - b @ x, h @ x - b)


def test_box_constrained_quadratic_matches_scipy_with_active_bounds():
    fn = quadratic_problem()
    n = 40
    lo, hi = -0.5 * np.ones(n), 0.5 * np.ones(n)
    ref, got = both(fn, np.zeros(n), lo, hi, maxiter=10)
    assert_same_iterates(ref, got)
    x = got[0][-1]
    at_bound = np.sum((x == lo) | (x == hi))
    assert 5 <= at_bound < n  # bounds are active, and not all: the subspace step is exercised
    assert np.all((got[0] >= lo) & (got[0] <= hi))


def test_ignoring_the_bounds_in_the_cauchy_point_would_be_caught(monkeypatch):
    """The comparison can fail: a Cauchy point that does not stop at the box's breakpoints (it
    sees a box 100 times wider) parts from scipy's iterates."""
    fn = quadratic_problem()
    n = 40
    real = lbfgsb.cauchy

    def no_bounds(x, g, lo, hi, iwhere, mem, sbgnrm):
        return real(x, g, 100 * lo, 100 * hi, iwhere, mem, sbgnrm)

    monkeypatch.setattr(lbfgsb, "cauchy", no_bounds)
    ref, got = both(fn, np.zeros(n), -0.5 * np.ones(n), 0.5 * np.ones(n), maxiter=10)
    with pytest.raises(AssertionError):
        assert_same_iterates(ref, got)


def test_sines_plus_quadratic_with_a_short_memory_matches_scipy():
    """Nonconvex, 15 iterations with m = 3: the memory wraps around; ftol = gtol = 0 as in phi."""
    rng = np.random.default_rng(1)
    n = 30
    c = rng.standard_normal(n)

    def fn(x):
        return np.sum(np.sin(3 * x) * c) + 0.05 * x @ x, 3 * np.cos(3 * x) * c + 0.1 * x

    x0 = rng.uniform(-1, 1, n)
    ref, got = both(fn, x0, -2 * np.ones(n), 2 * np.ones(n), maxiter=15, m=3, ftol=0, gtol=0)
    assert_same_iterates(ref, got)
    assert got[2].message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


def mlp_phi_problem(subspace: int | None):
    """-f(x0 + A y) of a small float64 MLP's mean cross-entropy, as phi maximizes it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    x = torch.randn(24, 8, dtype=torch.float64)
    y = torch.randint(0, 3, (24,))
    fn = flat_loss_and_grad_tensor(model, x, y)
    x0 = flat_params(model).double().numpy()
    A = None if subspace is None else np.random.default_rng(0).standard_normal((x0.size, subspace))

    def neg(v):
        w = x0 + (v if A is None else A @ v)
        f, g = fn(torch.as_tensor(w))
        g = g.numpy()
        return -float(f), -(g if A is None else A.T @ g)

    z = np.abs(x0) if A is None else np.abs(np.linalg.lstsq(A, x0, rcond=None)[0])
    bound = 1e-2 * (z + 1)
    return neg, bound


@pytest.mark.parametrize("subspace", [None, 5])
def test_phi_of_a_small_mlp_matches_scipy_iterate_by_iterate(subspace):
    neg, bound = mlp_phi_problem(subspace)
    ref, got = both(neg, np.zeros_like(bound), -bound, bound, maxiter=10, ftol=0, gtol=0)
    assert_same_iterates(ref, got)


def test_bad_boxes_are_refused_with_the_fix():
    fn = lambda x: (x @ x, 2 * x)  # noqa: E731
    with pytest.raises(ValueError, match="lower bound exceeds"):
        lbfgsb.minimize(fn, torch.zeros(3), torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        lbfgsb.minimize(fn, torch.zeros(3), -torch.full((3,), torch.inf), torch.ones(3))


def small_model():
    """A small float32 MLP near a minimum of random data, as phi is measured in the pipeline."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))
    x, y = torch.randn(300, 20), torch.randint(0, 5, (300,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


# A float32 model: in the full space both optimizers hand the network the same float64 point
# (iterates equal to ~1e-13), rounded to the same float32 weights, so phi agrees to ~1e-12. In a
# random subspace the step A y is a float32 product whose summation order differs between numpy
# and torch, so f can differ at float32 resolution: |delta f| <= 1e-7 (1 + f), which phi (a
# small difference of f values) turns into ~1e-5 relative.
F32_F_TOL = 1e-7


@pytest.mark.parametrize("subspace", [None, 10])
def test_device_phi_equals_scipys_on_a_small_model(subspace):
    model, x, y = small_model()
    ref = sharpness(model, x, y, eps=1e-3, subspace_dim=subspace)
    got = sharpness(model, x, y, eps=1e-3, subspace_dim=subspace, optimizer="device")
    assert (ref["optimizer"], got["optimizer"]) == ("scipy", "device")
    assert ref["phi"] > 0 and got["f_x"] == ref["f_x"]
    assert got["iterations"] == ref["iterations"] and got["n_evals"] == ref["n_evals"]
    tol = F32_F_TOL * (1 + ref["f_x"])
    assert np.allclose(got["trace_f"], ref["trace_f"], rtol=0, atol=tol)
    if subspace is None:
        assert got["phi"] == pytest.approx(ref["phi"], rel=1e-9)
    else:
        assert abs(got["f_max"] - ref["f_max"]) <= tol


def test_an_unknown_optimizer_is_refused():
    model, x, y = small_model()
    with pytest.raises(ValueError, match="optimizer must be one of scipy, device"):
        sharpness(model, x, y, eps=1e-3, optimizer="gpu")


@needs_gpu
def test_on_cuda_the_iterates_match_scipy():
    neg, bound = mlp_phi_problem(None)
    ref, got = both(neg, np.zeros_like(bound), -bound, bound, maxiter=10, ftol=0, gtol=0,
                    device="cuda")  # fmt: skip
    assert_same_iterates(ref, got)
    model, x, y = small_model()
    cpu = sharpness(model, x, y, eps=1e-3)
    gpu = sharpness(model.cuda(), x.cuda(), y.cuda(), eps=1e-3, optimizer="device")
    # the network's float32 sums differ between cuBLAS and the CPU: compare f at that resolution
    assert gpu["optimizer"] == "device" and gpu["iterations"] == cpu["iterations"]
    assert gpu["f_max"] == pytest.approx(cpu["f_max"], abs=1e-5 * (1 + cpu["f_x"]))


def test_adaptive_sharpness_on_the_device_equals_scipys():
    """Kwon et al.'s box through the same option (the reparametrization analysis)."""
    from lbgap.analysis.reparametrization import adaptive_sharpness

    model, x, y = small_model()
    ref = adaptive_sharpness(model, x, y, 1e-2)
    got = adaptive_sharpness(model, x, y, 1e-2, optimizer="device")
    assert got["optimizer"] == "device" and got["zero_params"] == ref["zero_params"]
    assert ref["phi"] > 0 and got["phi"] == pytest.approx(ref["phi"], rel=1e-9)


def test_the_analysis_commands_take_the_optimizer(tmp_path, monkeypatch):
    """`--optimizer device` through lbgap.analysis.jobs: the same records as scipy's, to the
    float32 tolerance, saying which optimizer ran."""
    import json

    from test_keskar2017_analyses import make_data, make_run

    from lbgap.analysis import jobs

    data = make_data()
    run = make_run(tmp_path / "LB" / "seed2", 2)
    monkeypatch.setattr(jobs, "load_data", lambda path, device: data)
    out = {}
    for optimizer in ("scipy", "device"):
        phi = tmp_path / f"phi_{optimizer}.json"
        modes = tmp_path / f"modes_{optimizer}.json"
        common = ["--run", str(run), "--data", "unused.pt", "--max-iter", "4",
                  "--optimizer", optimizer]  # fmt: skip
        assert (
            jobs.main(
                [
                    "sharpness",
                    *common,
                    "--space",
                    "sub4",
                    "--eps",
                    "0.001",
                    "--converge-iter",
                    "6",
                    "--random-starts",
                    "1",
                    "--out",
                    str(phi),
                ]
            )
            == 0
        )
        assert jobs.main(["bn-modes", *common, "--eps", "0.001", "--final", str(phi),
                          "--out", str(modes)]) == 0  # fmt: skip
        out[optimizer] = json.loads(phi.read_text()), json.loads(modes.read_text())
    (phi_s, modes_s), (phi_d, modes_d) = out["scipy"], out["device"]
    assert (phi_s["optimizer"], phi_d["optimizer"]) == ("scipy", "device")
    tol = F32_F_TOL * (1 + phi_s["f_x"])
    assert abs(phi_d["f_max"] - phi_s["f_max"]) <= tol
    assert abs(phi_d["f_max_converged"] - phi_s["f_max_converged"]) <= tol
    for mode, got in modes_d["modes"].items():
        assert got["phi"] == pytest.approx(modes_s["modes"][mode]["phi"], rel=1e-6, abs=1e-9)
