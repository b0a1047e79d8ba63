"""LARS (You et al. 2017): the layer-wise step is trust x ||w|| whatever the gradient's scale;
biases and batch norm take plain SGD steps; the rest is torch's SGD (issue 21)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lbgap.config.schedules import rescale_momentum_buffers
from lbgap.training import lars
from lbgap.training.models import build_model
from lbgap.training.train import make_optimizer


def _one_step(grad_scale: float, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(8, 4))
    before = w.detach().clone()
    opt = lars.LARS([w], **kwargs)
    w.grad = grad_scale * torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    opt.step()
    return before, w.detach()


@pytest.mark.parametrize("grad_scale", [1e-3, 1.0, 1e3])
def test_the_step_is_trust_times_the_weight_norm_whatever_the_gradient(grad_scale):
    before, after = _one_step(grad_scale, lr=0.5, trust_coefficient=0.01)
    step = float(torch.linalg.vector_norm(after - before))
    assert step == pytest.approx(0.5 * 0.01 * float(torch.linalg.vector_norm(before)), rel=1e-5)


def test_weight_decay_enters_the_trust_ratio_and_the_direction():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3))
    g = torch.randn(5, 3)
    w.grad = g.clone()
    opt = lars.LARS([w], lr=1.0, trust_coefficient=0.1, weight_decay=0.5)
    before = w.detach().clone()
    opt.step()
    wn, gn = before.norm(), g.norm()
    expected = before - 0.1 * wn / (gn + 0.5 * wn) * (g + 0.5 * before)
    assert torch.allclose(w.detach(), expected, atol=1e-6)


def test_excluded_groups_and_momentum_follow_torch_sgd():
    """With the trust ratio off, LARS is torch.optim.SGD (momentum, Nesterov, weight decay)."""
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(6)), nn.Parameter(torch.randn(6))
    b.data.copy_(a.data)
    mine = lars.LARS([{"params": [a], "adapt": False}], lr=0.1, momentum=0.9, nesterov=True,
                     weight_decay=0.01)  # fmt: skip
    ref = torch.optim.SGD([b], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    for k in range(3):
        g = torch.randn(6, generator=torch.Generator().manual_seed(k))
        a.grad, b.grad = g.clone(), g.clone()
        mine.step()
        ref.step()
    assert torch.allclose(a, b, atol=1e-7)
    rescale_momentum_buffers(mine, 0.1, 0.05)  # the trainer's momentum-correction emulation
    assert torch.allclose(mine.state[a]["momentum_buffer"], 2 * ref.state[b]["momentum_buffer"])


def test_the_config_builds_lars_with_biases_and_batch_norm_excluded():
    model = build_model("F1", 10, width=0.05)
    cfg = {"name": "lars", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
           "trust_coefficient": 0.02}  # fmt: skip
    opt = make_optimizer(model, cfg, 0.1)
    adapted, plain = opt.param_groups
    assert isinstance(opt, lars.LARS) and adapted["adapt"] and not plain["adapt"]
    assert adapted["trust_coefficient"] == 0.02 and plain["weight_decay"] == 0.0
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    assert {id(p) for p in adapted["params"]} == {id(w) for w in weights}
    assert len(plain["params"]) == sum(p.ndim == 1 for p in model.parameters())
    with pytest.raises(ValueError, match="sgd, adam or lars"):
        make_optimizer(model, {"name": "lamb", "lr": 0.1}, 0.1)


def test_lars_trains_a_small_network():
    torch.manual_seed(0)
    model = build_model("F1", 10, width=0.05)
    x, y = torch.randn(128, 784), torch.randint(0, 10, (128,))
    opt = make_optimizer(model, {"name": "lars", "lr": 1.0, "momentum": 0.9,
                                 "trust_coefficient": 0.02}, 1.0)  # fmt: skip
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_the_lars_table_sets_lars_beside_sgd_of_the_same_kn_and_seed(tmp_path, monkeypatch):
    from paper_fakes import fill, plan_and_specs, quick_config

    from lbgap.products import claims
    from lbgap.products.papers import goyal2017

    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(quick_config(), "goyal2017")
    lars_exp = plan["experiments"]["F1_analog_lars"]
    assert [len(v["dirs"]) for v in lars_exp["variants"].values()] == [3, 3]  # 3 seeds at quick
    acc = {("F1_analog", "baseline"): [96.0, 96.2, 95.8],
           ("F1_analog", "kn4000"): [40.0, 42.0, 38.0],
           ("F1_analog_lars", "lars_kn4000"): [95.5, 95.3, 95.7],
           ("F1_analog_lars", "lars_kn800"): [95.0, 95.1, 94.9]}  # fmt: skip
    fill(plan, specs, acc)
    data, view = goyal2017.lars_table(plan)
    row = data.set_index("experiment").loc["F1_analog_lars"]
    assert row["largest_batch"] == 4000 and row["lars_kn4000_sgd_variant"] == "kn4000"
    assert row["largest_err_mean"] == pytest.approx(4.5)
    assert row["largest_sgd_err_mean"] == pytest.approx(60.0)
    assert row["baseline_err_mean"] == pytest.approx(4.0) and row["baseline_err_n"] == 3
    table1, _ = goyal2017.table1(plan)
    assert "F1_analog_lars" not in set(table1["experiment"])  # the paper's table: SGD only
    verdicts = {
        c.id: claims.evaluate(c, data, plan)[0]["verdict"]
        for c in claims.CLAIMS
        if c.table == "lars"
    }
    assert verdicts == {"you2017-lars-holds": "reproduced", "you2017-lars-vs-sgd": "reproduced"}
