import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import nn

from lbgap.analysis.sharpness import (
    Convergence,
    box_bounds,
    flat_loss_and_grad,
    flat_params,
    gain_stalled,
    gc_paused,
    pinv_apply,
    random_subspace,
    sharpness,
    sharpness_of_function,
)


def quadratic(h: np.ndarray, c: float):
    """f(x) = 0.5 sum h_i x_i^2 + c with its gradient."""

    def fn(x: np.ndarray) -> tuple[float, np.ndarray]:
        return 0.5 * float(np.sum(h * x * x)) + c, h * x

    return fn


def quadratic_setup(n: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.5, 3.0, n)
    x0 = rng.uniform(-2.0, 2.0, n)
    return h, x0, 0.7


@pytest.mark.parametrize("scale", [1.0, 1e-7])
def test_quadratic_full_space_matches_closed_form(scale):
    # scale 1e-7 starts next to the minimizer (gradient ~1e-7): the search must still move.
    h, x0, c = quadratic_setup()
    x0 = scale * x0
    eps = 0.05
    # A convex separable function is maximized over the box at the vertex moving every
    # coordinate away from the minimizer 0: |x_i| + eps (|x_i| + 1).
    far = np.abs(x0) + eps * (np.abs(x0) + 1.0)
    f_x = 0.5 * np.sum(h * x0**2) + c
    f_max = 0.5 * np.sum(h * far**2) + c
    expected = (f_max - f_x) / (1.0 + f_x) * 100.0

    res = sharpness_of_function(quadratic(h, c), x0, eps, max_iter=200)
    assert res["phi"] == pytest.approx(expected, rel=1e-6)
    assert res["f_x"] == pytest.approx(f_x, rel=1e-12)
    assert res["f_max"] == pytest.approx(f_max, rel=1e-6)
    assert res["subspace_dim"] is None
    assert res["n_params"] == x0.size
    assert res["n_evals"] >= 2


def test_quadratic_scaled_coordinate_subspace_matches_closed_form():
    # A = 2 * (columns of I): A^+ x = x_idx / 2, so the box is eps (|x_idx| / 2 + 1) and the
    # chosen coordinates move by twice that; the others stay fixed.
    h, x0, c = quadratic_setup(n=10, seed=1)
    idx = np.array([1, 4, 7])
    A = 2.0 * np.eye(x0.size)[:, idx]
    eps = 0.1
    moved = x0.copy()
    moved[idx] = np.abs(x0[idx]) + 2.0 * eps * (np.abs(x0[idx]) / 2.0 + 1.0)
    f_x = 0.5 * np.sum(h * x0**2) + c
    f_max = 0.5 * np.sum(h * moved**2) + c

    res = sharpness_of_function(quadratic(h, c), x0, eps, A=A, max_iter=200)
    assert res["phi"] == pytest.approx((f_max - f_x) / (1.0 + f_x) * 100.0, rel=1e-6)
    assert res["subspace_dim"] == 3


@pytest.mark.parametrize("c", [3.0, -0.5])
def test_constant_function_has_zero_sharpness(c):
    x0 = np.linspace(-1.0, 1.0, 5)
    res = sharpness_of_function(lambda x: (c, np.zeros_like(x)), x0, eps=1e-3)
    assert res["phi"] == 0.0
    assert res["f_max"] == res["f_x"] == c


def test_f_max_is_the_best_evaluation_not_the_last():
    # Concave f with its maximizer m inside the box, plus a spike at the second evaluation:
    # the optimizer ends near m, below the spike, and phi must still use the spike.
    m = np.array([0.1, -0.05, 0.02, 0.03])
    seen = []

    def fn(x):
        f = -float(np.sum((x - m) ** 2)) + (1.0 if len(seen) == 1 else 0.0)
        seen.append(f)
        return f, -2.0 * (x - m)

    res = sharpness_of_function(fn, np.zeros(4), eps=0.5, max_iter=10)
    assert seen[-1] < max(seen)
    assert res["f_max"] == max(seen)
    assert res["phi"] == pytest.approx((max(seen) - seen[0]) / (1 + seen[0]) * 100)


