import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lbgap.ghost_bn import GhostBatchNorm1d
from lbgap.interpolation import default_alphas, interpolate, recompute_bn_stats

COLUMNS = ["alpha", "train_loss", "train_acc", "test_loss", "test_acc"]


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


def direct_metrics(model: nn.Module, data: dict) -> dict:
    """Reference metrics: one plain eval-mode forward pass per split."""
    model.eval()
    out = {}
    with torch.no_grad():
        for split in ("train", "test"):
            logits = model(data[f"{split}_x"])
            y = data[f"{split}_y"]
            out[f"{split}_loss"] = F.cross_entropy(logits, y).item()
            out[f"{split}_acc"] = 100.0 * (logits.argmax(1) == y).double().mean().item()
    return out


def assert_row(row, expected: dict) -> None:
    for k, v in expected.items():
        assert row[k] == pytest.approx(v, rel=1e-10, abs=1e-12), k


def test_default_alphas_cover_the_papers_range():
    a = default_alphas()
    assert len(a) == 25 and a[0] == -1.0 and a[-1] == 2.0
    assert 0.0 in a and 1.0 in a
    assert np.all(np.diff(a) > 0)


@pytest.mark.parametrize("bn_mode", ["recompute", "interpolate"])
def test_end_points_reproduce_each_model_without_bn(bn_mode):
    model_a, model_b, data = mlp(0), mlp(1), make_data()
    df = interpolate(model_a, model_b, data, [0.0, 1.0], bn_mode=bn_mode, chunk_size=16)
    assert list(df.columns) == COLUMNS
    assert_row(df.iloc[0], direct_metrics(model_a, data))
    assert_row(df.iloc[1], direct_metrics(model_b, data))


def test_interior_and_extrapolated_points_mix_the_weights():
    model_a, model_b, data = mlp(0), mlp(1), make_data()
    for alpha in (0.25, -1.0, 2.0):
        mixed = copy.deepcopy(model_a)
        with torch.no_grad():
            triples = zip(
                mixed.parameters(), model_a.parameters(), model_b.parameters(), strict=True
            )
            for pm, pa, pb in triples:
                pm.copy_((1 - alpha) * pa + alpha * pb)
        df = interpolate(model_a, model_b, data, [alpha], chunk_size=16)
        assert_row(df.iloc[0], direct_metrics(mixed, data))


def test_inputs_are_not_modified():
    model_a, model_b, data = mlp(0, nn.BatchNorm1d(8)), mlp(1, nn.BatchNorm1d(8)), make_data()
    before = [copy.deepcopy(m.state_dict()) for m in (model_a, model_b)]
    interpolate(model_a, model_b, data, [0.5], chunk_size=16)
    for m, sd in zip((model_a, model_b), before, strict=True):
        for k, v in m.state_dict().items():
            assert torch.equal(v, sd[k]), k
    assert not model_a.training


def test_interpolate_mode_end_points_keep_bn_buffers():
    model_a, model_b, data = mlp(0, nn.BatchNorm1d(8)), mlp(1, nn.BatchNorm1d(8)), make_data()
    df = interpolate(model_a, model_b, data, [0.0, 1.0], bn_mode="interpolate")
    assert_row(df.iloc[0], direct_metrics(model_a, data))
    assert_row(df.iloc[1], direct_metrics(model_b, data))


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


def test_recompute_mode_evaluates_with_full_data_bn_stats():
    model_a, model_b, data = mlp(0, nn.BatchNorm1d(8)), mlp(1, nn.BatchNorm1d(8)), make_data()
    for alpha in (0.0, 0.5, 1.0):
        mixed = copy.deepcopy(model_a)
        sb = model_b.state_dict()
        with torch.no_grad():
            for name, p in mixed.named_parameters():
                p.copy_((1 - alpha) * p + alpha * sb[name])
            mean, var = full_data_bn_stats(mixed, data["train_x"])
            mixed[1].running_mean.copy_(mean)
            mixed[1].running_var.copy_(var)
        df = interpolate(model_a, model_b, data, [alpha], bn_mode="recompute", chunk_size=1000)
        assert_row(df.iloc[0], direct_metrics(mixed, data))


def test_rejects_unknown_bn_mode_and_mismatched_models():
    data = make_data()
    with pytest.raises(ValueError, match="bn_mode"):
        interpolate(mlp(0), mlp(1), data, [0.0], bn_mode="average")
    with pytest.raises(ValueError):
        interpolate(mlp(0), mlp(1, nn.BatchNorm1d(8)), data, [0.0])
