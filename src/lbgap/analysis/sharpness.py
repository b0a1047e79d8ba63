"""Keskar et al. (2017) sharpness: the largest relative loss increase inside a small box.

    phi_{x,f}(eps, A) = (max_{y in C_eps} f(x + A y) - f(x)) / (1 + f(x)) * 100
    C_eps = {z : |z_i| <= eps (|(A^+ x)_i| + 1)}

`A = I` gives the full-space metric; a random n x p matrix (p = 100 in the paper) probes a random
subspace. The maximum is approximated, as in the paper, by a few (10) L-BFGS-B iterations on
-f(x + A y) from y = 0, using the exact full-training-set gradient.

Two implementations of that maximization (`optimizer`): "scipy" (the default and reference:
scipy's L-BFGS-B on float64 numpy vectors on the CPU) and "device" (`lbgap.analysis.lbfgsb`, the
same algorithm on float64 tensors where the model is, with no numpy round trip per evaluation).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.optimize
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from lbgap.analysis import lbfgsb
from lbgap.progress import Progress

FlatFn = Callable[[np.ndarray], tuple[float, np.ndarray]]
TensorFn = Callable[[Tensor], tuple[Tensor, Tensor]]
OPTIMIZERS = ("scipy", "device")  # scipy's L-BFGS-B (the reference) or lbgap.analysis.lbfgsb
log = logging.getLogger(__name__)  # progress lines, shown by the analyses' command line


# --------------------------------------------------------------------------- flat parameters


def flat_params(model: nn.Module) -> Tensor:
    """All parameters as one detached vector, in `named_parameters()` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def param_dict(model: nn.Module, flat: Tensor) -> dict[str, Tensor]:
    """Views of `flat` shaped like the model's parameters, for `functional_call`.

    Views (not copies) keep autograd flowing back to the single flat tensor, so one backward
    pass yields the flat gradient directly.
    """
    named = list(model.named_parameters())
    sizes = [p.numel() for _, p in named]
    if flat.numel() != sum(sizes):
        raise ValueError(f"flat vector has {flat.numel()} entries, model has {sum(sizes)}")
    return {name: part.view_as(p) for (name, p), part in zip(named, flat.split(sizes), strict=True)}


