"""Dinh et al.'s rescaling and the adaptive sharpness, on small networks where both are known:
the rescaled network computes the same function, phi and the top eigenvalue move, the adaptive
sharpness does not (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_keskar2017_analyses import make_data, make_run

from lbgap.analysis import hessian, reparametrization
from lbgap.analysis import jobs as analyses
from lbgap.analysis import sharpness as sharp
from lbgap.training import evaluation
from lbgap.training.models import build_model

SHAPES = {"F1": (64, 784), "C1": (32, 3, 32, 32), "C2": (32, 3, 32, 32)}


def trained(network: str, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A narrow network after a few SGD steps (batch-norm statistics and weights not at their
    initial values), in evaluation mode, with its data."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(network, 10, width=0.125)
    x = torch.randn(*SHAPES[network], generator=g)
    y = torch.randint(0, 10, (SHAPES[network][0],), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


@pytest.mark.parametrize("network", sorted(SHAPES))
@pytest.mark.parametrize("alpha", [0.1, 10.0])
@pytest.mark.parametrize("mode", ["running", "batch"])
def test_rescaling_keeps_the_function_but_not_the_weights(network, alpha, mode):
    model, x, _ = trained(network)
    copy, info = reparametrization.rescaled(model, alpha)
    with evaluation.bn_eval_mode(model, mode), torch.no_grad():
        before = model(x)
    with evaluation.bn_eval_mode(copy, mode), torch.no_grad():
        after = copy(x)
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-5)
    moved = sum(
        int((p != q).sum()) for p, q in zip(model.parameters(), copy.parameters(), strict=True)
    )
    assert moved == info["scaled_up"] + info["scaled_down"] > 0
    assert info["n_params"] == sum(p.numel() for p in model.parameters())


def test_f1_rescales_every_batch_norm_and_every_later_layer():
    model, _, _ = trained("F1")
    _, info = reparametrization.rescaled(model, 10.0)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert info["scaled_up"] == sum(2 * m.num_features for m in norms)
    assert info["scaled_down"] == sum(m.weight.numel() for m in linears[1:])


def test_a_network_with_branches_or_a_broken_chain_is_refused():
    with pytest.raises(ValueError, match="feed-forward stack"):
        reparametrization.rescaled(build_model("resnet20", 10, width=0.25), 2.0)
    chain = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Tanh(),
                                torch.nn.Linear(4, 2))  # fmt: skip
    with pytest.raises(ValueError, match="not positively homogeneous"):
        reparametrization.rescale(chain, 2.0)
    with pytest.raises(ValueError, match="positive"):
        reparametrization.rescale(torch.nn.Sequential(torch.nn.Linear(2, 2)), -1.0)


def test_a_wrong_rescaling_would_be_caught():
    """The check above can fail: scaling a batch norm without its consumer changes the output."""
    model, x, _ = trained("F1")
    with torch.no_grad():
        before = model(x)
        next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)).weight.mul_(10)
        assert not torch.allclose(model(x), before, rtol=1e-4, atol=1e-5)


def _measures(model, x, y) -> dict:
    with evaluation.bn_eval_mode(model, "batch"):
        return {
            "phi": sharp.sharpness(model, x, y, 1e-3, max_iter=5, chunk_size=64)["phi"],
            "adaptive": reparametrization.adaptive_sharpness(model, x, y, 0.01, 5, 0, 64)["phi"],
            "lambda": hessian.top_eigenvalue(model, x, y, tol=1e-4, chunk_size=64, ncv=8),
        }


def test_phi_and_the_eigenvalue_move_the_adaptive_sharpness_does_not():
    model, x, y = trained("F1")
    base = _measures(model, x, y)
    up = _measures(reparametrization.rescaled(model, 10.0)[0], x, y)
    down = _measures(reparametrization.rescaled(model, 0.1)[0], x, y)
    assert up["phi"] > 2 * base["phi"] and down["phi"] < 0.9 * base["phi"]
    assert up["lambda"] > 2 * base["lambda"]
    for other in (up, down):
        assert other["adaptive"] == pytest.approx(base["adaptive"], rel=1e-3)
    assert base["adaptive"] > 0


def test_adaptive_sharpness_is_exactly_invariant_for_a_power_of_two():
    """alpha = 8 scales every float exactly: the maximization takes the very same steps."""
    model, x, y = trained("C1")
    with evaluation.bn_eval_mode(model, "batch"):
        base = reparametrization.adaptive_sharpness(model, x, y, 0.01, 4, 0, 64)
    copy, _ = reparametrization.rescaled(model, 8.0)
    with evaluation.bn_eval_mode(copy, "batch"):
        other = reparametrization.adaptive_sharpness(copy, x, y, 0.01, 4, 0, 64)
    assert other["phi"] == pytest.approx(base["phi"], rel=1e-12)
    assert other["trace_f"] == pytest.approx(base["trace_f"], rel=1e-12)


def test_the_record_leaves_alpha_1_to_its_tables_and_measures_the_others(tmp_path):
    data = make_data()
    run = make_run(tmp_path / "SB" / "seed0", 0, bn_eval="batch")
    eigen = {"ncv": 8, "tol": 1e-3}
    record = analyses.reparametrization_record(str(run), [1, 10], 1e-3, 0.01, 4, data, "cpu", eigen)
    one, ten = record["alphas"]
    assert (one["alpha"], one["phi"], one["lambda_max"]) == (1.0, None, None)  # Table 3's
    model, spec = analyses.load_run(run, "cpu")
    phi = analyses.phi(model, spec, data, 1e-3, None, 4)["phi"]
    with evaluation.bn_eval_mode(model, "batch"):
        top = hessian.top_eigenvalue(model, data["train_x"], data["train_y"], tol=1e-3, ncv=8)
    assert ten["alpha"] == 10 and ten["scaled_up"] > 0 and ten["phi"] > 1.2 * phi
    assert ten["lambda_max"] > 2 * top
    for key in ("train_loss", "test_loss"):
        assert ten[key] == pytest.approx(one[key], abs=1e-5)
    assert ten["adaptive"] == pytest.approx(one["adaptive"], rel=1e-3)
    plain = analyses.reparametrization_record(str(run), [1, 10], 1e-3, 0.01, 4, data, "cpu")
    assert plain["eigenvalue"] is False and plain["alphas"][1]["lambda_max"] is None
    gone = make_run(tmp_path / "LB" / "seed0", 0, status="diverged")
    record = analyses.reparametrization_record(str(gone), [1, 10], 1e-3, 0.01, 4, data, "cpu")
    assert [r["phi"] for r in record["alphas"]] == [None, None]


# ---------------------------------------------------------------- tables and claims
@pytest.fixture
def quick_runs(tmp_path, monkeypatch):
    """The quick plan with every keskar2017 run written and F1's rescaled seed-0 files."""
    from paper_fakes import plan_and_specs, quick_config, write_run

    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(quick_config(), "keskar2017")
    for run, spec in specs.items():
        write_run(run.dir, spec, test_acc=90.0)
    return plan


