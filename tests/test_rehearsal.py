"""The rehearsal: the paper-scale matrix, checked at the real sizes, run with its sizes shrunk."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import ROOT, run_snakemake, write_config

from lbgap.config import matrix
from lbgap.config.schedules import Schedule
from lbgap.training.models import build_model


@pytest.fixture
def config(repo_config) -> dict:
    return matrix.prepare_config(copy.deepcopy(repo_config))


def at(config: dict, scale: str) -> dict:
    return {**config, "scale": scale}


def test_the_rehearsal_runs_every_paper_and_small_run_once(config):
    def names(scale):
        return {(r.paper, r.experiment, r.variant) for r in matrix.runs(at(config, scale))}

    rehearsal = matrix.runs(at(config, "rehearsal"))
    both = names("paper") | names("small")
    assert {(r.paper, r.experiment, r.variant) for r in rehearsal} == both
    assert names("small") - names("paper")  # small's own experiments (Goyal's ResNet-20)
    assert {r.seed for r in rehearsal} == {0}


def test_per_scale_values_come_from_the_first_matrix_scale_that_has_one(config):
    run = matrix.Run("keskar2017", "F1", "SB", 0)
    schema = matrix.load_schema()
    names = (run.paper, run.experiment, run.variant)
    settings = matrix.settings(at(config, "rehearsal"), *names, schema)
    assert settings["epochs"] == 100
    small_only = matrix.Run("goyal2017", "ResNet20_CIFAR10", "baseline", 0)
    assert matrix.spec(at(config, "rehearsal"), small_only).network == "resnet20"


def test_shrunk_runs_keep_the_papers_ratios(config):
    rehearsal, paper = at(config, "rehearsal"), at(config, "paper")
    samples = config["scales"]["rehearsal"]["shrink"]["samples"]

    def batch(scale_config, experiment, variant, paper_name="goyal2017"):
        return matrix.spec(scale_config, matrix.Run(paper_name, experiment, variant, 0))

    base = batch(rehearsal, "ResNet50_ImageNet", "baseline")
    large = batch(rehearsal, "ResNet50_ImageNet", "kn64k")
    assert (base.batch_size, large.batch_size) == (256 // samples, 65536 // samples)
    full = batch(paper, "ResNet50_ImageNet", "kn64k")
    assert large.n_train == full.n_train // samples == 1281167 // samples
    # linear scaling: the same kn/256 ratio, so the same peak LR
    for spec in (large, full):
        s = Schedule.from_config(spec.schedule)
        assert s.peak_lr == pytest.approx(0.1 * 65536 / 256)
    keskar = batch(rehearsal, "F2", "LB", "keskar2017")
    assert keskar.batch_size == 72152 // samples // 2 * 2  # 10% of 721,520 TIMIT frames, even


def test_shrunk_epochs_keep_milestones_and_warm_starts_consistent(config):
    rehearsal = at(config, "rehearsal")
    most = config["scales"]["rehearsal"]["shrink"]["epochs"]
    specs = {r: matrix.spec(rehearsal, r) for r in matrix.runs(rehearsal)}
    for run, spec in specs.items():
        sched = spec.schedule
        assert sched["epochs"] <= most and sched["max_iterations"] == 1
        assert all(0 < m <= sched["epochs"] for m in sched["decay_epochs"]), run
        if spec.warm_start:
            source = next(s for r, s in specs.items() if r.dir == spec.warm_start["run"])
            assert spec.warm_start["epoch"] in source.save_epochs, run
            assert spec.init_checkpoint.endswith(f"epoch{spec.warm_start['epoch']}.pt")
    # Smith's milestones 60, 120, 160 of 200 keep their places in 3 epochs
    smith = specs[matrix.Run("smith2018", "WRN16_4_SGD", "increasing_batch", 0)].schedule
    assert smith["decay_epochs"] == pytest.approx([0.9, 1.8, 2.4])


def test_patience_shrinks_with_the_epochs(config):
    """A paper-scale run that stops on `patience` (10 of 100 epochs) still can in the
    rehearsal's 3 epochs: its patience shrinks in proportion, to 1, never to 0."""
    config["papers"]["keskar2017"]["experiments"]["F1"]["patience"] = 10
    rehearsal = at(config, "rehearsal")
    spec = matrix.spec(rehearsal, matrix.Run("keskar2017", "F1", "SB", 0))
    assert spec.schedule["epochs"] == 3 and spec.patience == 1
    paper = matrix.spec(at(config, "paper"), matrix.Run("keskar2017", "F1", "SB", 0))
    assert paper.patience == 10


