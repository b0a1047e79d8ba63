"""Smith et al. 2018: the schedules resolve as in the paper; the table reports its inputs."""

from __future__ import annotations

import pytest
from paper_fakes import fill, plan_and_specs, quick_config, spec_of

from lbgap.config.run_spec import RunSpec
from lbgap.config.schedules import Schedule
from lbgap.products.papers import smith2018

PAPER = "smith2018"


@pytest.fixture(scope="module")
def config() -> dict:
    return quick_config()


def _schedule(spec: RunSpec) -> Schedule:
    return Schedule.from_config(spec.schedule)


def _batches(spec: RunSpec) -> list[int]:
    return [_schedule(spec).batch_at(e) for e in range(spec.schedule["epochs"])]


def test_increasing_batch_grows_where_the_lr_would_decay(config):
    decay, hybrid, grow = (spec_of(config, PAPER, "F1_SGD_analog", v) for v in smith2018.SCHEDULES)
    assert decay.schedule["batch_growth"] == "none"
    assert grow.schedule["batch_growth"] == hybrid.schedule["batch_growth"] == "increase"
    f, b0 = grow.schedule["decay_factor"], grow.batch_size
    milestones = grow.schedule["decay_epochs"]
    expected = [b0 * f ** sum(e >= m for m in milestones) for e in range(10)]
    assert _batches(grow) == expected and _batches(grow)[-1] == grow.n_train
    assert set(_batches(decay)) == {b0}
    # Same samples seen, fewer updates; the LR of the increasing schedule never moves.
    n = decay.n_train
    assert _schedule(grow).total_samples(n) == _schedule(decay).total_samples(n)
    assert _schedule(grow).total_updates(n) < _schedule(decay).total_updates(n)
    its = [_schedule(grow).iterations_in_epoch(e, n) for e in range(10)]
    assert {_schedule(grow).lr_at(e, 0, its[e]) for e in range(10)} == {grow.optimizer["lr"]}


def test_hybrid_grows_to_max_batch_then_decays_the_lr(config):
    hybrid = spec_of(config, PAPER, "F1_SGD_analog", "hybrid")
    s, n = _schedule(hybrid), hybrid.n_train
    cap = hybrid.schedule["max_batch"]
    assert max(_batches(hybrid)) == cap
    last = s.epochs - 1
    lr_end = s.lr_at(last, 0, s.iterations_in_epoch(last, n))
    later = sum(m < s.epochs for m in s.decay_epochs) - 1  # milestones after the growth
    assert lr_end == pytest.approx(hybrid.optimizer["lr"] / s.decay_factor**later)


def test_paper_scale_updates_match_the_hand_count(config):
    """WRN-16-4, 50,000 images, batch 128 x 5 at epochs 60, 120, 160 of 200."""
    paper = {**config, "scale": "paper"}
    decay = spec_of(paper, PAPER, "WRN16_4_SGD", "decaying_lr")
    grow = spec_of(paper, PAPER, "WRN16_4_SGD", "increasing_batch")
    n = decay.n_train
    assert n == 50_000
    assert _schedule(decay).total_updates(n) == 200 * 390
    assert _schedule(grow).total_updates(n) == 60 * 390 + 60 * 78 + 40 * 15 + 40 * 3
    adam = spec_of(paper, PAPER, "WRN16_4_Adam", "increasing_batch")
    assert adam.optimizer["name"] == "adam" and adam.schedule == grow.schedule | {
        "base_lr": adam.optimizer["lr"]
    }


def test_table_reports_accuracy_and_updates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    acc = {("F1_SGD_analog", "increasing_batch"): [95.0, 96.0, 97.0]}
    fill(plan, specs, acc, updates=462, samples=40000, epochs=10)
    data, view = smith2018.table(plan)
    row = data.set_index("experiment").loc["F1_SGD_analog"]
    assert row["increasing_batch_acc_mean"] == pytest.approx(96.0)
    assert row["increasing_batch_acc_std"] == pytest.approx(1.0)
    assert row["increasing_batch_acc_n"] == 3
    assert (row["increasing_batch_updates"], row["increasing_batch_samples"]) == (462, 40000)
    assert row["decaying_lr_initial_batch"] == 32
    wrn = data.set_index("experiment").loc["WRN16_4_SGD"]
    assert wrn["decaying_lr_acc_n"] == 0 and "needs cifar10" in wrn["note"]
    assert view["updates (ours)"].iloc[0] == "462"


def test_figures_plot_epochs_and_updates(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    fill(plan, specs, {})
    fig = smith2018.accuracy_curves(plan)
    assert [ax.get_xlabel() for ax in fig.axes[:2]] == ["epoch", "parameter updates"]
    sched = smith2018.schedules(plan)
    assert [ax.get_ylabel() for ax in sched.axes[:2]] == ["learning rate", "batch size (samples)"]
    assert len(sched.axes[0].get_lines()) == len(smith2018.SCHEDULES)
