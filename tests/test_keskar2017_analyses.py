"""The analysis jobs of lbgap.analysis.jobs on small constructed runs: end points, modes,
records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_train import make_spec

from lbgap.analysis import interpolation
from lbgap.analysis import jobs as analyses
from lbgap.training import evaluation
from lbgap.training.models import build_model

N_TRAIN, N_TEST = 96, 40


def make_data(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "train_x": torch.randn(N_TRAIN, 784, generator=g),
        "train_y": torch.randint(0, 10, (N_TRAIN,), generator=g),
        "test_x": torch.randn(N_TEST, 784, generator=g),
        "test_y": torch.randint(0, 10, (N_TEST,), generator=g),
    }


def make_run(path: Path, seed: int, bn_eval: str = "running", status: str = "completed") -> Path:
    """A finished run folder: weights (BN buffers made non-trivial), summary and metrics."""
    torch.manual_seed(seed)
    model = build_model("F1", 10, width=0.05)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if "running_mean" in name:
                buf.uniform_(-0.5, 0.5)
            elif "running_var" in name:
                buf.uniform_(0.5, 2.0)
    spec = make_spec("unused.pt", width=0.05, seed=seed, bn_eval=bn_eval, eval_chunk=32,
                     save_epochs=[1])  # fmt: skip
    path.mkdir(parents=True)
    for name in ("checkpoint.pt", "checkpoint_epoch1.pt"):
        torch.save({"model": model.state_dict(), "spec": spec, "epoch": 2}, path / name)
    summary = {"status": status, "spec": spec, "epochs": 2, "final": {}}
    (path / "summary.json").write_text(json.dumps(summary))
    metrics = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "test_acc": [10.0, 11]})
    metrics.to_csv(path / "metrics.csv", index=False)
    return path


def reference_point(run: Path, data: dict) -> dict:
    """A run's own weights, BN statistics recomputed on the training set, evaluated plainly."""
    model, spec = analyses.load_run(run, "cpu")
    interpolation.recompute_bn_stats(model, data["train_x"], spec.eval_chunk)
    out = {}
    for split in ("train", "test"):
        loss, acc = evaluation.evaluate(model, data[f"{split}_x"], data[f"{split}_y"], 32)
        out |= {f"{split}_loss": loss, f"{split}_acc": acc}
    return out


def test_parametric_end_points_are_the_two_runs(tmp_path):
    data = make_data()
    sb, lb = make_run(tmp_path / "SB" / "seed0", 0), make_run(tmp_path / "LB" / "seed0", 1)
    line = analyses.parametric(str(sb), str(lb), 7, data, torch.device("cpu"))
    assert list(line["alpha"]) == pytest.approx([-1, -0.5, 0, 0.5, 1, 1.5, 2])
    for alpha, run in ((0.0, sb), (1.0, lb)):
        row = line[line["alpha"] == alpha].iloc[0]
        for key, value in reference_point(run, data).items():
            assert row[key] == pytest.approx(value, rel=1e-5), (alpha, key)
    assert (line["bn_stats"] == "recomputed on the training set").all()
    assert line["train_loss"].nunique() == 7  # every alpha is its own network


def test_parametric_in_batch_mode_uses_each_chunks_statistics(tmp_path):
    data = make_data()
    sb = make_run(tmp_path / "SB" / "seed0", 0, bn_eval="batch")
    lb = make_run(tmp_path / "LB" / "seed0", 1, bn_eval="batch")
    line = analyses.parametric(str(sb), str(lb), 4, data, torch.device("cpu"))
    model, _ = analyses.load_run(sb, "cpu")
    loss, acc = evaluation.evaluate(model, data["test_x"], data["test_y"], 32, "batch")
    row = line[line["alpha"] == 0].iloc[0]
    assert row["test_loss"] == pytest.approx(loss, rel=1e-5) and row["test_acc"] == acc
    assert (line["bn_eval"] == "batch").all()


@pytest.mark.parametrize("mode", ["running", "batch"])
def test_parametric_interior_and_extrapolated_points_mix_the_weights(tmp_path, mode):
    data = make_data()
    sb = make_run(tmp_path / "SB" / "seed0", 0, bn_eval=mode)
    lb = make_run(tmp_path / "LB" / "seed0", 1, bn_eval=mode)
    line = analyses.parametric(str(sb), str(lb), 7, data, torch.device("cpu"))
    (model_a, _), (model_b, _) = analyses.load_run(sb, "cpu"), analyses.load_run(lb, "cpu")
    for alpha in (-1.0, 0.5, 2.0):
        mixed, _ = analyses.load_run(sb, "cpu")
        with torch.no_grad():
            for p, pa, pb in zip(
                mixed.parameters(), model_a.parameters(), model_b.parameters(), strict=True
            ):
                p.copy_((1 - alpha) * pa + alpha * pb)
        if mode == "running":
            interpolation.recompute_bn_stats(mixed, data["train_x"], 32)
        row = line[line["alpha"] == alpha].iloc[0]
        for split in ("train", "test"):
            x, y = data[f"{split}_x"], data[f"{split}_y"]
            loss, acc = evaluation.evaluate(mixed, x, y, 32, mode)
            assert row[f"{split}_loss"] == pytest.approx(loss, rel=1e-5), (alpha, split)
            assert row[f"{split}_acc"] == pytest.approx(acc), (alpha, split)


