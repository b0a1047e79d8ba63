"""Keskar et al. 2017: which runs and analysis files each table and figure reads, and reading them.

The plan (lbgap.products.outputs.plan) lists the experiments; by convention
- a *table experiment* has variants SB and LB (F1, F2, C1-C4: Tables 2-4, the Hessian table,
  the parametric plots and phi along training),
- `<table experiment>_batch_sweep` holds more batch sizes of the same recipe (its SB and LB
  runs are two more points of the sweep),
- `<table experiment>_warmstart` holds LB runs started from SB's weights after k epochs (its
  plain LB run is k = 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.io import read_json
from lbgap.products import results

PAPER = "keskar2017"
NETWORKS = ("F1", "F2", "C1", "C2", "C3", "C4")
REGIMES = ("SB", "LB")
SWEEP, WARM = "_batch_sweep", "_warmstart"
# Training-set sizes of the paper's runs (standard splits), to place its LB (10%) on a batch axis;
# TIMIT's is not known here, so its LB is not drawn.
PAPER_TRAIN_SIZE = {"mnist": 60000, "cifar10": 50000, "cifar100": 50000}
PAPER_SB = 256


# ---------------------------------------------------------------- the plan's experiments
def table_experiments(plan: dict) -> dict:
    """Experiments with an SB and an LB variant, in config order."""
    return {
        name: exp
        for name, exp in plan["experiments"].items()
        if set(REGIMES) <= set(exp["variants"])
    }


def with_suffix(plan: dict, suffix: str) -> dict:
    """Sweep or warm-start experiments, keyed by their table experiment's name."""
    return {
        name.removesuffix(suffix): exp
        for name, exp in plan["experiments"].items()
        if name.endswith(suffix) and name.removesuffix(suffix) in plan["experiments"]
    }


def dirs_of(exp: dict, variant: str) -> list[str]:
    return exp["variants"].get(variant, {}).get("dirs", [])


def seed_of(run_dir: str) -> int:
    return int(Path(run_dir).name.removeprefix("seed"))


def with_seeds(dirs: list[str], seeds: list[int]) -> list[str]:
    return [d for d in dirs if seed_of(d) in seeds]


def settings(plan: dict) -> dict:
    """The paper's analysis settings at this scale (matrix.analysis, carried in the plan)."""
    return plan["analysis"]


def pairing_seeds(plan: dict, exp: dict) -> list[int]:
    """Seeds s whose SB and LB runs both exist, among the parametric plot's seeds."""
    wanted = settings(plan)["parametric"]["seeds"]
    have = [{seed_of(d) for d in dirs_of(exp, r)} for r in REGIMES]
    return [s for s in wanted if all(s in h for h in have)]


def skip_note(exp: dict) -> str | None:
    """Why an experiment has no runs at this scale, or None when it has some."""
    if exp["skip"]:
        return exp["skip"]
    if not any(v["dirs"] for v in exp["variants"].values()):
        return "no run at this scale"
    return None


# ---------------------------------------------------------------- inputs of each product
def _run_files(dirs: list[str], *names: str) -> list[str]:
    return [f"{d}/{n}" for d in dirs for n in names]


def sharpness_dirs(plan: dict, exp: dict, regime: str, space: str) -> list[str]:
    """The runs with phi in this space: all seeds in the full space, `subspace_seeds` else."""
    if space == "full":
        return dirs_of(exp, regime)
    return with_seeds(dirs_of(exp, regime), settings(plan)["sharpness"]["subspace_seeds"])


def sharpness_inputs(plan: dict, space: str) -> list[str]:
    out = []
    for exp in table_experiments(plan).values():
        for regime in REGIMES:
            for d in sharpness_dirs(plan, exp, regime, space):
                out.append(layout.summary(d))
                out += [layout.sharpness(d, space, e) for e in settings(plan)["sharpness"]["eps"]]
    return out


def full_inputs(plan: dict) -> list[str]:
    return sharpness_inputs(plan, "full")


