"""Keskar et al. (2017) parametric plots: the weights along (1 - a) x_SB + a x_LB.

The math of lbgap.analysis.jobs.parametric, which builds Figure 3. Batch norm makes the line
ambiguous: running statistics are averages of activations, which are not linear in the weights,
so the statistics of an interpolated network are not the interpolation of the end points'. With
the run's `bn_eval` running they are re-estimated on the training data at every a
(`recompute_bn_stats`); with `batch` each evaluation chunk normalizes itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lbgap.analysis.sharpness import chunks


def default_alphas(n: int = 25) -> np.ndarray:
    """The paper's range a in [-1, 2]: 0 is the small-batch, 1 the large-batch solution."""
    return np.linspace(-1.0, 2.0, n)


def interpolated_state(
    sa: dict[str, Tensor],
    sb: dict[str, Tensor],
    alpha: float,
    param_names: set[str],
) -> dict[str, Tensor]:
    """(1 - a) sa + a sb for parameters; buffers (batch-norm statistics) from sa."""
    return {
        k: torch.lerp(va, sb[k].to(va), alpha) if k in param_names else va.clone()
        for k, va in sa.items()
    }


def batch_norms(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, inputs: Tensor, chunk_size: int = 4096) -> None:
    """Re-estimate batch-norm running statistics on `inputs`: each layer's full-data mean and
    unbiased variance of its input, whatever the chunk size.

    Only the batch-norm layers run in train mode (dropout etc. stay in eval mode), each chunk
    normalized with its own statistics as in training. Sums of the inputs and of their squares
    (float64) are added over chunks, so the variance includes the variance between chunk
    means, which an average of within-chunk variances would leave out. Ghost batch norm is
    switched to whole-chunk statistics. Leaves the model in eval mode.
    """
    bns = batch_norms(model)
    if not bns:
        return
    model.eval()
    sums: dict[nn.Module, list] = {bn: [0.0, 0.0, 0] for bn in bns}

    def add(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0].double().transpose(0, 1).flatten(1)  # channels first, then every value
        acc = sums[bn]
        acc[0], acc[1], acc[2] = acc[0] + x.sum(1), acc[1] + x.pow(2).sum(1), acc[2] + x.shape[1]

    hooks = [bn.register_forward_pre_hook(add) for bn in bns]
    for bn in bns:
        if hasattr(bn, "ghost_size"):
            bn.ghost_size = None
        bn.train()
    try:
        for s in chunks(inputs.shape[0], chunk_size):
            model(inputs[s])
    finally:
        for hook in hooks:
            hook.remove()
    for bn, (total, squares, n) in sums.items():
        mean = total / n
        var = (squares - n * mean.pow(2)) / max(n - 1, 1)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var.clamp_min(0.0))
    model.eval()
