"""Ghost batch norm (Hoffer et al. 2017): batch statistics over virtual batches of a fixed size.

Besides closing part of the large-batch gap, fixing the statistics' batch makes a training step
independent of how a global batch is split across ranks and accumulation steps. Without a ghost
batch, several ranks normalize over the global batch (`sync_statistics`), as one process would.
"""

from __future__ import annotations

import torch
import torch.distributed.nn.functional as dist_nn
from torch import nn

from lbgap.training import distributed


class _GhostMixin:
    """Normalize each consecutive chunk of `ghost_size` samples with that chunk's statistics.

    Running statistics take one momentum step per ghost batch, in order, as the authors'
    GhostBatchNorm does, so that they do not depend on how the batch was split into forward
    passes. With `sync` (several ranks, no ghost batch) the statistics are the global batch's.
    """

    ghost_size: int | None
    sync: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not self.training:
            return super().forward(x)  # type: ignore[misc]
        if not self.ghost_size:
            return self._global_forward(x) if self.sync else super().forward(x)  # type: ignore
        if x.shape[0] % self.ghost_size:
            raise ValueError(
                f"a training batch of {x.shape[0]} samples is not a whole number of ghost "
                f"batches of {self.ghost_size}; use a batch and micro_batch that ghost_batch "
                "divides"
            )
        return self._ghost_forward(x)

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """(x - mean) / sqrt(var + eps), then the affine map; channels on dim 2 of `x`."""
        out = (x - mean) * torch.rsqrt(var + self.eps)  # type: ignore[attr-defined]
        shape = [1, 1, -1] + [1] * (x.dim() - 3)
        if self.affine:  # type: ignore[attr-defined]
            out = out * self.weight.view(shape) + self.bias.view(shape)  # type: ignore[attr-defined]
        return out

    def _ghost_forward(self, x: torch.Tensor) -> torch.Tensor:
        """All ghost batches at once: one reshape instead of a Python loop over chunks.

        Statistics are taken in float32 also under bf16 autocast, as PyTorch's batch norm does.
        """
        g = self.ghost_size
        ghosts = x.reshape(x.shape[0] // g, g, *x.shape[1:]).float()
        dims = [1] + list(range(3, ghosts.dim()))
        mean = ghosts.mean(dim=dims, keepdim=True)
        var = ghosts.var(dim=dims, unbiased=False, keepdim=True)
        out = self._normalize(ghosts, mean, var)
        if self.track_running_stats:  # type: ignore[attr-defined]
            chunks = mean.shape[0]
            self._update_running_stats(
                mean.reshape(chunks, -1), var.reshape(chunks, -1), g * ghosts[0, 0, 0].numel()
            )
        return out.reshape(x.shape).to(x.dtype)

    def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Statistics over every rank's samples (a differentiable all-reduce), as PyTorch's
        SyncBatchNorm computes them, also on CPUs (gloo), where SyncBatchNorm does not run."""
        xf = x.float().unsqueeze(0)  # channels on dim 2, as in _normalize
        dims = [1] + list(range(3, xf.dim()))
        count = torch.tensor([float(xf[0, :, 0].numel())], device=x.device)
        total = dist_nn.all_reduce(torch.cat([xf.sum(dim=dims).flatten(), count]))
        n = total[-1]
        mean = (total[:-1] / n).view(1, 1, -1, *[1] * (xf.dim() - 3))
        var = dist_nn.all_reduce((xf - mean).pow(2).sum(dim=dims).flatten()) / n
        out = self._normalize(xf, mean, var.view_as(mean))
        if self.track_running_stats:  # type: ignore[attr-defined]
            self._update_running_stats(mean.reshape(1, -1), var.reshape(1, -1), int(n.item()))
        return out[0].to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: int) -> None:
        """One momentum step per row of `mean` and biased `var` (chunks in order), in closed
        form: after k steps the old value weighs (1 - m)^k and chunk i weighs m (1 - m)^(k-1-i).
        """
        m = self.momentum if self.momentum is not None else 0.1  # type: ignore[attr-defined]
        k = mean.shape[0]
        keep = (1.0 - m) ** torch.arange(k - 1, -1, -1, device=mean.device, dtype=mean.dtype)
        weights = (m * keep).unsqueeze(1)
        unbiased = var * count / max(count - 1, 1)
        for buf, value in ((self.running_mean, mean), (self.running_var, unbiased)):  # type: ignore
            buf.mul_((1.0 - m) ** k).add_((weights * value).sum(0).to(buf.dtype))
        self.num_batches_tracked += k  # type: ignore[attr-defined]


class GhostBatchNorm1d(_GhostMixin, nn.BatchNorm1d):
    def __init__(self, num_features: int, ghost_size: int | None = None, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.ghost_size = ghost_size


class GhostBatchNorm2d(_GhostMixin, nn.BatchNorm2d):
    def __init__(self, num_features: int, ghost_size: int | None = None, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.ghost_size = ghost_size


def ghost_layers(model: nn.Module) -> list[_GhostMixin]:
    return [m for m in model.modules() if isinstance(m, _GhostMixin)]


def has_batch_norm(model: nn.Module) -> bool:
    """Whether any layer normalizes with batch statistics (AlexNet has none)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def set_ghost_size(model: nn.Module, ghost_size: int | None) -> None:
    """Change the virtual batch of every ghost batch-norm layer (e.g. per-rank micro-batches)."""
    for module in ghost_layers(model):
        module.ghost_size = ghost_size


def sync_statistics(model: nn.Module) -> None:
    """Layers without a ghost batch normalize over the global batch of all ranks."""
    for module in ghost_layers(model):
        module.sync = True


Snapshot = list[tuple[_GhostMixin, torch.Tensor, torch.Tensor, int]]


def running_stats(model: nn.Module) -> Snapshot:
    """The ghost layers' running statistics before a step, for `merge_ranks` after it."""
    return [
        (m, m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked))  # type: ignore
        for m in ghost_layers(model)
        if m.ghost_size and m.track_running_stats  # type: ignore[attr-defined]
    ]


@torch.no_grad()
def merge_ranks(before: Snapshot, rank: int, world: int) -> None:
    """Running statistics as one process would have them after stepping through every rank's
    ghost batches in the global batch's order (rank 0's first), the same on every rank.

    Each rank took k steps from R on its own chunks, reaching L; its chunks' part of the
    global result, taken after the later ranks' k (world - 1 - rank) steps, is
    (1 - m)^(k (world - 1 - rank)) (L - (1 - m)^k R); the result adds them to (1 - m)^(k world) R.
    """
    parts, plan = [], []
    for m, mean0, var0, seen in before:
        k = int(m.num_batches_tracked) - seen  # type: ignore[attr-defined]
        if not k:
            continue
        decay = 1.0 - (m.momentum if m.momentum is not None else 0.1)  # type: ignore[attr-defined]
        later = decay ** (k * (world - 1 - rank))
        for buf, old in ((m.running_mean, mean0), (m.running_var, var0)):  # type: ignore
            parts.append(later * (buf - decay**k * old))
            plan.append((buf, old, decay ** (k * world)))
        m.num_batches_tracked.fill_(seen + k * world)  # type: ignore[attr-defined]
    if not parts:
        return
    sizes = [p.numel() for p in parts]
    total = distributed.all_reduce_sum(torch.cat(parts))
    for (buf, old, keep), part in zip(plan, total.split(sizes), strict=True):
        buf.copy_(keep * old + part)
