"""Curvature of the full training loss: top Hessian eigenvalue (Lanczos) and trace (Hutchinson).

Both only need Hessian-vector products, computed by double backward over the whole training set
in chunks, so the Hessian itself is never formed. Call with the model in eval mode so batch norm
uses its running statistics (the loss is then a fixed function of the parameters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse.linalg as sla
import torch
from torch import Tensor, nn

from lbgap.analysis.sharpness import chunks, flat_params, param_dict, summed_loss
from lbgap.progress import Progress, duration

log = logging.getLogger(__name__)  # progress lines, shown by the analyses' command line


def hessian_vector_product(
    model: nn.Module, inputs: Tensor, targets: Tensor, chunk_size: int = 8192
) -> Callable[[Tensor], Tensor]:
    """Return `hvp(v) = H v` for the mean training cross-entropy at the current parameters.

    `v` is a flat vector (any dtype/device); the result has the parameters' dtype and device.
    The parameters are read once, when this is called; the model is never modified.
    """
    x = flat_params(model)
    n = inputs.shape[0]

    def hvp(v: Tensor) -> Tensor:
        v = v.to(device=x.device, dtype=x.dtype)
        flat = x.clone().requires_grad_(True)
        params = param_dict(model, flat)
        out = torch.zeros_like(x)
        for s in chunks(n, chunk_size):
            loss = summed_loss(model, params, inputs[s], targets[s])
            (g,) = torch.autograd.grad(loss, flat, create_graph=True)
            (hv,) = torch.autograd.grad(g @ v, flat)
            out += hv
        return out / n

    return hvp


def _numpy_operator(hvp: Callable[[Tensor], Tensor], n: int) -> sla.LinearOperator:
    """Wrap a torch HVP as a symmetric float64 scipy operator (logging each product: ARPACK
    says beforehand neither how many it needs nor how far it is)."""
    start, count = time.monotonic(), [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        log.info(
            f"hessian: Lanczos product {count[0]}, elapsed {duration(time.monotonic() - start)}"
        )
        return hvp(torch.from_numpy(np.ascontiguousarray(v).reshape(-1))).double().cpu().numpy()

    return sla.LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def top_eigenvalue(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    chunk_size: int = 8192,
    ncv: int | None = None,
) -> float:
    """Largest (algebraic) eigenvalue of the training-loss Hessian by implicitly restarted Lanczos.

    `max_iter` is ARPACK's number of restarts, `tol` its relative accuracy and `ncv` its Lanczos
    basis size (ARPACK's default 20 when None; each restart costs about `ncv` Hessian-vector
    products, so a smaller basis is cheaper when the top eigenvalue is well separated). The
    seeded start vector makes the result reproducible.
    """
    n = sum(p.numel() for p in model.parameters())
    op = _numpy_operator(hessian_vector_product(model, inputs, targets, chunk_size), n)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        vals = sla.eigsh(
            op,
            k=1,
            which="LA",
            maxiter=max_iter,
            tol=tol,
            v0=v0,
            ncv=ncv,
            return_eigenvectors=False,
        )
    except sla.ArpackNoConvergence as err:
        if len(err.eigenvalues) == 0:
            raise
        vals = err.eigenvalues
    return float(np.max(vals))


def rademacher(n: int, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """Random +-1 vector (drawn on the CPU so results do not depend on the device)."""
    bits = torch.randint(0, 2, (n,), generator=generator)
    return (2 * bits - 1).to(dtype)


def hutchinson_trace(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    n_samples: int = 100,
    seed: int = 0,
    chunk_size: int = 8192,
) -> dict:
    """Unbiased trace estimate mean_k v_k^T H v_k with Rademacher v_k, plus its standard error."""
    if n_samples < 2:
        raise ValueError("n_samples must be >= 2 to estimate a standard error")
    x = flat_params(model)
    hvp = hessian_vector_product(model, inputs, targets, chunk_size)
    gen = torch.Generator().manual_seed(seed)
    samples = []
    progress = Progress(n_samples)
    for k in range(n_samples):
        v = rademacher(x.numel(), gen, x.dtype).to(x.device)
        samples.append(float(torch.dot(v, hvp(v)).double()))
        value, left = samples[-1], progress.line(k + 1)
        log.info(f"hessian: trace probe {k + 1}/{n_samples}, v'Hv {value:.6g}, {left}")
    s = np.asarray(samples)
    return {
        "trace": float(s.mean()),
        "trace_std_err": float(s.std(ddof=1) / np.sqrt(n_samples)),
        "n_samples": n_samples,
        "seed": seed,
    }
