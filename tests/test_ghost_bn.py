"""Ghost batch norm equals ordinary batch norm applied to each ghost batch on its own."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lbgap.training import ghost_bn
from lbgap.training.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d, set_ghost_size
from lbgap.training.train import Trainer


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
@pytest.mark.parametrize(("n", "ghost"), [(32, 8), (24, 8), (8, 8)])
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


@pytest.mark.parametrize(("n", "ghost"), [(30, 8), (5, 8), (20, 15)])
def test_a_batch_of_partial_ghost_batches_is_refused_in_one_line(n, ghost):
    """Ghost 120 with batch 500 used to normalize a short last chunk, ghost 499 crashed on a
    last chunk of one sample, and a batch below the ghost size fell back to its own size."""
    g, _ = _pair("1d", 4, ghost)
    with pytest.raises(ValueError, match=f"^a training batch of {n} samples is not a whole"):
        g(_input("1d", n, 4))


def test_running_stats_step_once_per_ghost_batch_in_order():
    """As the authors' GhostBatchNorm: one momentum update per chunk, the last weighing most."""
    g, p = _pair("1d", 4, 5)
    x = _input("1d", 20, 4)
    g(x)
    for chunk in x.split(5):
        p(chunk)
    torch.testing.assert_close(g.running_mean, p.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.running_var, p.running_var, rtol=1e-5, atol=1e-5)
    assert int(g.num_batches_tracked) == 4


def test_running_stats_do_not_depend_on_the_micro_batches():
    whole, _ = _pair("2d", 3, 4)
    split, _ = _pair("2d", 3, 4)
    x = _input("2d", 32, 3)
    whole(x)
    for micro in x.split(8):
        split(micro)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(whole, name), getattr(split, name))


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_merge_to_the_running_stats_of_one_process(world, monkeypatch):
    """Each rank steps through its own ghost batches; merging gives one process's statistics,
    the same on every rank (with all_reduce_sum played by a sum over the ranks' parts)."""
    x = _input("2d", 64, 3)
    one, _ = _pair("2d", 3, 4)
    one(x)
    ranks = [_pair("2d", 3, 4)[0] for _ in range(world)]
    befores = [ghost_bn.running_stats(r) for r in ranks]
    for r, share in zip(ranks, x.chunk(world), strict=True):
        for micro in share.chunk(2):  # and micro-batches within a rank
            r(micro)
    parts = []
    monkeypatch.setattr(ghost_bn.distributed, "all_reduce_sum", lambda t: parts.append(t) or t)
    for rank in range(world):
        ghost_bn.merge_ranks(copy.deepcopy(befores[rank]), rank, world)  # its part only
    total = torch.stack(parts).sum(0)
    monkeypatch.setattr(ghost_bn.distributed, "all_reduce_sum", lambda t: total.clone())
    for rank in range(world):
        ghost_bn.merge_ranks(befores[rank], rank, world)
        merged = ranks[rank]
        torch.testing.assert_close(merged.running_mean, one.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(merged.running_var, one.running_var, rtol=1e-5, atol=1e-5)
        assert int(merged.num_batches_tracked) == int(one.num_batches_tracked) == 16


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
    ("ghost", "batch_norm", "batch", "small"),
    [(32, True, 1000, 480), (32, True, 64, 32), (32, True, 32, 0), (None, False, 125, 62)],
)
def test_noise_estimate_splits_in_whole_ghost_batches(ghost, batch_norm, batch, small):
    """The noise scale's small batch must normalize the same chunks as the full batch."""
    trainer = SimpleNamespace(spec=SimpleNamespace(ghost_batch=ghost), batch_norm=batch_norm)
    assert Trainer.noise_split(trainer, batch) == small


def test_no_noise_estimate_where_half_a_batch_normalizes_otherwise():
    """Batch norm over the whole batch: half a batch has other statistics, so the estimate
    would be biased; there is none (B_noise stays NaN)."""
    trainer = SimpleNamespace(spec=SimpleNamespace(ghost_batch=None), batch_norm=True)
    assert Trainer.noise_split(trainer, 128) == 0


def test_whole_ghost_batches_give_the_same_gradient_as_inside_the_full_batch():
    """The first k ghost batches alone normalize exactly as they do within the full batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), GhostBatchNorm1d(5, ghost_size=4), nn.Linear(5, 3))
    x, y = _input("1d", 16, 6), torch.arange(16) % 3
    full = nn.functional.cross_entropy(model(x), y, reduction="none")[:8]
    alone = nn.functional.cross_entropy(model(x[:8]), y[:8], reduction="none")
    torch.testing.assert_close(full, alone)