def _write(plan: dict, levels: dict[str, float], drift: float = 0.0) -> None:
    """F1's SB and LB files at the plan's alphas; `drift` moves the adaptive sharpness of the
    rescaled networks by that share."""
    from paper_fakes import write_reparametrization

    alphas = plan["analysis"]["reparametrization"]["alphas"]
    for regime, level in levels.items():
        path = f"results/keskar2017/F1/{regime}/seed0/reparametrization.json"
        write_reparametrization(path, alphas, level)
        record = json.loads(Path(path).read_text())
        for row in record["alphas"]:
            row["adaptive"] *= 1.0 if row["alpha"] == 1 else 1.0 + drift
        Path(path).write_text(json.dumps(record))


def _verdicts(plan: dict, name: str) -> dict:
    from lbgap.products import claims
    from lbgap.products.papers.keskar2017 import reparametrization as kr

    table = kr.reparametrization_table if name == "reparametrization" else kr.adaptive_table
    data, view = table(plan)
    out = {}
    for claim in claims.CLAIMS:
        if claim.table == name:
            for rec in claims.evaluate(claim, data, plan):
                out[(claim.id, rec["case"].split(" (")[0])] = rec["verdict"]
    return out


def test_reparametrization_table_and_its_claims(quick_runs):
    from lbgap.products.papers.keskar2017 import reparametrization as kr

    plan = quick_runs
    assert not plan["analysis"]["reparametrization"]["eigenvalue"]  # none at quick
    assert kr.inputs(plan) == [
        f"results/keskar2017/F1/{regime}/seed0/{name}"
        for regime in ("SB", "LB")
        for name in ("summary.json", "reparametrization.json", "sharpness_full_eps0.001.json")
    ]
    _write(plan, {"SB": 1.0, "LB": 2.0})
    data, view = kr.reparametrization_table(plan)
    row = data.set_index("case").loc["F1 LB"]
    top = max(plan["analysis"]["reparametrization"]["alphas"])
    assert row["alpha_max"] == top and row["phi_ref_mean"] == 20.0
    assert row["phi_rescaled_mean"] == 20.0 * top and row["train_loss_worst_mean"] == 0.2
    assert row["lambda_max_rescaled_n"] == 1 and row["adaptive_worst_mean"] == 2.0
    assert set(data["experiment"]) == {"F1", "F2", "C1", "C2", "C3", "C4"}
    assert (view[view["Network"].str.startswith("C1")]["Note"] != "").all()  # not run at quick
    verdicts = _verdicts(plan, "reparametrization")
    for claim in ("dinh2017-function", "dinh2017-accuracy", "dinh2017-phi", "kwon2021-invariant"):
        assert verdicts[(claim, "F1 SB")] == verdicts[(claim, "F1 LB")] == "reproduced"
    assert verdicts[("dinh2017-phi", "C1 SB")] == "not run at this scale"


