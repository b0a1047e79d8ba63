"""Ghost batch norm (Hoffer et al. 2017): batch statistics over virtual batches of a fixed size.

Besides closing part of the large-batch gap, fixing the statistics' batch makes a training step
independent of how a global batch is split across ranks and accumulation steps.
"""

from __future__ import annotations

import torch
from torch import nn


class _GhostMixin:
    """Normalize each consecutive chunk of `ghost_size` samples with that chunk's statistics."""

    ghost_size: int | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n = x.shape[0]
        if not self.training or not self.ghost_size or n <= self.ghost_size:
            return super().forward(x)  # type: ignore[misc]
        if n % self.ghost_size:
            # A zero-argument super() cannot run inside a comprehension (its own scope).
            plain = super().forward  # type: ignore[misc]
            return torch.cat([plain(p) for p in x.split(self.ghost_size)])
        return self._ghost_forward(x)

    def _ghost_forward(self, x: torch.Tensor) -> torch.Tensor:
        """All ghost batches at once: one reshape instead of a Python loop over chunks.

        Statistics are taken in float32 also under bf16 autocast, as PyTorch's batch norm does.
        """
        g = self.ghost_size
        ghosts = x.reshape(x.shape[0] // g, g, *x.shape[1:]).float()
        dims = [1] + list(range(3, ghosts.dim()))
        mean = ghosts.mean(dim=dims, keepdim=True)
        var = ghosts.var(dim=dims, unbiased=False, keepdim=True)
        out = (ghosts - mean) * torch.rsqrt(var + self.eps)  # type: ignore[attr-defined]
        shape = [1, 1, -1] + [1] * (ghosts.dim() - 3)
        if self.affine:  # type: ignore[attr-defined]
            out = out * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        if self.track_running_stats:  # type: ignore[attr-defined]
            self._update_running_stats(mean, var, g * ghosts[0, 0, 0].numel())
        return out.reshape(x.shape).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """One momentum update with the ghost batches' average mean and unbiased variance."""
        m = self.momentum if self.momentum is not None else 0.1  # type: ignore[attr-defined]
        unbiased = var * count / max(count - 1, 1)
        self.running_mean.lerp_(mean.reshape(mean.shape[0], -1).mean(0), m)  # type: ignore
        self.running_var.lerp_(unbiased.reshape(var.shape[0], -1).mean(0), m)  # type: ignore
        self.num_batches_tracked += 1  # type: ignore[attr-defined]


class GhostBatchNorm1d(_GhostMixin, nn.BatchNorm1d):
    def __init__(self, num_features: int, ghost_size: int | None = None, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.ghost_size = ghost_size


class GhostBatchNorm2d(_GhostMixin, nn.BatchNorm2d):
    def __init__(self, num_features: int, ghost_size: int | None = None, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.ghost_size = ghost_size


def set_ghost_size(model: nn.Module, ghost_size: int | None) -> None:
    """Change the virtual batch of every ghost batch-norm layer (e.g. per-rank micro-batches)."""
    for module in model.modules():
        if isinstance(module, _GhostMixin):
            module.ghost_size = ghost_size