def chunks(n: int, chunk_size: int) -> Iterator[slice]:
    """Consecutive slices covering range(n): large chunks, no per-sample loop."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def summed_loss(
    model: nn.Module, params: dict[str, Tensor], inputs: Tensor, targets: Tensor
) -> Tensor:
    """Summed cross-entropy of a chunk with the given parameters (buffers stay the model's)."""
    logits = functional_call(model, params, (inputs,))
    return F.cross_entropy(logits, targets, reduction="sum")


def flat_loss_and_grad_tensor(
    model: nn.Module, inputs: Tensor, targets: Tensor, chunk_size: int = 8192
) -> TensorFn:
    """Return `fn(x) -> (mean CE over all inputs, flat gradient)`, both float64 tensors on the
    model's device, for a flat tensor `x` (cast to the model's parameter dtype and device).

    The model's own parameters are never modified. The module's train/eval mode is left as the
    caller set it: use eval mode so batch norm uses running statistics and `f` is deterministic
    (in train mode batch norm would also update its running buffers at every evaluation).
    """
    ref = next(model.parameters())
    n = inputs.shape[0]

    def fn(x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.detach().to(device=ref.device, dtype=ref.dtype)
        flat.requires_grad_(True)
        params = param_dict(model, flat)
        total = torch.zeros((), dtype=torch.float64, device=ref.device)
        grad = torch.zeros_like(flat, dtype=torch.float64)
        for s in chunks(n, chunk_size):
            loss = summed_loss(model, params, inputs[s], targets[s])
            (g,) = torch.autograd.grad(loss, flat)
            total += loss.detach().double()
            grad += g.double()
        return total / n, grad / n

    return fn


def flat_loss_and_grad(
    model: nn.Module, inputs: Tensor, targets: Tensor, chunk_size: int = 8192
) -> FlatFn:
    """`flat_loss_and_grad_tensor` for scipy: a float64 numpy vector in, (float, numpy) out."""
    ref = next(model.parameters())
    fn = flat_loss_and_grad_tensor(model, inputs, targets, chunk_size)

    def numpy_fn(x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fn(torch.as_tensor(np.asarray(x), device=ref.device))
        return f.item(), g.cpu().numpy()

    return numpy_fn


# --------------------------------------------------------------------------- generic core


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (reference counting goes on).

    For scipy's L-BFGS-B on a million variables: it builds lists of a million tuples, and each
    full collection triggered meanwhile walks them and every other tracked object (about 1 s
    per sharpness measurement of F1). The previous state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def random_subspace(n: int, p: int, seed: int = 0, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Seeded n x p matrix with i.i.d. standard normal entries (full column rank a.s.).

    float32 by default: for n ~ 1e6 and p = 100 it already takes 400 MB.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, p), dtype=np.float32).astype(dtype, copy=False)


def subspace_scale(A: np.ndarray, seed: int) -> dict:
    """How `random_subspace` scaled A, for the record: i.i.d. N(0, 1) entries, so columns of
    norm about sqrt(n). The box eps (|(A^+ x)_i| + 1) is not invariant to that scale: A -> c A
    is the same as keeping A and turning the "+ 1" into "+ c"."""
    squares = np.zeros(A.shape[1])
    for s in chunks(A.shape[0], 8192):
        squares += np.square(A[s].astype(np.float64)).sum(axis=0)
    norms = np.sqrt(squares)
    return {
        "entries": "i.i.d. standard normal",
        "dtype": str(A.dtype),
        "seed": seed,
        "column_norm_mean": float(norms.mean()),
        "column_norm_min": float(norms.min()),
        "column_norm_max": float(norms.max()),
        "sqrt_n": float(np.sqrt(A.shape[0])),
    }


def pinv_apply(A: np.ndarray, x: np.ndarray, block_rows: int = 8192) -> np.ndarray:
    """A^+ x in float64 for a tall n x p matrix; never forms an n x n (or float64 n x p) matrix.

    Normal equations (A^T A) z = A^T x, with A^T A and A^T x summed in float64 over blocks of
    rows of A: O(n p^2) flops and a few MB of memory. Their error grows with cond(A)^2, which
    for a Gaussian A with n >> p is ((1 + sqrt(p/n)) / (1 - sqrt(p/n)))^2, i.e. about 1, so
    the result matches an SVD-based solve to ~1e-14 (a float32 SVD of A is off by ~1e-4) in a
    tenth of the time. A rank-deficient or badly conditioned A falls back to SVD least squares
    in float64 (the minimum-norm solution, A^+ x), which needs a float64 copy of A.
    """
    A = np.asarray(A)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n, p = A.shape
    if x.size != n:
        raise ValueError(f"x has {x.size} entries, A has {n} rows")
    gram = np.zeros((p, p))
    rhs = np.zeros(p)
    for s in chunks(n, block_rows):
        block = A[s].astype(np.float64)  # float32 -> float64 is exact
        gram += block.T @ block
        rhs += block.T @ x[s]
    if p and np.linalg.cond(gram) <= 1e8:  # relative error <~ cond(A^T A) * 1e-16
        return np.linalg.solve(gram, rhs)
    return np.linalg.lstsq(A.astype(np.float64), x, rcond=None)[0]


def box_bounds(x0: np.ndarray, eps: float, A: np.ndarray | None = None) -> np.ndarray:
    """Half-widths eps (|(A^+ x)_i| + 1) of the box C_eps (A = I when None)."""
    z = np.abs(np.asarray(x0, dtype=np.float64)) if A is None else np.abs(pinv_apply(A, x0))
    return eps * (z + 1.0)


def pinv_apply_tensor(A: Tensor, x: Tensor, block_rows: int = 65536) -> Tensor:
    """`pinv_apply` on A's device: the same normal equations summed in float64 over blocks of
    rows (the same SVD fallback), so the box matches numpy's to rounding (~1e-14 relative)."""
    x = x.reshape(-1).double()
    n, p = A.shape
    if x.numel() != n:
        raise ValueError(f"x has {x.numel()} entries, A has {n} rows")
    gram = torch.zeros((p, p), dtype=torch.float64, device=A.device)
    rhs = torch.zeros(p, dtype=torch.float64, device=A.device)
    for s in chunks(n, block_rows):
        block = A[s].double()
        gram += block.T @ block
        rhs += block.T @ x[s]
    if p and float(torch.linalg.cond(gram)) <= 1e8:
        return torch.linalg.solve(gram, rhs)
    return torch.linalg.lstsq(A.double(), x[:, None], driver="gelsd" if A.is_cpu else None)[0][:, 0]


def box_bounds_tensor(x0: Tensor, eps: float, A: Tensor | None = None) -> Tensor:
    """`box_bounds` for tensors, on x0's device."""
    z = x0.double().abs() if A is None else pinv_apply_tensor(A, x0).abs()
    return eps * (z + 1.0)


def _matvec(A: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A v in A's dtype: mixing dtypes would make numpy copy a possibly huge A to float64."""
    return (A @ v.astype(A.dtype, copy=False)).astype(np.float64, copy=False)


# How an L-BFGS-B run stopped by its iteration budget reports it (scipy's wording): the paper's
# measurement when it is read off a longer run at its last iteration.
ITERATION_LIMIT = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"


@dataclass(frozen=True)
class Convergence:
    """How far to push the maximization for the converged estimate beside the paper's phi.

    The paper's 10 iterations from y = 0 stop wherever they are. The converged estimate goes
    on until the largest f seen gains at most `tol` x (f_max - f(x)) (a relative gain in phi)
    in each of `patience` consecutive iterations, at most `max_iter` iterations per start, from
    y = 0 (continuing the paper's run) and from `random_starts` points drawn uniformly in the
    box. Several iterations, not one: L-BFGS-B can stall for an iteration and then find a
    steep direction. Every start gets at least the paper's iterations.
    """

    max_iter: int
    random_starts: int = 0
    tol: float = 1e-3
    patience: int = 3

    def settings(self) -> dict:
        """The settings as a result file records them."""
        return {
            "converge_max_iter": self.max_iter,
            "random_starts": self.random_starts,
            "converge_tol": self.tol,
            "converge_patience": self.patience,
        }


def gain_stalled(best: list[float], f_x: float, tol: float, patience: int) -> bool:
    """Whether `best` (the largest f after each iteration) rose by at most tol x (best - f(x))
    in each of its last `patience` iterations."""
    if len(best) <= patience:
        return False
    allowed = tol * max(best[-1] - f_x, 0.0)
    return bool(np.all(np.diff(best[-patience - 1 :]) <= allowed))


def phi_of(f_max: float, f_x: float) -> float:
    """phi from the largest f found and f at the minimizer."""
    return (f_max - f_x) / (1.0 + f_x) * 100.0


def sharpness_of_function(
    f_and_grad: FlatFn | TensorFn,
    x0: np.ndarray | Tensor,
    eps: float,
    A: np.ndarray | Tensor | None = None,
    max_iter: int = 10,
    converge: Convergence | None = None,
    seed: int = 0,
    optimizer: str = "scipy",
) -> dict:
    """Keskar's phi for any function `f_and_grad(x) -> (f, grad)` around `x0`.

    The budget is `max_iter` L-BFGS-B iterations, as in the paper. scipy's other stopping rules
    are switched off (ftol = gtol = 0): x0 is a near-stationary minimizer, where the first step
    is tiny and the default tests would end the search there and report phi ~ 0. The maximum of
    f over *all* evaluations is used, since L-BFGS-B's last point need not be the best.

    `trace_f` / `trace_f_max` / `trace_phi` hold f at the iterate, the largest f seen and phi
    after each iteration of the run from y = 0 (index 0: y = 0), so a reader sees whether f
    still rose at `max_iter`.

    With `converge`, that run goes on past `max_iter` (its first `max_iter` iterations, hence
    `phi`, are exactly the paper's run: L-BFGS-B's steps do not depend on the budget) and
    `random_starts` more runs start uniformly in the box (seeded by `seed`). `phi_converged`
    comes from the largest f of all, `converged` says whether every start met the tolerance
    (or L-BFGS-B's own optimality test) before the cap; `converge_iterations` and
    `converge_stop` describe the run from y = 0, `starts` each random start.

    Timing: `wall_time_s` / `cpu_time_s` cover the whole call (box set-up included), and
    `eval_time_s` / `eval_cpu_s` the part spent inside `f_and_grad` (`*_cpu_*` is process CPU
    time: for single-threaded work on a shared machine, what an idle core would have taken);
    `converge_wall_time_s` is the part after the paper's measurement.

    `optimizer` "scipy" (numpy in, numpy out: `f_and_grad` maps a float64 numpy vector to
    (f, grad)) or "device" (`lbgap.analysis.lbfgsb`: x0, A and the iterates are tensors on x0's
    device, `f_and_grad` maps a float64 tensor to (f, grad) tensors); the result says which.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    on_device = optimizer == "device"
    t0, c0 = time.perf_counter(), time.process_time()
    if on_device:
        x0 = torch.as_tensor(x0).detach().reshape(-1).double()
        if A is not None:
            A = torch.as_tensor(A, device=x0.device)
        bound = box_bounds_tensor(x0, eps, A)
    else:
        x0 = np.asarray(x0, dtype=np.float64)
        bound = box_bounds(x0, eps, A)
    stats = {"n_evals": 0, "eval_time_s": 0.0, "eval_cpu_s": 0.0, "starts": 0}

    def evaluate(x):  # noqa: ANN001, ANN202 (numpy or tensor, as the optimizer works)
        t, c = time.perf_counter(), time.process_time()
        f, g = f_and_grad(x)
        f = float(f)  # on a GPU this waits for the evaluation: its time is counted here
        stats["eval_time_s"] += time.perf_counter() - t
        stats["eval_cpu_s"] += time.process_time() - c
        stats["n_evals"] += 1
        return f, (g.double() if on_device else np.asarray(g, dtype=np.float64))

    f_x, g_x = evaluate(x0)

    def matvec(M, v):  # noqa: ANN001, ANN202
        if on_device:
            return (M @ v.to(M.dtype)).double()
        return _matvec(M, v)

    def neg_f(y):  # noqa: ANN001, ANN202
        if not bool(y.any()):  # L-BFGS-B starts at y = 0: reuse the evaluation of f(x0)
            f, g = f_x, g_x
        elif A is None:
            f, g = evaluate(x0 + y)
        else:
            f, g = evaluate(x0 + matvec(A, y))
        g = g if A is None else matvec(A.T, g)
        return -f, -g

    paper: dict = {}

    def run(y0: np.ndarray, cap: int) -> dict:
        """One L-BFGS-B run from y0; from y = 0 it is the paper's run for `max_iter` iterations."""
        first = not paper
        index, stats["starts"] = stats["starts"], stats["starts"] + 1
        evals0 = stats["n_evals"]
        seen: list[float] = []  # f of every evaluation of this run, the start point first
        trace_f: list[float] = []
        best: list[float] = []
        halted = False

        def tracked(y):  # noqa: ANN001, ANN202
            value = neg_f(y)
            seen.append(-value[0])
            return value

        def after_iteration(intermediate_result: scipy.optimize.OptimizeResult) -> None:
            after(float(intermediate_result.fun))

        def after(fun: float) -> None:
            nonlocal halted
            if not best:
                trace_f.append(seen[0])
                best.append(seen[0])
            trace_f.append(-fun)
            best.append(max(seen))
            done = index * cap + len(best) - 1  # the ETA is a bound: a start may stop early
            log.info(
                f"sharpness: start {index + 1}/{n_starts} iteration {len(best) - 1}/{cap}, "
                f"f {best[-1]:.6g}, phi {phi_of(best[-1], f_x):.4g}, {progress.line(done)}"
            )
            if first and len(best) - 1 == max_iter:
                paper.update(f_max=best[-1], n_evals=stats["n_evals"], time=time.perf_counter(),
                             message=ITERATION_LIMIT)  # fmt: skip
            if (
                converge is not None
                and len(best) - 1 >= max_iter
                and gain_stalled(best, f_x, converge.tol, converge.patience)
            ):
                halted = True
                raise StopIteration

        # scipy does per-variable Python work on the bounds whatever form they come in:
        # `minimize` turns them into a list of n (lo, hi) tuples, L-BFGS-B's wrapper turns that
        # back into arrays and then sets each variable's bound type in a Python loop. For F1
        # (n = 1.46M) that is about 2.3 s per run with the garbage collector paused (3.5 s
        # without), plus about 0.8 s in the compiled L-BFGS-B steps: a fixed cost per run that
        # only the size of the loss evaluations amortizes.
        if on_device:
            res = lbfgsb.minimize(
                tracked, y0, -bound, bound, maxiter=cap, ftol=0.0, gtol=0.0,
                callback=lambda _y, fun: after(fun),
            )  # fmt: skip
        else:
            with gc_paused():
                res = scipy.optimize.minimize(
                    tracked,
                    y0,
                    jac=True,
                    method="L-BFGS-B",
                    bounds=scipy.optimize.Bounds(-bound, bound),
                    options={"maxiter": cap, "ftol": 0.0, "gtol": 0.0},
                    callback=after_iteration,
                )
        if not best:  # stopped before a first iteration
            trace_f.append(seen[0])
            best.append(max(seen))
        if first and not paper:  # ended before the paper's budget: that is the paper's run
            paper.update(f_max=max(seen), n_evals=stats["n_evals"], time=time.perf_counter(),
                         message=str(res.message))  # fmt: skip
        return {
            "start": "y = 0" if first else "uniform in the box",
            "iterations": int(res.nit),
            "n_evals": stats["n_evals"] - evals0,
            "f_max": max(seen),
            "phi": phi_of(max(seen), f_x),
            "reached": halted or res.status == 0,
            "message": "gain below the tolerance" if halted else str(res.message),
            "trace_f": trace_f,
            "trace_f_max": best,
            "trace_phi": [phi_of(f, f_x) for f in best],
        }

    cap = max_iter if converge is None else max(converge.max_iter, max_iter)
    n_starts = 1 + (converge.random_starts if converge else 0)
    progress = Progress(cap * n_starts)
    runs = [run(torch.zeros_like(bound) if on_device else np.zeros_like(bound), cap)]
    starts = np.random.SeedSequence(seed).spawn(converge.random_starts if converge else 0)
    box = bound.cpu().numpy() if on_device else bound
    for s in starts:  # the same points for both optimizers (numpy's generator, then moved)
        y0 = np.random.default_rng(s).uniform(-box, box)
        runs.append(run(torch.as_tensor(y0, device=bound.device) if on_device else y0, cap))
    f_best = max(r["f_max"] for r in runs)
    end = time.perf_counter()
    return {
        "phi": phi_of(paper["f_max"], f_x),
        "optimizer": optimizer,
        "f_x": f_x,
        "f_max": paper["f_max"],
        "eps": eps,
        "subspace_dim": None if A is None else int(A.shape[1]),
        "iterations": min(runs[0]["iterations"], max_iter),
        "n_evals": paper["n_evals"],
        "optimizer_message": paper["message"],
        "trace_f": runs[0]["trace_f"],
        "trace_f_max": runs[0]["trace_f_max"],
        "trace_phi": runs[0]["trace_phi"],
        "converge_iterations": runs[0]["iterations"] if converge else None,
        "converge_stop": runs[0]["message"] if converge else None,
        "phi_converged": phi_of(f_best, f_x) if converge else None,
        "f_max_converged": f_best if converge else None,
        "converged": all(r["reached"] for r in runs) if converge else None,
        **(converge.settings() if converge else {}),
        "starts": runs[1:] if converge else [],
        "converge_n_evals": stats["n_evals"] - paper["n_evals"],
        "converge_wall_time_s": end - paper["time"],
        "wall_time_s": end - t0,
        "cpu_time_s": time.process_time() - c0,
        "eval_time_s": stats["eval_time_s"],
        "eval_cpu_s": stats["eval_cpu_s"],
        "n_params": int(x0.numel() if on_device else x0.size),
    }


# --------------------------------------------------------------------------- model wrapper


def sharpness(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    eps: float,
    subspace_dim: int | None = None,
    max_iter: int = 10,
    seed: int = 0,
    chunk_size: int = 8192,
    converge: Convergence | None = None,
    optimizer: str = "scipy",
) -> dict:
    """phi of the mean training cross-entropy at the model's parameters.

    `subspace_dim=None` is the full space (A = I); otherwise A is `random_subspace(n, p, seed)`,
    whose scale the result records (`subspace_matrix`): phi depends on it through the box.
    `converge` adds the converged estimate (see `sharpness_of_function`), random starts seeded
    by `seed`. Evaluations go through `functional_call`, so the model's parameters are
    untouched; they are still reloaded from a copy at the end as a safeguard. Call with the
    model in eval mode. `optimizer` "device" keeps the maximization on the model's device
    (see `sharpness_of_function`); A is drawn by numpy either way, so both probe one subspace.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    saved = [p.detach().clone() for p in model.parameters()]
    try:
        x0 = flat_params(model).double()
        A = None if subspace_dim is None else random_subspace(x0.numel(), subspace_dim, seed)
        if optimizer == "device":
            fn = flat_loss_and_grad_tensor(model, inputs, targets, chunk_size)
            A_on = None if A is None else torch.from_numpy(A).to(x0.device)
        else:
            fn, x0, A_on = flat_loss_and_grad(model, inputs, targets, chunk_size), x0.cpu(), A
            x0 = x0.numpy()
        result = sharpness_of_function(
            fn, x0, eps, A=A_on, max_iter=max_iter, converge=converge, seed=seed,
            optimizer=optimizer,
        )  # fmt: skip
        result["subspace_matrix"] = None if A is None else subspace_scale(A, seed)
    finally:
        with torch.no_grad():
            for p, s in zip(model.parameters(), saved, strict=True):
                p.copy_(s)
    result["wall_time_s"] = time.perf_counter() - t0
    result["cpu_time_s"] = time.process_time() - c0
    result["seed"] = seed
    return result
