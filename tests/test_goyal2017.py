"""Goyal et al. 2017: linear scaling and warmups resolve per iteration; Table 1 reports inputs."""

from __future__ import annotations

import numpy as np
import pytest
from paper_fakes import fill, plan_and_specs, quick_config, spec_of

from lbgap.config.run_spec import RunSpec
from lbgap.config.schedules import Schedule
from lbgap.products.papers import goyal2017, reference

PAPER = "goyal2017"


@pytest.fixture(scope="module")
def config() -> dict:
    return quick_config()


def _lrs(spec: RunSpec, epoch: int) -> list[float]:
    """The LR of every iteration of one epoch, as the trainer asks for it."""
    schedule = Schedule.from_config(spec.schedule)
    iters = schedule.iterations_in_epoch(epoch, spec.n_train)
    return [schedule.lr_at(epoch, i, iters) for i in range(iters)]


def test_linear_rule_and_the_three_warmups(config):
    base = spec_of(config, PAPER, "F1_analog", "baseline")
    eta = base.optimizer["lr"]
    assert eta == pytest.approx(0.1 * base.batch_size / 256)  # the paper's eta = 0.1 kn/256
    specs = {v: spec_of(config, PAPER, "F1_analog", v) for v in goyal2017.SETTINGS}
    kn = specs["gradual_warmup"].batch_size
    k = kn / base.batch_size
    iters = specs["gradual_warmup"].n_train // kn
    assert specs["gradual_warmup"].schedule["warmup_epochs"] == 1
    # Gradual: from eta at the first iteration to k eta after one epoch, linearly per iteration.
    assert _lrs(specs["gradual_warmup"], 0) == pytest.approx(
        [eta + (k * eta - eta) * i / iters for i in range(iters)]
    )
    assert _lrs(specs["gradual_warmup"], 1)[0] == pytest.approx(k * eta)
    # Constant: eta for the warmup epochs, then the jump to k eta.
    assert _lrs(specs["constant_warmup"], 0) == pytest.approx([eta] * iters)
    assert _lrs(specs["constant_warmup"], 1)[0] == pytest.approx(k * eta)
    # None: k eta from the first iteration; the baseline has k = 1 and no ramp at all.
    assert _lrs(specs["no_warmup"], 0) == pytest.approx([k * eta] * iters)
    assert _lrs(base, 0) == pytest.approx([eta] * len(_lrs(base, 0)))
    for spec in specs.values():
        assert spec.ghost_batch == 32  # batch-norm statistics over n = 32
        assert spec.optimizer["nesterov"] and not spec.optimizer["bn_weight_decay"]


def test_paper_scale_is_resnet50_kn_8k_eta_3_2(config):
    paper = {**config, "scale": "paper"}
    spec = spec_of(paper, PAPER, "ResNet50_ImageNet", "no_warmup")
    assert (spec.network, spec.batch_size) == ("resnet50", 8192)
    assert Schedule.from_config(spec.schedule).peak_lr == pytest.approx(3.2)
    assert spec.zero_init_residual and spec.schedule["decay_epochs"] == [30, 60, 80]


def test_sweep_is_sorted_by_batch_and_spans_the_set(config):
    plan, _ = plan_and_specs(config, PAPER)
    exp = plan["experiments"]["F1_analog"]
    sweep = goyal2017.sweep_variants(exp)
    batches = [exp["variants"][v]["batch_size"] for v in sweep]
    assert sweep[0] == "baseline" and "gradual_warmup" in sweep
    assert batches == sorted(batches) and len(batches) >= 4
    assert "no_warmup" not in sweep and "constant_warmup" not in sweep


def test_table1_is_error_of_its_inputs(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    acc = {
        ("F1_analog", "baseline"): [97.0, 96.0, 98.0],
        ("F1_analog", "no_warmup"): [90.0, 91.0, 92.0],
    }
    fill(plan, specs, acc, b_noise=123.0)
    data, view = goyal2017.table1(plan)
    row = data.set_index("experiment").loc["F1_analog"]
    assert row["baseline_err_mean"] == pytest.approx(100 - 97.0)
    assert row["baseline_err_std"] == pytest.approx(np.std([97.0, 96.0, 98.0], ddof=1))
    assert row["no_warmup_err_mean"] == pytest.approx(9.0)
    assert row["gradual_warmup_batch"] == 800 and row["baseline_batch"] == 32
    assert row["gradual_warmup_lr"] == pytest.approx(0.0125 * 800 / 32)
    assert row["b_noise_median"] == pytest.approx(123.0)
    assert row["b_noise_batch"] == row["gradual_warmup_batch"]
    assert row["baseline_err_values"] == "3.0000;4.0000;2.0000"
    for v in goyal2017.SETTINGS:
        mean, std = reference(PAPER, "table1", "ResNet50_ImageNet", v)
        assert (row[f"{v}_err_paper_mean"], row[f"{v}_err_paper_std"]) == (mean, std)
    imagenet = data.set_index("experiment").loc["ResNet50_ImageNet"]
    assert imagenet["gradual_warmup_err_n"] == 0 and "needs imagenet" in imagenet["note"]
    assert len(view) == len(goyal2017.goyal_plan(plan)["experiments"]) * len(goyal2017.SETTINGS)


def test_figures_draw_ours_apart_from_the_paper(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    fill(plan, specs, {}, b_noise=300.0)
    fig = goyal2017.error_vs_batch(plan)
    ours, paper = fig.axes
    assert "paper" in paper.get_title() and "ours" in ours.get_title()
    assert ours.get_xscale() == paper.get_xscale() == "log"
    paper_x = paper.get_lines()[0].get_xdata()
    assert list(paper_x) == sorted(int(k) for k in goyal2017._reference()[PAPER]["figure1"])
    curves = goyal2017.training_curves(plan)
    labels = [t.get_text() for t in curves.axes[0].get_legend().get_texts()]
    assert any("baseline" in lbl for lbl in labels) and any("gradual" in lbl for lbl in labels)
