"""LARS (You, Gitman, Ginsburg 2017): layer-wise adaptive rate scaling for large batches.

Plain SGD's largest stable LR is set by the layer whose gradient is largest relative to its
weights; at large batch, with the LR scaled up, that layer diverges first. LARS multiplies each
layer's step by its trust ratio

    trust * ||w|| / (||g|| + weight_decay * ||w||),

so every layer moves by about `lr * trust` of its own norm per step, whatever its gradient's
scale. As in common implementations, biases and batch-norm parameters (tensors of one
dimension) are excluded: their step is the global one and they get no weight decay.

The update otherwise follows torch.optim.SGD's form (momentum buffer u <- m u + d, step lr u,
Nesterov d + m u), so the trainer's LR schedule, warmup and momentum-correction emulation
(lbgap.config.schedules.rescale_momentum_buffers) apply unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

TRUST_COEFFICIENT = 0.001  # You et al.'s


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a per-tensor trust ratio (groups with `adapt` False: plain SGD)."""

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        trust_coefficient: float = TRUST_COEFFICIENT,
        nesterov: bool = False,
        eps: float = 1e-9,
    ) -> None:
        if lr <= 0 or trust_coefficient <= 0:
            raise ValueError("LARS needs a positive lr and trust_coefficient")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "trust_coefficient": trust_coefficient, "nesterov": nesterov, "eps": eps,
                    "adapt": True}  # fmt: skip
        super().__init__(params, defaults)

    @staticmethod
    def trust_ratio(p: torch.Tensor, grad: torch.Tensor, group: dict) -> torch.Tensor:
        """trust ||w|| / (||g|| + wd ||w||); 1 where either norm is 0 (nothing to compare)."""
        w_norm = torch.linalg.vector_norm(p)
        g_norm = torch.linalg.vector_norm(grad)
        ratio = (
            group["trust_coefficient"]
            * w_norm
            / (g_norm + group["weight_decay"] * w_norm + group["eps"])
        )
        return torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            m, wd = group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=wd) if wd else p.grad.clone()
                if group["adapt"]:
                    d.mul_(self.trust_ratio(p, p.grad, group))
                if m:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(m).add_(d)
                    d = d.add(buf, alpha=m) if group["nesterov"] else buf
                p.add_(d, alpha=-group["lr"])
        return loss


def excluded(p: nn.Parameter) -> bool:
    """Biases and batch-norm gamma and beta: one-dimensional tensors."""
    return p.ndim <= 1


def make(model: nn.Module, cfg: dict, lr: float) -> LARS:
    """LARS from an `optimizer:` config (name lars): weights adapted and decayed, biases and
    batch-norm parameters neither."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if not excluded(p)]},
        {"params": [p for p in params if excluded(p)], "adapt": False, "weight_decay": 0.0},
    ]
    return LARS(
        [g for g in groups if g["params"]],
        lr=lr,
        momentum=cfg.get("momentum", 0.0),
        weight_decay=cfg.get("weight_decay", 0.0),
        trust_coefficient=cfg.get("trust_coefficient", TRUST_COEFFICIENT),
        nesterov=cfg.get("nesterov", False),
    )