def test_identity_subspace_equals_full_space():
    rng = np.random.default_rng(2)
    M = rng.standard_normal((6, 6))
    x0 = rng.standard_normal(6)

    def fn(x):  # non-quadratic: log-sum-exp of a linear map
        z = M @ x
        p = np.exp(z - z.max())
        p /= p.sum()
        return float(z.max() + np.log(np.exp(z - z.max()).sum())), M.T @ p

    full = sharpness_of_function(fn, x0, eps=0.05, max_iter=10)
    sub = sharpness_of_function(fn, x0, eps=0.05, A=np.eye(6), max_iter=10)
    assert full["phi"] > 0
    assert sub["phi"] == pytest.approx(full["phi"], rel=1e-8)
    assert sub["iterations"] == full["iterations"]


def test_f_max_is_the_largest_evaluation_seen():
    h, x0, c = quadratic_setup(seed=3)
    seen = []
    base = quadratic(h, c)

    def fn(x):
        f, g = base(x)
        seen.append(f)
        return f, g

    res = sharpness_of_function(fn, x0, eps=0.05, max_iter=3)
    assert res["n_evals"] == len(seen)
    assert res["f_max"] == max(seen)
    assert res["f_x"] == seen[0]
    assert res["iterations"] <= 3


def test_pinv_apply_and_box_bounds():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 4))
    x = rng.standard_normal(30)
    np.testing.assert_allclose(pinv_apply(A, x), np.linalg.pinv(A) @ x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(box_bounds(x, 0.1, A), 0.1 * (np.abs(np.linalg.pinv(A) @ x) + 1))
    np.testing.assert_allclose(box_bounds(x, 0.1), 0.1 * (np.abs(x) + 1))


def test_pinv_apply_of_float32_matrix_is_float64_accurate():
    # A float32 Gaussian A (as random_subspace draws it), summed in blocks that do not divide n:
    # the float64 normal equations must match an exact float64 pseudo-inverse (a float32 solve
    # is off by ~1e-6 and fails this).
    A = random_subspace(2000, 7, seed=5)
    x = np.random.default_rng(5).standard_normal(2000)
    expected = np.linalg.pinv(A.astype(np.float64)) @ x
    for block_rows in (300, 8192):
        got = pinv_apply(A, x, block_rows=block_rows)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


def test_pinv_apply_rank_deficient_gives_minimum_norm_solution():
    rng = np.random.default_rng(6)
    B = rng.standard_normal((40, 3))
    A = np.column_stack([B, B[:, 0] + B[:, 1]])  # rank 3: the normal equations are singular
    x = rng.standard_normal(40)
    np.testing.assert_allclose(pinv_apply(A, x), np.linalg.pinv(A) @ x, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="rows"):
        pinv_apply(A, x[:-1])


def test_gc_paused_restores_the_collector_state():
    import gc

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_random_subspace_is_seeded():
    a = random_subspace(50, 3, seed=7)
    assert a.shape == (50, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, random_subspace(50, 3, seed=7))
    assert not np.array_equal(a, random_subspace(50, 3, seed=8))


# --------------------------------------------------------------------------- tiny model


def tiny_problem(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double().eval()
    x = torch.randn(37, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (37,))
    return model, x, y


def explicit_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The same network written out by hand on a flat vector (independent of the module code)."""
    w1, b1 = flat[:15].view(5, 3), flat[15:20]
    w2, b2 = flat[20:40].view(4, 5), flat[40:44]
    return F.cross_entropy(torch.tanh(x @ w1.T + b1) @ w2.T + b2, y)


def explicit_fn(x: torch.Tensor, y: torch.Tensor):
    def fn(v: np.ndarray):
        flat = torch.tensor(v, dtype=torch.float64, requires_grad=True)
        loss = explicit_loss(flat, x, y)
        (g,) = torch.autograd.grad(loss, flat)
        return loss.item(), g.numpy()

    return fn


def test_flat_loss_and_grad_matches_explicit_and_is_chunk_invariant():
    model, x, y = tiny_problem()
    v = flat_params(model).numpy() + 0.1
    f_ref, g_ref = explicit_fn(x, y)(v)
    for chunk in (5, 37, 1000):
        f, g = flat_loss_and_grad(model, x, y, chunk_size=chunk)(v)
        assert f == pytest.approx(f_ref, rel=1e-12)
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("subspace_dim", [None, 6])
def test_model_sharpness_matches_core_and_keeps_parameters(subspace_dim):
    model, x, y = tiny_problem(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = sharpness(
        model, x, y, eps=0.05, subspace_dim=subspace_dim, max_iter=5, seed=3, chunk_size=8
    )

    x0 = flat_params(model).numpy()
    A = None if subspace_dim is None else random_subspace(x0.size, subspace_dim, seed=3)
    ref = sharpness_of_function(explicit_fn(x, y), x0, eps=0.05, A=A, max_iter=5)

    assert res["phi"] > 0
    assert res["phi"] == pytest.approx(ref["phi"], rel=1e-7)
    assert res["f_x"] == pytest.approx(ref["f_x"], rel=1e-12)
    assert res["subspace_dim"] == subspace_dim
    assert res["n_params"] == 44
    assert 0 < res["eval_time_s"] <= res["wall_time_s"]
    assert 0 <= res["eval_cpu_s"] <= res["cpu_time_s"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# --------------------------------------------------------------------------- converged estimate


def shifted_rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    """10 - Rosenbrock: maximum 10 at (1, 1), which L-BFGS-B from 0 reaches only after ~20
    iterations (its curved valley)."""
    return 10.0 - scipy.optimize.rosen(x), -scipy.optimize.rosen_der(x)


def two_bumps(x: np.ndarray) -> tuple[float, np.ndarray]:
    """A bump of height 1 at 0.3, whose slope L-BFGS-B from 0 climbs, and one of height 3 at
    -0.8, too narrow to pull it: only a start near -0.8 finds the larger maximum."""
    small, large = np.exp(-((x - 0.3) ** 2) / 0.1), 3.0 * np.exp(-((x + 0.8) ** 2) / 0.02)
    grad = small * (-2.0 * (x - 0.3) / 0.1) + large * (-2.0 * (x + 0.8) / 0.02)
    return float(np.sum(small + large)), grad


def test_the_converged_estimate_leaves_the_papers_measurement_as_it_was():
    # The paper's 10 iterations are read off the first 10 of the longer run: phi, f_max, the
    # evaluations and the message must be those of a run stopped at 10.
    x0 = np.zeros(2)
    plain = sharpness_of_function(shifted_rosenbrock, x0, eps=2.0, max_iter=10)
    longer = sharpness_of_function(
        shifted_rosenbrock, x0, eps=2.0, max_iter=10, converge=Convergence(200, random_starts=2)
    )
    for key in ("phi", "f_x", "f_max", "iterations", "n_evals", "optimizer_message"):
        assert longer[key] == plain[key], key
    assert plain["optimizer_message"] == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
    assert plain["phi_converged"] is None and plain["starts"] == []
    assert longer["trace_f_max"][10] == plain["f_max"] == plain["trace_f_max"][-1]
    assert longer["trace_phi"][10] == pytest.approx(plain["phi"])
    assert len(longer["starts"]) == 2 and longer["converge_n_evals"] > 0


def test_continuing_reaches_the_maximum_that_ten_iterations_miss():
    res = sharpness_of_function(
        shifted_rosenbrock, np.zeros(2), eps=2.0, max_iter=10, converge=Convergence(200)
    )
    closed_form = (10.0 - 9.0) / (1.0 + 9.0) * 100.0  # f(0) = 9, max f = 10 at (1, 1)
    assert res["phi"] < 0.95 * closed_form  # the paper's 10 iterations stop short
    assert res["phi_converged"] == pytest.approx(closed_form, rel=1e-3)
    assert res["converged"] and res["converge_stop"] == "gain below the tolerance"
    assert 10 < res["converge_iterations"] < 200
    trace = res["trace_f_max"]  # the largest f so far: never decreases, starts at f(x0)
    assert trace[0] == res["f_x"] and all(b >= a for a, b in zip(trace, trace[1:], strict=False))
    assert len(res["trace_f"]) == len(trace) == res["converge_iterations"] + 1


def test_a_capped_estimate_says_it_did_not_converge():
    res = sharpness_of_function(
        shifted_rosenbrock, np.zeros(2), eps=2.0, max_iter=10, converge=Convergence(12)
    )
    assert res["converge_iterations"] == 12 and not res["converged"]
    assert res["phi"] <= res["phi_converged"] < 10.0


def test_random_starts_find_the_maximum_that_y0_misses():
    f0 = two_bumps(np.zeros(1))[0]
    small, large = two_bumps(np.array([0.3]))[0], two_bumps(np.array([-0.8]))[0]
    res = sharpness_of_function(
        two_bumps, np.zeros(1), eps=1.0, max_iter=10, converge=Convergence(50, random_starts=3)
    )
    assert res["phi"] == pytest.approx((small - f0) / (1 + f0) * 100, rel=1e-6)
    assert res["phi_converged"] == pytest.approx((large - f0) / (1 + f0) * 100, rel=1e-6)
    assert max(s["phi"] for s in res["starts"]) == res["phi_converged"]
    again = sharpness_of_function(
        two_bumps, np.zeros(1), eps=1.0, max_iter=10, converge=Convergence(50, random_starts=3)
    )
    assert [s["trace_f"] for s in again["starts"]] == [s["trace_f"] for s in res["starts"]]


def test_gain_stalled_needs_patience_iterations_of_small_relative_gain():
    f_x = 1.0  # phi is proportional to best - f_x: gains are relative to that
    assert not gain_stalled([1.0, 2.0, 3.0], f_x, tol=1e-3, patience=3)  # too short
    assert gain_stalled([1.0, 2.0, 2.0, 2.0, 2.0], f_x, tol=1e-3, patience=3)
    assert not gain_stalled([1.0, 2.0, 2.0, 2.0, 3.0], f_x, tol=1e-3, patience=3)
    # the gain allowed is relative to phi (here to best - f_x = 10.01)
    assert not gain_stalled([1.0, 11.0, 11.0, 11.005, 11.01], f_x, tol=1e-4, patience=3)
    assert gain_stalled([1.0, 11.0, 11.0, 11.005, 11.01], f_x, tol=1e-3, patience=3)
    assert gain_stalled([1.0, 1.0, 1.0, 1.0], f_x, tol=1e-3, patience=3)  # flat: phi = 0


def test_the_subspace_matrix_records_its_scale():
    model, x, y = tiny_problem(2)
    res = sharpness(model, x, y, eps=0.05, subspace_dim=6, max_iter=2, seed=4)
    A = random_subspace(44, 6, seed=4).astype(np.float64)
    scale = res["subspace_matrix"]
    assert scale["column_norm_mean"] == pytest.approx(np.linalg.norm(A, axis=0).mean())
    assert scale["sqrt_n"] == pytest.approx(np.sqrt(44)) and scale["seed"] == 4
    assert sharpness(model, x, y, eps=0.05, max_iter=2)["subspace_matrix"] is None


def test_the_optimizer_setting_reaches_every_phi_command_and_its_default_changes_nothing(
    tmp_path, repo_config
):
    """papers.<paper>.analysis.sharpness.optimizer: `device` reaches the command line of every
    analysis that maximizes phi (a dry run); left out, the commands and the plan's analysis
    settings carry no trace of it, so the default's params are what they were."""
    from conftest import run_snakemake, tiny_config, write_config

    from lbgap.config import matrix

    run = "results/keskar2017/F1/LB/seed0"
    targets = [f"{run}/sharpness_full_eps0.001.json", f"{run}/sharpness_training.csv",
               f"{run}/bn_modes.json", f"{run}/reparametrization.json"]  # fmt: skip
    commands = {}
    for optimizer in (None, "device"):
        cfg = tiny_config(repo_config, ["keskar2017"])
        if optimizer:
            analysis = cfg["papers"]["keskar2017"].setdefault("analysis", {})
            analysis.setdefault("sharpness", {})["optimizer"] = optimizer
        write_config(tmp_path / str(optimizer), cfg)
        done = run_snakemake(tmp_path / str(optimizer), "-n", "-p", *targets)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [line for line in done.stdout.splitlines() if "lbgap.analysis.jobs" in line]
        commands[optimizer] = lines
        assert len(lines) == 4
    assert all("--max-iter 10 --optimizer device " in line for line in commands["device"])
    assert not any("--optimizer" in line for line in commands[None])
    assert "optimizer" not in matrix.analysis(repo_config, "keskar2017")["sharpness"]
