"""Keskar et al. 2017: accuracy (Table 2), sharpness phi (Tables 3, 4), Hessian, figures.

Tables name their CSV columns `{variant}_{quantity}_{stat}` (lbgap.products.papers.cells): for phi
the quantity is `phi_<eps>` with eps as the paper writes it (`SB_phi_1e-3_mean`), and
`{variant}_phi_<eps>_values` lists the per-seed values for the claims' tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import pandas as pd

from lbgap.config import layout
from lbgap.products import results
from lbgap.products.figures import training_curves
from lbgap.products.papers import Product, reference, run_files
from lbgap.products.papers.cells import dirs_of, experiment_columns
from lbgap.products.papers.cells import diverged as diverged_runs
from lbgap.products.papers.keskar2017 import data as kd
from lbgap.products.papers.keskar2017 import figures as kf
from lbgap.products.papers.keskar2017 import reparametrization as kr
from lbgap.products.tables import format_paper
from lbgap.words import plural

PAPER = kd.PAPER


def _by_network(
    plan: dict, row_of: Callable[[str, dict], tuple[dict, dict]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table of one row per network of Table 2: `row_of(name, exp)` gives its CSV row and its
    Markdown row."""
    pairs = [row_of(name, exp) for name, exp in kd.table_experiments(plan).items()]
    return pd.DataFrame([row for row, _ in pairs]), pd.DataFrame([view for _, view in pairs])


def _table2_row(plan: dict, name: str, exp: dict) -> tuple[dict, dict]:
    """Train and test accuracy of SB and LB on one network, ours and the paper's, and (CSV
    only, the paper gives none) our final training loss."""
    row = {"network": name, "dataset": exp["dataset"], "note": exp["skip"] or ""}
    view = {"Network": exp["label"]}
    for split in ("train", "test"):
        for regime in ("SB", "LB"):
            key = f"{split}_{regime}"
            p_mean, p_std = reference(PAPER, "table2", name, key)
            dirs = dirs_of(exp, regime)
            stats, diverged = results.final_metric(dirs, f"{split}_acc")
            row |= {
                f"{key}_mean": stats["mean"],
                f"{key}_std": stats["std"],
                f"{key}_n": stats["n"],
                f"{key}_diverged": diverged,
                f"{key}_paper_mean": p_mean,
                f"{key}_paper_std": p_std,
            }
            view[f"{split} {regime} (ours)"] = (
                results.format_cell(stats, diverged) if dirs else "not run"
            )
            view[f"{split} {regime} (paper)"] = format_paper(p_mean, p_std)
    for regime in ("SB", "LB"):  # the fits the gap claim compares (lbgap.products.claims.Fit)
        stats, _ = results.final_metric(dirs_of(exp, regime), "train_loss")
        row |= {f"train_loss_{regime}_{k}": stats[k] for k in ("mean", "std", "n")}
    view["Note"] = exp["skip"] or f"scale={plan['scale']}"
    return row, view


