"""The parametric line's math (lbgap.analysis.interpolation): mixed weights, re-estimated BN
statistics."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lbgap.analysis.interpolation import default_alphas, interpolated_state, recompute_bn_stats
from lbgap.training.ghost_bn import GhostBatchNorm1d


def make_data(seed: int = 0, n_train: int = 60, n_test: int = 30) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "train_x": torch.randn(n_train, 4, generator=g, dtype=torch.float64),
        "train_y": torch.randint(0, 3, (n_train,), generator=g),
        "test_x": torch.randn(n_test, 4, generator=g, dtype=torch.float64),
        "test_y": torch.randint(0, 3, (n_test,), generator=g),
    }


def mlp(seed: int, bn: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(4, 8), bn or nn.Identity(), nn.ReLU(), nn.Linear(8, 3)]
    model = nn.Sequential(*layers).double().eval()
    with torch.no_grad():  # make BN buffers differ between the two end points
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model


def test_default_alphas_cover_the_papers_range():
    a = default_alphas()
    assert len(a) == 25 and a[0] == -1.0 and a[-1] == 2.0
    assert 0.0 in a and 1.0 in a
    assert np.all(np.diff(a) > 0)


def test_interpolated_state_mixes_parameters_and_keeps_the_first_runs_buffers():
    model_a, model_b = mlp(0, nn.BatchNorm1d(8)), mlp(1, nn.BatchNorm1d(8))
    sa, sb = model_a.state_dict(), model_b.state_dict()
    names = {k for k, _ in model_a.named_parameters()}
    for alpha in (0.25, -1.0, 2.0):
        state = interpolated_state(sa, sb, alpha, names)
        for k, v in state.items():
            expected = (1 - alpha) * sa[k] + alpha * sb[k] if k in names else sa[k]
            torch.testing.assert_close(v, expected, rtol=1e-12, atol=1e-12)
            assert v.data_ptr() != sa[k].data_ptr(), k  # copies: the end points stay as they were


def full_data_bn_stats(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased variance of the BN layer's input over the whole training set."""
    with torch.no_grad():
        h = model[0](x)
    return h.mean(0), h.var(0, unbiased=True)


@pytest.mark.parametrize("bn", [nn.BatchNorm1d(8), GhostBatchNorm1d(8, ghost_size=4)])
def test_recompute_gives_full_training_data_bn_stats(bn):
    model, data = mlp(0, bn), make_data()
    mean, var = full_data_bn_stats(model, data["train_x"])

    one_chunk = copy.deepcopy(model)
    recompute_bn_stats(one_chunk, data["train_x"], chunk_size=1000)
    torch.testing.assert_close(one_chunk[1].running_mean, mean, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(one_chunk[1].running_var, var, rtol=1e-10, atol=1e-12)
    assert not one_chunk.training and not one_chunk[1].training

    ragged = copy.deepcopy(model)  # chunks of 16, 16, 16, 12: size weighting keeps means exact
    recompute_bn_stats(ragged, data["train_x"], chunk_size=16)
    torch.testing.assert_close(ragged[1].running_mean, mean, rtol=1e-10, atol=1e-12)
    # and the variance between the chunks' means too, not only the average within a chunk
    torch.testing.assert_close(ragged[1].running_var, var, rtol=1e-10, atol=1e-12)
