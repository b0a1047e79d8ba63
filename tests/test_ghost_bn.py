"""Ghost batch norm equals ordinary batch norm applied to each ghost batch on its own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lbgap.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d, set_ghost_size


def _pair(kind: str, channels: int, ghost: int) -> tuple[nn.Module, nn.Module]:
    """A ghost layer and a plain one with the same (non-trivial) affine parameters."""
    ghost_cls, plain_cls = {
        "1d": (GhostBatchNorm1d, nn.BatchNorm1d),
        "2d": (GhostBatchNorm2d, nn.BatchNorm2d),
    }[kind]
    g, p = ghost_cls(channels, ghost_size=ghost), plain_cls(channels)
    with torch.no_grad():
        g.weight.copy_(torch.linspace(0.5, 2.0, channels))
        g.bias.copy_(torch.linspace(-1.0, 1.0, channels))
    p.load_state_dict(g.state_dict())
    return g, p


def _input(kind: str, n: int, channels: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(n)
    shape = (n, channels) if kind == "1d" else (n, channels, 5, 4)
    # Different statistics per chunk, so batch-wide and per-chunk normalization differ.
    return torch.randn(shape, generator=gen) * 3 + torch.arange(n).view(-1, *[1] * (len(shape) - 1))


@pytest.mark.parametrize("kind", ["1d", "2d"])
@pytest.mark.parametrize(("n", "ghost"), [(32, 8), (30, 8), (8, 8), (5, 8)])
def test_output_and_gradient_equal_per_chunk_batch_norm(kind, n, ghost):
    g, p = _pair(kind, 6, ghost)
    x = _input(kind, n, 6).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = g(x)
    ref = torch.cat([p(chunk) for chunk in x_ref.split(ghost)])
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)


def test_differs_from_whole_batch_norm():
    g, p = _pair("2d", 3, 4)
    x = _input("2d", 16, 3)
    assert not torch.allclose(g(x), p(x), atol=1e-3)


def test_running_stats_are_one_update_with_the_ghosts_average():
    g, _ = _pair("1d", 4, 5)
    x = _input("1d", 20, 4)
    g(x)
    chunks = x.split(5)
    mean = torch.stack([c.mean(0) for c in chunks]).mean(0)
    var = torch.stack([c.var(0, unbiased=True) for c in chunks]).mean(0)
    m = g.momentum
    torch.testing.assert_close(g.running_mean, m * mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        g.running_var, (1 - m) * torch.ones(4) + m * var, rtol=1e-5, atol=1e-5
    )
    assert int(g.num_batches_tracked) == 1


def test_evaluation_uses_running_statistics_not_ghosts():
    g, p = _pair("1d", 4, 2)
    x = _input("1d", 12, 4)
    g(x)
    p.load_state_dict(g.state_dict())
    g.eval(), p.eval()
    torch.testing.assert_close(g(x), p(x))


def test_none_is_plain_batch_norm_and_set_ghost_size_reaches_layers():
    g, p = _pair("1d", 4, 4)
    model = nn.Sequential(g)
    set_ghost_size(model, None)
    x = _input("1d", 16, 4)
    torch.testing.assert_close(model(x), p(x))
    set_ghost_size(model, 4)
    assert g.ghost_size == 4


@pytest.mark.parametrize(
    ("ghost", "batch", "small"), [(32, 1000, 480), (32, 64, 32), (32, 32, 0), (None, 125, 62)]
)
def test_noise_estimate_splits_in_whole_ghost_batches(ghost, batch, small):
    """The noise scale's small batch must normalize the same chunks as the full batch."""
    from types import SimpleNamespace

    from lbgap.train import Trainer

    assert Trainer.noise_split(SimpleNamespace(spec={"ghost_batch": ghost}), batch) == small


def test_whole_ghost_batches_give_the_same_gradient_as_inside_the_full_batch():
    """The first k ghost batches alone normalize exactly as they do within the full batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), GhostBatchNorm1d(5, ghost_size=4), nn.Linear(5, 3))
    x, y = _input("1d", 16, 6), torch.arange(16) % 3
    full = nn.functional.cross_entropy(model(x), y, reduction="none")[:8]
    alone = nn.functional.cross_entropy(model(x[:8]), y[:8], reduction="none")
    torch.testing.assert_close(full, alone)
