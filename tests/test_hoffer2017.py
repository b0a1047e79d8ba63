"""Hoffer et al. 2017: the variants resolve to the method, Table 1 reports exactly its inputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from paper_fakes import fill, plan_and_specs, quick_config, spec_of

from lbgap.config.run_spec import RunSpec
from lbgap.config.schedules import Schedule
from lbgap.products.papers import hoffer2017, reference
from lbgap.training import train

PAPER = "hoffer2017"


@pytest.fixture(scope="module")
def config() -> dict:
    return quick_config()


def _schedule(spec: RunSpec) -> Schedule:
    return Schedule.from_config(spec.schedule)


def test_variants_express_lr_gbn_and_regime_adaptation(config):
    sb, lb, lr, gbn, ra = (spec_of(config, PAPER, "F1_analog", v) for v in hoffer2017.VARIANTS)
    k = lb.batch_size / sb.batch_size
    assert k > 1
    assert _schedule(lb).peak_lr == pytest.approx(_schedule(sb).peak_lr)
    assert _schedule(lr).peak_lr == pytest.approx(_schedule(sb).peak_lr * math.sqrt(k))
    assert (sb.ghost_batch, lr.ghost_batch) == (None, None)
    assert gbn.ghost_batch == ra.ghost_batch == sb.batch_size
    assert ra.regime_adaptation and not gbn.regime_adaptation
    assert all(s.grad_clip == 5.0 for s in (sb, lb, lr, gbn, ra))
    # +RA: k times the epochs, every decay epoch stretched by k, as many updates as SB.
    assert ra.schedule["epochs"] == round(sb.schedule["epochs"] * k)
    assert ra.schedule["decay_epochs"] == [m * k for m in sb.schedule["decay_epochs"]]
    n = sb.n_train
    assert _schedule(ra).total_updates(n) == _schedule(sb).total_updates(n)
    assert _schedule(gbn).total_updates(n) < _schedule(sb).total_updates(n)


def test_paper_scale_rows_stretch_by_the_batch_ratio(config):
    paper = {**config, "scale": "paper"}
    sb = spec_of(paper, PAPER, "F1", "SB")
    ra = spec_of(paper, PAPER, "F1", "+RA")
    k = ra.batch_size // sb.batch_size
    assert k == 32  # 4096 / 128
    assert ra.schedule["epochs"] == 32 * sb.schedule["epochs"]
    assert ra.schedule["decay_epochs"] == [32 * m for m in sb.schedule["decay_epochs"]]


def test_regime_adaptation_trains_the_stretched_epochs(config, prepared_mnist, tmp_path):
    """A real (tiny) +RA run trains k times the epochs and decays the LR at stretched epochs."""
    cfg = quick_config(train_size=500, test_size=200)
    exp = cfg["papers"][PAPER]["experiments"]["F1_analog"]
    exp.update(epochs=2, decay_epochs=[1])
    spec = dataclasses.replace(spec_of(cfg, PAPER, "F1_analog", "+RA"), data=str(prepared_mnist))
    k = spec.batch_size / spec.schedule["base_batch"]
    train.run(spec, tmp_path)
    metrics = np.genfromtxt(tmp_path / "metrics.csv", delimiter=",", names=True)
    assert len(metrics) == round(2 * k)
    first_decay = int(np.argmax(metrics["lr"] < metrics["lr"][0]))
    assert first_decay == math.ceil(1 * k)  # epoch index of the stretched milestone
    steps = np.genfromtxt(tmp_path / "steps.csv", delimiter=",", names=True)
    assert len(steps) == metrics["updates"][-1] and np.all(steps["weight_distance"] > 0)


def test_table1_reports_its_inputs_and_rows_not_run(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    acc = {("F1_analog", "SB"): [97.0, 97.5, 98.5], ("F1_analog", "+RA"): [96.0, 96.2, 96.4]}
    fill(plan, specs, acc, epochs=4, updates=40)
    data, view = hoffer2017.table1(plan)
    row = data.set_index("experiment").loc["F1_analog"]
    assert row["SB_acc_mean"] == pytest.approx(np.mean(acc["F1_analog", "SB"]))
    assert row["SB_acc_std"] == pytest.approx(np.std(acc["F1_analog", "SB"], ddof=1))
    assert row["SB_acc_n"] == len(config["scales"]["quick"]["seeds"])
    assert row["+RA_acc_mean"] == pytest.approx(96.2)
    assert [float(v) for v in row["SB_acc_values"].split(";")] == acc["F1_analog", "SB"]
    assert (row["+RA_epochs"], row["+RA_updates"]) == (4, 40)
    assert row["LB_batch"] == plan["experiments"]["F1_analog"]["variants"]["LB"]["batch_size"]
    # The analog quotes the paper's F1 row.
    for v in hoffer2017.VARIANTS:
        assert row[f"{v}_acc_paper_mean"] == reference(PAPER, "table1", "F1", v)[0]
    c1 = data.set_index("experiment").loc["C1"]
    assert c1["SB_acc_n"] == 0 and "needs cifar10" in c1["note"]
    assert c1["+RA_acc_paper_mean"] == reference(PAPER, "table1", "C1", "+RA")[0]
    shown = view.set_index("Network")
    assert shown.loc["C1 (CIFAR-10)", "+RA (ours)"] == "not run"
    assert shown.loc[plan["experiments"]["F1_analog"]["label"], "SB (ours)"].startswith("97.67 ±")
    assert list(data.filter(like="_acc_mean").columns) == [
        f"{v}_acc_mean" for v in hoffer2017.VARIANTS
    ]


def test_diverged_seeds_are_counted_not_averaged(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    fill(plan, specs, {})
    lb_dir = plan["experiments"]["F1_analog"]["variants"]["LB"]["dirs"][0]
    from paper_fakes import write_run

    write_run(lb_dir, specs[next(r for r in specs if r.dir == lb_dir)], 0.0, status="diverged")
    row = hoffer2017.table1(plan)[0].set_index("experiment").loc["F1_analog"]
    assert (row["LB_diverged"], row["LB_acc_n"]) == (1, len(config["scales"]["quick"]["seeds"]) - 1)


def test_weight_distance_figure_is_log_t(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    fill(plan, specs, {})
    fig = hoffer2017.weight_distance(plan)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "log" in ax.get_xlabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lbl.startswith("SB") for lbl in labels) and any(
        lbl.startswith("LB") for lbl in labels
    )


def test_gbn_column_is_na_for_a_network_without_batch_norm(config, tmp_path, monkeypatch):
    """AlexNet has no batch norm: its +GBN runs only repeat +LR, so the column says n/a."""
    monkeypatch.chdir(tmp_path)
    plan, specs = plan_and_specs(config, PAPER)
    fill(plan, specs, {})
    plan["experiments"]["F1_analog"]["network"] = "alexnet"
    data, view = hoffer2017.table1(plan)
    row = data.set_index("experiment").loc["F1_analog"]
    shown = view.set_index("Network").iloc[0]
    assert shown["+GBN (ours)"] == hoffer2017.NO_GBN and row["+GBN_acc_n"] == 0
    assert shown["+LR (ours)"] != hoffer2017.NO_GBN and row["+LR_acc_n"] > 0