def table2(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test accuracy (%) of SB and LB (Keskar et al. Table 2), ours beside the paper's."""
    return _by_network(plan, partial(_table2_row, plan))


def _end_row(row: dict, view: dict, exp: dict, record: dict, note: str) -> tuple[dict, dict]:
    """The columns a row of measurements on the final weights ends with: how batch norm was
    evaluated, and why the row is empty (a skipped experiment) or else `note`."""
    row = row | {"bn_eval": record.get("bn_eval"), "note": exp["skip"] or ""}
    return row, view | {"Note": exp["skip"] or note}


# ---------------------------------------------------------------- sharpness tables
def _values(values: list[float]) -> str:
    return ";".join(f"{v:.10g}" for v in values)


def _stat_columns(prefix: str, values: list[float], paper: tuple) -> dict:
    stats = kd.aggregate(values)
    return {
        f"{prefix}_mean": stats["mean"],
        f"{prefix}_std": stats["std"],
        f"{prefix}_n": stats["n"],
        f"{prefix}_values": _values(values),
        f"{prefix}_paper_mean": paper[0],
        f"{prefix}_paper_std": paper[1],
    }


def _cell(values: list[float], dirs: list[str]) -> str:
    """mean ± std over seeds and, with two or more, their range [min, max]: with a few seeds a
    single outlying seed shows there, not only in a large std."""
    if not dirs:
        return "not run"
    diverged = len(dirs) - len(values)
    text = results.format_cell(kd.aggregate(values), diverged)
    return text + (f" [{min(values):.2f}, {max(values):.2f}]" if len(values) > 1 else "")


CONVERGE_KEYS = ("converge_max_iter", "random_starts", "converge_tol", "converge_patience")


def _converged(dirs: list[str], space: str, eps: float, prefix: str) -> tuple[dict, str]:
    """The converged estimate over seeds (CSV columns, and its Markdown cell) with how many
    seeds met the tolerance before the iteration cap."""
    values = kd.phi_values(dirs, space, eps, "phi_converged")
    reached = kd.converged_count(dirs, space, eps)
    stats = kd.aggregate(values)
    columns = {f"{prefix}_{k}": stats[k] for k in ("mean", "std", "n")}
    columns |= {f"{prefix}_values": _values(values), f"{prefix}_reached": reached}
    if dirs and not values:
        return columns, "-"
    cell = _cell(values, dirs)
    return columns, cell + (f", {reached}/{len(values)} converged" if values else "")


def _sharpness_row(plan: dict, space: str, table: str, name: str, exp: dict) -> tuple[dict, dict]:
    """phi of SB and LB on one network at every eps, ours and the paper's, and their ratio."""
    cfg = kd.settings(plan)["sharpness"]
    row, view = experiment_columns(name, exp), {"Network": exp["label"]}
    record = {}
    for eps in cfg["eps"]:
        label = layout.eps_label(eps)
        for regime in kd.REGIMES:
            dirs = kd.sharpness_dirs(plan, exp, regime, space)
            values = kd.phi_values(dirs, space, eps)
            paper = reference(PAPER, table, name, f"{label}_{regime}")
            row |= _stat_columns(f"{regime}_phi_{label}", values, paper)
            view[f"ε={label} {regime} (ours)"] = _cell(values, dirs)
            columns, cell = _converged(dirs, space, eps, f"{regime}_phi_converged_{label}")
            row |= columns
            view[f"ε={label} {regime} (ours, converged)"] = cell
            view[f"ε={label} {regime} (paper)"] = format_paper(*paper)
            record = record or kd.first_record(dirs, lambda d, e=eps: layout.sharpness(d, space, e))
        row[f"LB_over_SB_phi_{label}"] = _ratio(row, f"phi_{label}")
    for regime in kd.REGIMES:  # a diverged run has no phi: the claims count it against
        row[f"{regime}_diverged"] = diverged_runs(kd.sharpness_dirs(plan, exp, regime, space))
    row |= {
        "space": space,
        "subspace_dim": layout.subspace_dim(space),
        "max_iter": cfg["max_iter"],
        **{k: record.get(k) for k in CONVERGE_KEYS},  # as the runs' files say they ran
    }
    note = f"scale={plan['scale']}, batch norm: {record.get('bn_eval')}"
    return _end_row(row, view, exp, record, note)


def sharpness_table(plan: dict, space: str, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """phi per network, regime and eps: ours (mean ± std over seeds) beside the paper's."""
    cfg = kd.settings(plan)["sharpness"]
    data, view = _by_network(plan, partial(_sharpness_row, plan, space, table))
    view.attrs["notes"] = [
        f"phi = (max f(x + A y) - f(x)) / (1 + f(x)) x 100 over the box |y_i| <= eps (|(A^+ x)_i|"
        f" + 1), maximized by {plural(cfg['max_iter'], 'L-BFGS-B iteration')} (scipy) from y = 0; "
        "f is the mean cross-entropy over the whole training set; the largest f seen is the "
        "maximum.",
        "(ours): the paper's method, mean ± std over seeds and [min, max] of the seeds. "
        "(ours, converged): a check of it, not in the paper: the same L-BFGS-B run continued, "
        f"and {plural(layout.random_starts(cfg, space), 'random start')} uniform in the box, each "
        f"until phi gains at most {cfg['converge_tol']:g} of itself in each of "
        f"{cfg['converge_patience']} consecutive iterations (at least {cfg['max_iter']}, at most "
        f"{cfg['converge_max_iter']} per start); the largest f of all. k/n converged: seeds "
        "whose every start met that tolerance (or L-BFGS-B's own optimality test) before the "
        "cap. phi after each iteration: figure keskar2017_sharpness_convergence.",
        "Batch norm in evaluation mode as recorded (running: running averages; batch: each "
        "evaluation chunk's statistics). Per-run files: results/.../sharpness_<space>_eps<eps>."
        "json (f(x), maximum found, f after each iteration, every start, wall time).",
    ]
    return data, view


def table3(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sharpness phi in the full space, A = I (Keskar et al. Table 3), ours beside the paper's."""
    data, view = sharpness_table(plan, "full", "table3")
    return data, view


def table4(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sharpness phi in random subspaces, A of n x p (Keskar et al. Table 4), ours and paper's."""
    space = layout.space_name(kd.settings(plan)["sharpness"]["subspace_dim"])
    data, view = sharpness_table(plan, space, "table4")
    view.attrs["notes"].append(
        f"A: an n x {layout.subspace_dim(space)} matrix of i.i.d. standard normal entries "
        "seeded by the run's seed (the SB and LB runs of one seed share it; the random starts "
        "too); seeds "
        f"{', '.join(map(str, kd.settings(plan)['sharpness']['subspace_seeds']))}. The paper "
        "gives Table 4's means only."
    )
    view.attrs["notes"].append(
        "A's scale and the paper's definition: the paper says only that A is random, and its "
        "box is not invariant to A's scale (A -> cA is the same as A with the box's + 1 turned "
        "into + c). Our columns have norm about sqrt(n) (each run's file records them as "
        "subspace_matrix). With U = A / sqrt(n) (nearly orthonormal columns), our box lets x "
        "move along column i of U by up to eps (|(U^+ x)_i| + sqrt(n)); unit-norm columns, the "
        "analog of the full space's eps (|x_i| + 1) per coordinate, would allow eps "
        "(|(U^+ x)_i| + 1). Our subspace box is thus about sqrt(n) times wider per direction "
        "(sqrt(n) is about 1,200 for F1's 1.46M parameters): compare with the paper's Table 4 "
        "with that in mind."
    )
    return data, view


# ---------------------------------------------------------------- Hessian table
def _ratio(row: dict, quantity: str) -> float | None:
    sb, lb = row.get(f"SB_{quantity}_mean"), row.get(f"LB_{quantity}_mean")
    if sb is None or lb is None or sb != sb or lb != lb or sb == 0:
        return None
    return lb / sb


def _hessian_row(plan: dict, name: str, exp: dict) -> tuple[dict, dict]:
    """lambda_max, trace and phi of SB and LB on one network, and whether they rank alike."""
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    label = layout.eps_label(eps)
    row, view = experiment_columns(name, exp), {"Network": exp["label"]}
    for regime in kd.REGIMES:
        dirs = kd.hessian_dirs(plan, exp, regime)
        quantities = {
            "lambda_max": kd.hessian_values(dirs, "top_eigenvalue"),
            "trace": kd.hessian_values(dirs, "trace"),
            f"phi_{label}": kd.phi_values(dirs, "full", eps),
        }
        for quantity, values in quantities.items():
            row |= _stat_columns(f"{regime}_{quantity}", values, (None, None))
        view[f"λmax {regime} (ours)"] = _cell(quantities["lambda_max"], dirs)
        view[f"trace {regime} (ours)"] = _cell(quantities["trace"], dirs)
        view[f"φ ε={label} {regime} (ours)"] = _cell(quantities[f"phi_{label}"], dirs)
    ratios = {q: _ratio(row, q) for q in ("lambda_max", "trace", f"phi_{label}")}
    row |= {f"LB_over_SB_{q}": r for q, r in ratios.items()}
    known = [r > 1 for r in ratios.values() if r is not None]
    row["same_ranking"] = (all(known) or not any(known)) if len(known) == 3 else None
    view["LB/SB: λmax, trace, φ"] = (
        ", ".join(f"{r:.2g}" if r is not None else "-" for r in ratios.values()) if known else "-"
    )
    view["Same ranking"] = {True: "yes", False: "no", None: "-"}[row["same_ranking"]]
    record = kd.first_record(kd.hessian_dirs(plan, exp, "SB"), layout.hessian)
    row["hutchinson_samples"] = record.get("n_samples")
    return _end_row(row, view, exp, record, f"scale={plan['scale']}")


def hessian_table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top Hessian eigenvalue and trace of SB and LB minima beside phi: do they rank alike?"""
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    label = layout.eps_label(eps)
    data, view = _by_network(plan, partial(_hessian_row, plan))
    hess = kd.settings(plan)["hessian"]
    view.attrs["notes"] = [
        "Not in the paper: curvature of the whole training loss at the final weights, from "
        "Hessian-vector products (double backward). λmax: largest eigenvalue by Lanczos (ARPACK, "
        f"{hess['lanczos_vectors']} vectors, tol {hess['lanczos_tol']:g}); trace: Hutchinson's "
        f"estimate with {plural(hess['hutchinson_samples'], 'Rademacher probe')} (its standard "
        "error is in each run's hessian.json).",
        f"φ: Table 3's full-space sharpness at ε={label}, of the same runs (seeds "
        f"{', '.join(map(str, hess['seeds']))}). Same ranking: LB/SB is above 1 for all three "
        "measures, or below 1 for all three.",
    ]
    return data, view


# ---------------------------------------------------------------- batch-norm modes
def _distance(ours: float | None, paper: float | None, log: bool) -> float | None:
    """How far our mean is from the paper's: |ours - paper| points, or |log10(ours / paper)|."""
    if ours is None or paper is None or ours != ours or (log and (ours <= 0 or paper <= 0)):
        return None
    return abs(math.log10(ours / paper)) if log else abs(ours - paper)


def _bn_modes_row(plan: dict, name: str, exp: dict) -> tuple[dict, dict]:
    """Test accuracy and phi of SB and LB in both batch-norm modes beside the paper's, and which
    mode lands closer to the paper's magnitudes."""
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    label = layout.eps_label(eps)
    row, view = experiment_columns(name, exp), {"Network": exp["label"]}
    distance = {mode: {"acc": [], "phi": []} for mode in layout.BN_MODES}
    for regime in kd.REGIMES:
        dirs = dirs_of(exp, regime)
        paper = {
            "acc": reference(PAPER, "table2", name, f"test_{regime}"),
            "phi": reference(PAPER, "table3", name, f"{label}_{regime}"),
        }
        for quantity, key in (("acc", "test_acc"), ("phi", "phi")):
            for mode in layout.BN_MODES:
                values = kd.bn_mode_values(dirs, mode, key) if dirs else []
                row |= _stat_columns(f"{regime}_{quantity}_{mode}", values, paper[quantity])
                view[f"{quantity if quantity == 'phi' else 'test'} {regime} {mode}"] = _cell(
                    values, dirs
                )
                gap = _distance(kd.aggregate(values)["mean"], paper[quantity][0], quantity == "phi")
                distance[mode][quantity] += [gap] if gap is not None else []
            view[f"{quantity if quantity == 'phi' else 'test'} {regime} (paper)"] = format_paper(
                *paper[quantity]
            )
    for quantity in ("acc", "phi"):
        means = {m: sum(d[quantity]) / len(d[quantity]) for m, d in distance.items() if d[quantity]}
        row |= {f"distance_{quantity}_{m}": v for m, v in means.items()}
        closer = min(means, key=means.get) if len(means) == len(layout.BN_MODES) else None
        row[f"closer_{quantity}"] = closer
        view[f"closer to the paper ({'test accuracy' if quantity == 'acc' else 'φ'})"] = (
            closer or "-"
        )
    view["Note"] = exp["skip"] or exp["note"] or f"scale={plan['scale']}"
    return row, view


def bn_modes_table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Which `bn_eval` mode gives magnitudes closer to the paper's Tables 2 and 3."""
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    data, view = _by_network(plan, partial(_bn_modes_row, plan))
    view.attrs["notes"] = [
        "Not a table of the paper: the same final weights evaluated with batch norm's running "
        "averages (PyTorch's default) and with each evaluation chunk's own statistics (the Keras "
        f"mode of Keskar et al.'s code). φ: full space, ε={layout.eps_label(eps)}, the paper's "
        f"{kd.settings(plan)['sharpness']['max_iter']} L-BFGS-B iterations; in the run's own mode "
        "it is Table 3's measurement.",
        "Closer to the paper: the mode whose SB and LB means are nearer the paper's, on average "
        "(accuracy in points; φ by |log10(ours / paper)|, its order of magnitude). Where a row "
        "ran on another dataset than the paper's, that comparison is only indicative.",
    ]
    return data, view


# ---------------------------------------------------------------- products
def _table_plan(plan: dict) -> dict:
    """The plan restricted to the table experiments (the training-curves figure's rows)."""
    return {**plan, "experiments": kd.table_experiments(plan)}


def _curves(plan: dict):
    """Per experiment: train loss and test accuracy against epochs, one line per variant."""
    return training_curves(_table_plan(plan), reference_table="table2")


def _parametric_product(network: str) -> Product:
    return Product(
        f"parametric_{network}",
        "figure",
        partial(kf.parametric, network=network),
        inputs=partial(kd.parametric_inputs, network=network),
        caption=f"Parametric plot of {network} (Keskar et al. Figure 3): loss and accuracy of "
        "(1 - α) x_SB + α x_LB for α in [-1, 2], train solid, test dashed; batch-norm statistics "
        "recomputed on the training set at each α.",
    )


PRODUCTS = [
    Product(
        "table2",
        "table",
        table2,
        inputs=lambda plan: run_files(_table_plan(plan)),
    ),
    Product(
        "training_curves",
        "figure",
        _curves,
        inputs=lambda plan: run_files(_table_plan(plan)),
        caption="Training loss and test accuracy per epoch of SB and LB; dashed: the paper's "
        "final test accuracy (Keskar et al. Table 2), which the paper does not plot over epochs.",
    ),
    Product("table3", "table", table3, inputs=kd.full_inputs),
    Product("table4", "table", table4, inputs=kd.subspace_inputs),
    Product("hessian", "table", hessian_table, inputs=kd.hessian_inputs),
    Product("bn_modes", "table", bn_modes_table, inputs=kd.bn_modes_inputs),
    Product(
        "reparametrization",
        "table",
        kr.reparametrization_table,
        inputs=kr.inputs,
        caption="Not in the paper (Dinh et al. 2017): the SB and LB final weights rescaled by "
        "each alpha around every ReLU compute the same function (loss and accuracy unchanged) "
        "while phi and the Hessian's top eigenvalue change.",
    ),
    Product(
        "adaptive_sharpness",
        "table",
        kr.adaptive_table,
        inputs=kr.inputs,
        caption="Not in the paper (Kwon et al. 2021): adaptive sharpness, invariant to that "
        "rescaling, of SB and LB beside phi: is LB still sharper?",
    ),
    Product(
        "sharpness_convergence",
        "figure",
        kf.sharpness_convergence,
        inputs=kd.convergence_inputs,
        caption="Sharpness phi after each L-BFGS-B iteration of Tables 3 and 4's measurements "
        "(the largest seen so far): from y = 0, the paper's run continued past its 10 iterations, "
        "and from random starts in the box. Shows whether the paper's 10 iterations reached the "
        "maximum.",
    ),
    *[_parametric_product(network) for network in kd.NETWORKS],
    Product(
        "sharpness_vs_batch",
        "figure",
        kf.sharpness_vs_batch,
        inputs=kd.sweep_inputs,
        caption="Test accuracy and sharpness phi against the batch size (Keskar et al. Figure 4); "
        "the SB and LB runs of Table 2 are two of the points.",
    ),
    Product(
        "warmstart",
        "figure",
        kf.warmstart,
        inputs=kd.warmstart_inputs,
        caption="Warm starts (Keskar et al. section 4): SB for k epochs, then LB; test accuracy "
        "and sharpness phi of the final weights against k (k = 0: plain LB).",
    ),
    Product(
        "sharpness_during_training",
        "figure",
        kf.sharpness_during_training,
        inputs=kd.training_sharpness_inputs,
        caption="Sharpness phi at saved epochs of SB and LB runs, against the epoch and the "
        "training loss (the last slide of Keskar's talk).",
    ),
]
