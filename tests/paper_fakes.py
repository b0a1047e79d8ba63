"""Constructed result folders for the paper-table tests: known numbers in, the same numbers out."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
from conftest import shipped_config

from lbgap.config import matrix
from lbgap.config.run_spec import RunSpec
from lbgap.products import outputs


def quick_config(**scale) -> dict:
    """The shipped config, prepared at the quick scale (scale sizes overridable)."""
    cfg = shipped_config()
    cfg["scales"]["quick"].update(scale)
    return matrix.prepare_config(copy.deepcopy(cfg))


def plan_and_specs(config: dict, paper: str) -> tuple[dict, dict]:
    specs = {r: matrix.spec(config, r) for r in matrix.runs(config, paper)}
    return outputs.plan(config, paper, specs), specs


def spec_of(config: dict, paper: str, experiment: str, variant: str, seed: int = 0) -> RunSpec:
    return matrix.spec(config, matrix.Run(paper, experiment, variant, seed))


def write_run(
    run_dir: str | Path,
    spec: RunSpec,
    test_acc: float,
    *,
    status: str = "completed",
    epochs: int = 3,
    updates: int = 30,
    samples: int = 300,
    b_noise: float = 50.0,
) -> None:
    """summary.json, metrics.csv and steps.csv of one finished run, with chosen numbers."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    final = {"train_acc": 99.0, "test_acc": test_acc, "train_loss": 0.01, "test_loss": 0.1}
    if status == "diverged":
        final = dict.fromkeys(final)
    summary = {
        "status": status,
        "spec": spec.to_dict(),
        "epochs": epochs,
        "updates": updates,
        "samples": samples,
        "final": final,
    }
    (d / "summary.json").write_text(json.dumps(summary))
    per_epoch = updates // epochs
    metrics = pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "batch": [spec.batch_size] * epochs,
            "lr": [0.1] * epochs,
            "updates": [per_epoch * (e + 1) for e in range(epochs)],
            "samples": [samples // epochs * (e + 1) for e in range(epochs)],
            "b_noise": [b_noise] * epochs,
            "noise_scale": [1.0] * epochs,
            "train_loss": [1.0 / (e + 1) for e in range(epochs)],
            "test_acc": [test_acc - (epochs - 1 - e) for e in range(epochs)],
        }
    )
    metrics.to_csv(d / "metrics.csv", index=False)
    steps = pd.DataFrame(
        {
            "update": range(1, updates + 1),
            "lr": [0.1 if u < updates // 2 else 0.01 for u in range(updates)],
            "weight_distance": [0.1 * (u + 1) for u in range(updates)],
        }
    )
    steps.to_csv(d / "steps.csv", index=False)


def fill(plan: dict, specs: dict, acc: dict, **kwargs) -> None:
    """Write every run of the plan; acc[(experiment, variant)] lists test accuracies by seed."""
    by_dir = {r.dir: s for r, s in specs.items()}
    for name, exp in plan["experiments"].items():
        for variant, info in exp["variants"].items():
            values = acc.get((name, variant), [90.0 + i for i in range(len(info["dirs"]))])
            for d, value in zip(info["dirs"], values, strict=True):
                write_run(d, by_dir[d], value, **kwargs)


def write_reparametrization(path: str | Path, alphas: list[float], level: float = 1.0) -> None:
    """A run's reparametrization.json as lbgap.analysis.jobs writes it: the function unchanged at
    every alpha, phi and the top eigenvalue proportional to alpha, the adaptive sharpness
    `level` at every alpha."""
    rows = [
        {"alpha": float(a), "train_loss": 0.2, "train_acc": 95.0, "test_loss": 0.3,
         "test_acc": 90.0, "phi": 10.0 * a * level, "adaptive": level,
         "lambda_max": 5.0 * a * level}
        for a in alphas
    ]  # fmt: skip
    Path(path).write_text(json.dumps({"bn_eval": "batch", "alphas": rows}))
    run = Path(path).parent  # alpha = 1's phi and eigenvalue: Table 3's and the Hessian's files
    (run / "sharpness_full_eps0.001.json").write_text(json.dumps({"phi": 10.0 * level}))
    (run / "hessian.json").write_text(json.dumps({"top_eigenvalue": 5.0 * level}))