@pytest.mark.parametrize("mode", ["running", "batch"])
def test_sharpness_record_is_on_the_training_loss_in_the_runs_mode(tmp_path, mode):
    data = make_data()
    run = make_run(tmp_path / "SB" / "seed3", 3, bn_eval=mode)
    record = analyses.sharpness_record(str(run), "full", 1e-3, 10, data, torch.device("cpu"))
    model, _ = analyses.load_run(run, "cpu")
    loss, _ = evaluation.evaluate(model, data["train_x"], data["train_y"], 32, mode)
    assert record["f_x"] == pytest.approx(loss, rel=1e-5)
    assert record["bn_eval"] == mode and record["epoch"] == 2 and record["space"] == "full"
    assert record["f_max"] >= record["f_x"] and record["phi"] > 0
    assert 1 <= record["iterations"] <= 10 and record["max_iter"] == 10
    assert record["n_train"] == N_TRAIN and record["logged"]["train_loss"] == 0.5
    sub = analyses.sharpness_record(str(run), "sub5", 1e-3, 10, data, torch.device("cpu"))
    assert sub["subspace_dim"] == 5 and sub["subspace_seed"] == 3  # the run's seed


def test_a_diverged_run_gets_no_phi(tmp_path):
    run = make_run(tmp_path / "LB" / "seed0", 0, status="diverged")
    record = analyses.sharpness_record(str(run), "full", 1e-3, 10, make_data(), "cpu")
    assert record["phi"] is None and record["status"] == "diverged"


def test_training_sharpness_covers_saved_epochs_and_reuses_the_final(tmp_path):
    data = make_data()
    run = make_run(tmp_path / "SB" / "seed0", 0)
    final = tmp_path / "final.json"
    final.write_text(json.dumps({"phi": 42.0, "eps": 1e-3, "f_x": 0.5, "iterations": 3}))
    frame = analyses.training_sharpness(str(run), [1e-3], 10, [str(final)], data, "cpu")
    assert list(frame["epoch"]) == [1, 2]
    assert frame["phi"].iloc[1] == 42.0 and frame["phi"].iloc[0] > 0
    assert list(frame["train_loss"]) == [1.0, 0.5]  # merged from metrics.csv


def test_sharpness_job_adds_the_converged_estimate_beside_the_papers_phi(tmp_path, monkeypatch):
    data = make_data()
    run = make_run(tmp_path / "LB" / "seed2", 2)
    monkeypatch.setattr(analyses, "load_data", lambda path, device: data)
    out = tmp_path / "phi.json"
    args = ["sharpness", "--run", str(run), "--data", "unused.pt", "--space", "sub4",
            "--eps", "0.001", "--max-iter", "3", "--converge-iter", "8", "--random-starts", "2",
            "--converge-tol", "0.01", "--converge-patience", "2", "--out", str(out)]  # fmt: skip
    assert analyses.main(args) == 0
    record = json.loads(out.read_text())
    paper = analyses.sharpness_record(str(run), "sub4", 1e-3, 3, data, torch.device("cpu"))
    assert record["phi"] == pytest.approx(paper["phi"], rel=1e-12)  # the paper's, unchanged
    assert record["phi_converged"] >= record["phi"] and paper["phi_converged"] is None
    assert len(record["starts"]) == 2 and record["random_starts"] == 2
    assert record["converge_max_iter"] == 8 and record["converge_tol"] == 0.01
    assert record["converge_patience"] == 2 and isinstance(record["converged"], bool)
    assert record["subspace_matrix"]["seed"] == 2  # the run's seed, as for A
    assert len(record["trace_phi"]) == record["converge_iterations"] + 1


def test_bn_modes_measure_the_other_mode_and_reuse_the_runs_phi(tmp_path):
    data = make_data()
    run = make_run(tmp_path / "SB" / "seed1", 1, bn_eval="running")
    final = tmp_path / "final.json"
    final.write_text(json.dumps({"phi": 42.0}))
    record = analyses.bn_modes_record(str(run), 1e-3, 5, str(final), data, torch.device("cpu"))
    assert record["run_bn_eval"] == "running" and record["modes"]["running"]["phi"] == 42.0
    other = analyses.sharpness_record(
        str(make_run(tmp_path / "B" / "seed1", 1, bn_eval="batch")), "full", 1e-3, 5, data, "cpu"
    )
    assert record["modes"]["batch"]["phi"] == pytest.approx(other["phi"], rel=1e-9)
    model, _ = analyses.load_run(run, "cpu")
    for mode in ("running", "batch"):
        _, acc = evaluation.evaluate(model, data["test_x"], data["test_y"], 32, mode)
        assert record["modes"][mode]["test_acc"] == pytest.approx(acc)
    assert record["modes"]["running"]["train_loss"] != record["modes"]["batch"]["train_loss"]
    gone = make_run(tmp_path / "LB" / "seed0", 0, status="diverged")
    record = analyses.bn_modes_record(str(gone), 1e-3, 5, str(final), data, "cpu")
    assert record["modes"]["batch"] == {"train_acc": None, "test_acc": None, "phi": None}