def test_a_spec_that_cannot_run_at_paper_scale_fails_the_rehearsal(config):
    config["papers"]["keskar2017"]["experiments"]["F1"]["variants"]["LB"] = {"batch_size": "150%"}
    for scale in ("paper", "rehearsal"):
        with pytest.raises(matrix.ConfigError) as err:
            matrix.spec(at(config, scale), matrix.Run("keskar2017", "F1", "LB", 0))
        assert "\n" not in str(err.value)
        assert "90000" in str(err.value) and "60000" in str(err.value)


def test_a_broken_paper_spec_stops_the_rehearsal_dry_run_in_one_line(repo_config, tmp_path):
    cfg = copy.deepcopy(repo_config)
    cfg["papers"]["goyal2017"]["experiments"]["ResNet50_ImageNet"]["variants"]["kn2M"] = {
        "batch_size": 2097152
    }
    write_config(tmp_path, cfg)
    result = run_snakemake(tmp_path, "-n", "reproduce_all", "--config", "scale=rehearsal")
    assert result.returncode != 0
    line = next(x for x in result.stderr.splitlines() if x.startswith("lbgap: config error"))
    assert "ResNet50_ImageNet.variants.kn2M.batch_size" in line and "2097152" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


def test_a_share_of_a_dataset_of_unknown_size_is_a_config_error():
    with pytest.raises(matrix.ConfigError, match="unknown size"):
        matrix.resolve_batch("10%", 0, "papers.x.experiments.y")
    assert matrix.resolve_batch(7, 0 or 10, "w") == 7


def test_shrink_of_a_schedule_that_cannot_run_names_the_shrink(config):
    # 50,000 / 10,000 = 5 samples: Smith's batch grows past them (1, 5, 25)
    config["scales"]["rehearsal"]["shrink"]["samples"] = 10**4
    run = matrix.Run("smith2018", "WRN16_4_SGD", "increasing_batch", 0)
    with pytest.raises(matrix.ConfigError, match=r"shrunk by scales.rehearsal.shrink") as err:
        matrix.spec(at(config, "rehearsal"), run)
    assert "larger than the training set" in str(err.value) and "\n" not in str(err.value)


def test_updates_per_epoch_caps_each_epoch():
    s = Schedule(base_lr=0.1, base_batch=2, batch_size=2, epochs=3, max_iterations=1)
    assert [row["iterations"] for row in s.table(100)] == [1, 1, 1]
    assert Schedule(base_lr=0.1, base_batch=2, batch_size=2, epochs=1).total_updates(100) == 50


def test_rehearsal_writes_apart_from_the_real_scales(config):
    assert config["scales"]["rehearsal"]["workdir"] == "rehearsal"
    assert config["scales"]["rehearsal"]["standins"] is True
    assert not config["scales"]["paper"]["standins"] and not config["scales"]["paper"]["workdir"]


@pytest.mark.parametrize("network", ["resnet50", "alexnet"])
def test_imagenet_networks_narrow_and_at_64_px(network):
    model = build_model(network, 1000, width=0.125)
    wide = sum(p.numel() for p in build_model(network, 1000).parameters())
    narrow = sum(p.numel() for p in model.parameters())
    assert narrow < wide / 10
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 1000) and math.isfinite(float(out.sum()))


def test_make_rehearse_exists_and_checks_its_outputs():
    makefile = (ROOT / "Makefile").read_text()
    assert "rehearse:" in makefile and "scale=rehearsal" in makefile
    assert "tests/test_rehearsal_outputs.py" in makefile


def test_the_paper_scales_world_size_is_checked_by_the_rehearsal(config):
    """Goyal's ResNet-50 runs on 8 GPUs at paper scale: a batch 8 GPUs cannot share stops the
    rehearsal (which itself runs on CPU ranks) with the paper scale's one-line error."""
    config["device"] = "auto"
    exp = config["papers"]["goyal2017"]["experiments"]["ResNet50_ImageNet"]
    exp["variants"]["kn100"] = {"batch_size": 100}
    run = matrix.Run("goyal2017", "ResNet50_ImageNet", "kn100", 0)
    for scale in ("paper", "rehearsal"):
        with pytest.raises(matrix.ConfigError, match="over the job's 8 ranks") as err:
            matrix.spec(at(config, scale), run)
        assert "kn100" in str(err.value) and "shrunk" not in str(err.value)