def subspace_inputs(plan: dict) -> list[str]:
    return sharpness_inputs(plan, layout.space_name(settings(plan)["sharpness"]["subspace_dim"]))


def convergence_inputs(plan: dict) -> list[str]:
    """Tables 3 and 4's sharpness files: their traces are the convergence figure."""
    return full_inputs(plan) + subspace_inputs(plan)


def hessian_dirs(plan: dict, exp: dict, regime: str) -> list[str]:
    return with_seeds(dirs_of(exp, regime), settings(plan)["hessian"]["seeds"])


def bn_modes_inputs(plan: dict) -> list[str]:
    """Every table run's bn_modes.json (both batch-norm modes), with its summary."""
    return [
        f
        for exp in table_experiments(plan).values()
        for regime in REGIMES
        for d in dirs_of(exp, regime)
        for f in (layout.summary(d), layout.bn_modes(d))
    ]


def bn_mode_values(dirs: list[str], mode: str, key: str) -> list[float]:
    """One quantity of each completed run in one batch-norm mode (a diverged run has none)."""
    values = [read_json(layout.bn_modes(d))["modes"][mode].get(key) for d in dirs]
    return [float(v) for v in values if v is not None]


def hessian_inputs(plan: dict) -> list[str]:
    eps = settings(plan)["sharpness"]["figure_eps"]
    out = []
    for exp in table_experiments(plan).values():
        for regime in REGIMES:
            for d in hessian_dirs(plan, exp, regime):
                out += [layout.summary(d), layout.hessian(d), layout.sharpness(d, "full", eps)]
    return out


def parametric_inputs(plan: dict, network: str) -> list[str]:
    exp = plan["experiments"].get(network)
    if exp is None:
        return []
    return [layout.parametric(plan["paper"], network, s) for s in pairing_seeds(plan, exp)]


def _points_inputs(plan: dict, dirs: list[str]) -> list[str]:
    eps = settings(plan)["sharpness"]["figure_eps"]
    return _run_files(dirs, layout.SUMMARY, layout.METRICS) + [
        layout.sharpness(d, "full", eps) for d in dirs
    ]


def sweep_inputs(plan: dict) -> list[str]:
    out = []
    for base, sweep in with_suffix(plan, SWEEP).items():
        main = plan["experiments"][base]
        dirs = [d for v in sweep["variants"].values() for d in v["dirs"]]
        dirs += [d for r in REGIMES for d in dirs_of(main, r)]
        out += _points_inputs(plan, dirs)
    return out


def warmstart_inputs(plan: dict) -> list[str]:
    out = []
    for base, warm in with_suffix(plan, WARM).items():
        main = plan["experiments"][base]
        dirs = [d for v in warm["variants"].values() for d in v["dirs"]]
        seeds = sorted({seed_of(d) for d in dirs})
        out += _points_inputs(plan, dirs + with_seeds(dirs_of(main, "LB"), seeds))
        out += _points_inputs(plan, with_seeds(dirs_of(main, "SB"), seeds))
    return out


def training_sharpness_dirs(plan: dict, exp: dict) -> list[str]:
    seeds = settings(plan)["training_sharpness"]["seeds"]
    return [d for r in REGIMES for d in with_seeds(dirs_of(exp, r), seeds)]


def training_sharpness_inputs(plan: dict) -> list[str]:
    return [
        layout.training_sharpness(d)
        for exp in table_experiments(plan).values()
        for d in training_sharpness_dirs(plan, exp)
    ]


# ---------------------------------------------------------------- reading results
def phi_values(dirs: list[str], space: str, eps: float, key: str = "phi") -> list[float]:
    """phi of each completed run (a diverged run's file holds phi None); `key` "phi_converged"
    gives the converged estimate instead of the paper's measurement (None where not made)."""
    values = [read_json(layout.sharpness(d, space, eps)).get(key) for d in dirs]
    return [float(v) for v in values if v is not None]


