"""Networks: shapes, parameter counts against the papers' where they give them, width."""

from __future__ import annotations

import pytest
import torch

from lbgap.training.ghost_bn import GhostBatchNorm1d, GhostBatchNorm2d, has_batch_norm
from lbgap.training.models import (
    NETWORKS,
    NO_BATCH_NORM,
    build_model,
    count_parameters,
    zero_init_last_bn,
)

INPUTS = {"F1": (1, 28, 28), "F2": (360,), "alexnet": (3, 224, 224), "resnet50": (3, 224, 224)}


@pytest.mark.parametrize("name", sorted(set(NETWORKS) - {"alexnet", "resnet50", "C2", "C4"}))
def test_forward_shapes(name):
    classes = 1973 if name == "F2" else 10
    model = build_model(name, classes, width=0.25 if name != "F1" else 1.0).eval()
    x = torch.randn(2, *INPUTS.get(name, (3, 32, 32)))
    assert model(x).shape == (2, classes)


@pytest.mark.parametrize(
    ("name", "classes", "millions"),
    [
        # He et al. 2016 Table 6 and Zagoruyko & Komodakis 2016 Table 1 give these sizes.
        ("resnet20", 10, 0.27),
        ("resnet32", 10, 0.46),
        ("resnet44", 10, 0.66),
        ("resnet56", 10, 0.85),
        ("wrn16_4", 10, 2.7),
        ("resnet50", 1000, 25.6),  # torchvision's documented 25,557,032
        ("alexnet", 1000, 61.1),
    ],
)
def test_parameter_counts_match_the_papers(name, classes, millions):
    assert round(count_parameters(build_model(name, classes)) / 1e6, 2 if millions < 1 else 1) == (
        millions
    )


def test_f1_is_five_hidden_layers_of_512():
    model = build_model("F1", 10)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [512] * 5 + [10]
    assert all(isinstance(m, GhostBatchNorm1d) for m in model.modules()
               if isinstance(m, torch.nn.BatchNorm1d))  # fmt: skip


def test_c2_has_thirteen_batch_normalized_convolutions():
    model = build_model("C2", 10, width=0.125)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, GhostBatchNorm2d)]
    assert len(convs) == 13 and len(bns) == 13
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_width_multiplier_shrinks_the_network():
    assert count_parameters(build_model("C1", 10, width=0.5)) < count_parameters(
        build_model("C1", 10)
    )


def test_ghost_size_reaches_every_batch_norm():
    model = build_model("resnet20", 10, ghost_batch=32)
    sizes = {m.ghost_size for m in model.modules() if isinstance(m, GhostBatchNorm2d)}
    assert sizes == {32}


def test_zero_init_residual_sets_last_gamma_to_zero():
    model = build_model("resnet20", 10)
    zero_init_last_bn(model)
    assert all(float(b.bn2.weight.abs().sum()) == 0 for b in model.blocks)
    assert float(model.stem[1].weight.sum()) > 0


def test_unknown_network_lists_the_known_ones():
    with pytest.raises(ValueError, match="resnet20"):
        build_model("resnet21", 10)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_no_batch_norm_names_exactly_the_networks_without_it(name):
    """Plans and tables know by name which networks ghost_batch cannot change."""
    model = build_model(name, 10, width=0.125)
    assert has_batch_norm(model) == (name not in NO_BATCH_NORM)