def test_a_measure_that_moves_under_rescaling_fails_the_invariance_claim(quick_runs):
    _write(quick_runs, {"SB": 1.0, "LB": 2.0}, drift=0.05)
    verdicts = _verdicts(quick_runs, "reparametrization")
    assert verdicts[("kwon2021-invariant", "F1 SB")] == "not reproduced"
    assert verdicts[("dinh2017-function", "F1 SB")] == "reproduced"


def test_adaptive_table_ranks_sb_and_lb_and_says_how_far_rescaling_moves_each(quick_runs):
    from lbgap.products.papers.keskar2017 import reparametrization as kr

    _write(quick_runs, {"SB": 1.0, "LB": 3.0}, drift=0.002)
    data, view = kr.adaptive_table(quick_runs)
    row = data.set_index("experiment").loc["F1"]
    top = max(quick_runs["analysis"]["reparametrization"]["alphas"])
    assert row["LB_over_SB_adaptive"] == pytest.approx(3.0) and row["same_ranking"]
    assert row["SB_phi_moves_mean"] == pytest.approx(top)
    assert row["SB_adaptive_moves_mean"] == pytest.approx(1.002)
    assert row["SB_phi_rescaled_mean"] == pytest.approx(10.0 * top)
    verdicts = _verdicts(quick_runs, "adaptive_sharpness")
    assert verdicts[("kwon2021-lb-sharper", "F1")] == "inconclusive"  # one seed at quick
    assert verdicts[("dinh2017-ranking", "F1")] == "inconclusive"  # 100 > 30, one seed
    assert verdicts[("kwon2021-lb-sharper", "C1")] == "not run at this scale"


@pytest.mark.parametrize(
    ("alphas", "message"),
    [
        ([0.5, 2], r"alphas: \[0.5, 2\]: must include 1"),
        ([1, 0.5], "must include a value above 1"),
        ({"quick": [1, 8], "small": [2, 4]}, r"alphas.small: \[2, 4\]: must include 1"),
        ([1, -8], "alphas.1: -8 is less than or equal to the minimum of 0"),
    ],
)
def test_bad_alphas_are_a_one_line_config_error(alphas, message):
    from conftest import shipped_config

    from lbgap.config import matrix

    cfg = shipped_config()
    cfg["papers"]["keskar2017"]["analysis"]["reparametrization"]["alphas"] = alphas
    with pytest.raises(matrix.ConfigError, match=message) as err:
        matrix.prepare_config(cfg)
    assert "\n" not in str(err.value)


def test_the_command_line_writes_the_record(tmp_path, monkeypatch):
    data = make_data()
    run = make_run(tmp_path / "LB" / "seed1", 1, bn_eval="batch")
    monkeypatch.setattr(analyses, "load_data", lambda path, device: data)
    out = tmp_path / "reparametrization.json"
    args = ["reparametrization", "--run", str(run), "--data", "unused.pt", "--alphas", "1", "8",
            "--eps", "0.001", "--adaptive-eps", "0.01", "--max-iter", "3", "--eigenvalue",
            "--lanczos-vectors", "6", "--tol", "0.01", "--out", str(out)]  # fmt: skip
    assert analyses.main(args) == 0
    record = json.loads(out.read_text())
    assert record["eigenvalue"] and [r["alpha"] for r in record["alphas"]] == [1, 8]
    one, eight = record["alphas"]
    assert eight["adaptive"] == pytest.approx(one["adaptive"], rel=1e-12)  # exact for 8
    assert eight["lambda_max"] > 0 and record["max_iter"] == 3 and record["bn_eval"] == "batch"
