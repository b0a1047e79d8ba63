"""Keskar et al. (2017) parametric plots: loss and accuracy along (1 - a) x_SB + a x_LB.

Batch norm makes the line ambiguous: running statistics are averages of activations, which are
not linear in the weights, so the statistics of an interpolated network are not the
interpolation of the end points' statistics. Two modes:

* ``"recompute"`` (default): after interpolating the parameters, re-estimate the running
  statistics on the training data (train-mode forward passes without gradients; each layer's
  mean and variance over all its inputs), then evaluate in eval mode. At a = 0 and a = 1 this
  gives the end points' weights with freshly estimated statistics.
* ``"interpolate"``: interpolate the floating-point buffers too (cheap; exact at a = 0 and 1).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lbgap.sharpness import chunks

BN_MODES = ("recompute", "interpolate")


def default_alphas(n: int = 25) -> np.ndarray:
    """The paper's range a in [-1, 2]: 0 is the small-batch, 1 the large-batch solution."""
    return np.linspace(-1.0, 2.0, n)


def _check_compatible(sa: dict[str, Tensor], sb: dict[str, Tensor]) -> None:
    if sa.keys() != sb.keys():
        raise ValueError("models have different state-dict keys")
    for k in sa:
        if sa[k].shape != sb[k].shape:
            raise ValueError(
                f"shape mismatch for {k}: {tuple(sa[k].shape)} vs {tuple(sb[k].shape)}"
            )


def interpolated_state(
    sa: dict[str, Tensor],
    sb: dict[str, Tensor],
    alpha: float,
    param_names: set[str],
    with_buffers: bool,
) -> dict[str, Tensor]:
    """(1 - a) sa + a sb for parameters (and float buffers if asked); other entries from sa."""
    out = {}
    for k, va in sa.items():
        mix = k in param_names or (with_buffers and va.is_floating_point())
        out[k] = torch.lerp(va, sb[k].to(va), alpha) if mix else va.clone()
    return out


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


@torch.no_grad()
def evaluate(model: nn.Module, inputs: Tensor, targets: Tensor, chunk_size: int = 4096) -> dict:
    """Mean cross-entropy and accuracy (%) over all inputs, in the model's current mode."""
    loss = 0.0
    correct = 0
    for s in chunks(inputs.shape[0], chunk_size):
        logits = model(inputs[s])
        loss += F.cross_entropy(logits, targets[s], reduction="sum").item()
        correct += (logits.argmax(dim=1) == targets[s]).sum().item()
    n = inputs.shape[0]
    return {"loss": loss / n, "acc": 100.0 * correct / n}


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    data: dict,
    alphas: Sequence[float],
    bn_mode: str = "recompute",
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Train/test loss and accuracy (%) of (1 - a) model_a + a model_b for every a in `alphas`.

    `data` holds "train_x", "train_y", "test_x", "test_y". Neither input model is modified; the
    work happens on a deep copy of `model_a`.
    """
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    _check_compatible(sa, sb)
    param_names = {k for k, _ in model_a.named_parameters()}
    work = copy.deepcopy(model_a)
    rows = []
    for alpha in alphas:
        state = interpolated_state(sa, sb, float(alpha), param_names, bn_mode == "interpolate")
        work.load_state_dict(state)
        if bn_mode == "recompute":
            recompute_bn_stats(work, data["train_x"], chunk_size)
        work.eval()
        tr = evaluate(work, data["train_x"], data["train_y"], chunk_size)
        te = evaluate(work, data["test_x"], data["test_y"], chunk_size)
        rows.append(
            {
                "alpha": float(alpha),
                "train_loss": tr["loss"],
                "train_acc": tr["acc"],
                "test_loss": te["loss"],
                "test_acc": te["acc"],
            }
        )
    return pd.DataFrame(rows, columns=["alpha", "train_loss", "train_acc", "test_loss", "test_acc"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Keskar SB-to-LB parametric plot data")
    parser.add_argument("--run-a", type=Path, required=True, help="small-batch run (a = 0)")
    parser.add_argument("--run-b", type=Path, required=True, help="large-batch run (a = 1)")
    parser.add_argument("--data", type=Path, required=True, help="prepared data set")
    parser.add_argument("--points", type=int, default=25)
    parser.add_argument("--bn-mode", choices=BN_MODES, default="recompute")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--device", type=torch.device, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from lbgap.data import load_prepared
    from lbgap.io import write_text
    from lbgap.runs import default_device, load_run

    device = args.device or default_device()
    model_a, _ = load_run(args.run_a, device)
    model_b, _ = load_run(args.run_b, device)
    data = load_prepared(args.data, device)
    df = interpolate(
        model_a, model_b, data, default_alphas(args.points), args.bn_mode, args.chunk_size
    )
    write_text(args.out, df.to_csv(index=False))


if __name__ == "__main__":
    main()