def converged_count(dirs: list[str], space: str, eps: float) -> int:
    """Runs whose converged estimate met its tolerance before the iteration cap."""
    return sum(bool(read_json(layout.sharpness(d, space, eps)).get("converged")) for d in dirs)


def convergence_frame(plan: dict, exp: dict) -> pd.DataFrame:
    """phi after each L-BFGS-B iteration of a table experiment's measurements: one row per
    space, eps, regime, seed, start (0: from y = 0, the paper's run continued; then the random
    starts) and iteration; `phi` from the largest f seen so far."""
    cfg = settings(plan)["sharpness"]
    spaces = ("full", layout.space_name(cfg["subspace_dim"]))
    rows = []
    for space in spaces:
        for regime in REGIMES:
            for d in sharpness_dirs(plan, exp, regime, space):
                for eps in cfg["eps"]:
                    record = read_json(layout.sharpness(d, space, eps))
                    if record.get("phi") is None:
                        continue
                    runs = [record.get("trace_phi", [])]
                    runs += [s["trace_phi"] for s in record.get("starts", [])]
                    rows += [
                        {"space": space, "eps": eps, "regime": regime, "seed": seed_of(d),
                         "start": start, "iteration": k, "phi": phi}
                        for start, trace in enumerate(runs)
                        for k, phi in enumerate(trace)
                    ]  # fmt: skip
    columns = ["space", "eps", "regime", "seed", "start", "iteration", "phi"]
    return pd.DataFrame(rows, columns=columns)


def hessian_values(dirs: list[str], key: str) -> list[float]:
    values = [read_json(layout.hessian(d)).get(key) for d in dirs]
    return [float(v) for v in values if v is not None]


def first_record(dirs: list[str], path_of) -> dict:
    """One run's result file (its settings, e.g. bn_eval and iterations, are shared)."""
    return read_json(path_of(dirs[0])) if dirs else {}


def points(plan: dict, dirs: list[str]) -> pd.DataFrame:
    """Per run: batch size, final test accuracy, phi (figure eps, full space), warm-start epoch."""
    eps = settings(plan)["sharpness"]["figure_eps"]
    rows = []
    for d in dirs:
        summary = read_json(layout.summary(d))
        spec = RunSpec.from_summary(summary, layout.summary(d))
        phi = read_json(layout.sharpness(d, "full", eps)).get("phi")
        rows.append(
            {
                "dir": d,
                "seed": spec.seed,
                "batch": spec.batch_size,
                "n_train": spec.n_train,
                "k": spec.warm_start["epoch"] if spec.warm_start else 0,
                "status": summary["status"],
                "test_acc": summary["final"].get("test_acc"),
                "phi": phi,
            }
        )
    columns = ["dir", "seed", "batch", "n_train", "k", "status", "test_acc", "phi"]
    return pd.DataFrame(rows, columns=columns)


def metric_at(dirs: list[str], epoch: int, key: str = "test_acc") -> list[float]:
    """A metrics.csv value after `epoch` epochs, per run."""
    out = []
    for d in dirs:
        frame = pd.read_csv(layout.metrics(d))
        row = frame[frame["epoch"] == epoch]
        if not row.empty and key in row and np.isfinite(row[key].iloc[0]):
            out.append(float(row[key].iloc[0]))
    return out


def parametric_frame(plan: dict, network: str) -> pd.DataFrame:
    """All seed pairings' lines, with the seed as a column."""
    frames = []
    for s in pairing_seeds(plan, plan["experiments"][network]):
        frame = pd.read_csv(layout.parametric(plan["paper"], network, s))
        frames.append(frame.assign(seed=s))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def training_sharpness_frame(plan: dict, exp: dict) -> pd.DataFrame:
    frames = []
    for d in training_sharpness_dirs(plan, exp):
        regime = Path(d).parent.name
        frame = pd.read_csv(layout.training_sharpness(d))
        frames.append(frame.assign(regime=regime, seed=seed_of(d)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def aggregate(values: list[float]) -> dict:
    return results.aggregate(values)
