"""Beyond Keskar et al.: is the sharpness gap a property of the function? (issue 21)

Two tables from the runs' reparametrization.json (lbgap.analysis.jobs.reparametrization_record):

- `reparametrization`: Dinh et al. 2017's function-preserving rescaling of the SB and LB
  final weights, one row per network and regime: loss and accuracy (unchanged), phi and the
  Hessian's top eigenvalue (changed) at each alpha;
- `adaptive_sharpness`: Kwon et al. 2021's adaptive sharpness of SB and LB beside phi, and
  how much each moves under the rescaling: is LB still sharper by a measure that cannot be
  rescaled away?

CSV columns follow lbgap.products.papers.cells: `{quantity}_a{alpha}_{stat}` per alpha, and for the
claims (lbgap.products.claims) `{quantity}_ref` (alpha = 1, the checkpoint), `{quantity}_rescaled`
(the largest alpha) and `{quantity}_worst` (per seed, the alpha whose value is farthest from the
checkpoint's).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from lbgap.config import layout
from lbgap.io import read_json
from lbgap.products.papers.cells import diverged as diverged_runs
from lbgap.products.papers.cells import experiment_columns
from lbgap.products.papers.keskar2017 import data as kd

QUANTITIES = ("train_loss", "train_acc", "test_loss", "test_acc", "phi", "adaptive", "lambda_max")


def settings(plan: dict) -> dict:
    return kd.settings(plan)["reparametrization"]


def alpha_name(alpha: float) -> str:
    return f"a{float(alpha):g}"


def dirs(plan: dict, exp: dict, regime: str) -> list[str]:
    """The runs rescaled: the `seeds` of the reparametrization settings."""
    return kd.with_seeds(kd.dirs_of(exp, regime), settings(plan)["seeds"])


def _checkpoint_files(plan: dict, run_dir: str) -> dict[str, str]:
    """alpha = 1's phi and top eigenvalue: Table 3's and the Hessian table's files."""
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    out = {"phi": layout.sharpness(run_dir, "full", eps)}
    if settings(plan)["eigenvalue"]:
        out["lambda_max"] = layout.hessian(run_dir)
    return out


def inputs(plan: dict) -> list[str]:
    return [
        f
        for exp in kd.table_experiments(plan).values()
        for regime in kd.REGIMES
        for d in dirs(plan, exp, regime)
        for f in (
            layout.summary(d),
            layout.reparametrization(d),
            *_checkpoint_files(plan, d).values(),
        )
    ]


def per_seed(plan: dict, run_dirs: list[str]) -> list[dict[float, dict]]:
    """Each run's measurements by alpha (a diverged run's have None values), alpha = 1's phi
    and top eigenvalue taken from Table 3's and the Hessian table's files."""
    out = []
    for d in run_dirs:
        rows = {
            float(r["alpha"]): dict(r) for r in read_json(layout.reparametrization(d))["alphas"]
        }
        keys = {"phi": "phi", "lambda_max": "top_eigenvalue"}
        for quantity, path in _checkpoint_files(plan, d).items():
            rows.setdefault(1.0, {})[quantity] = read_json(path).get(keys[quantity])
        out.append(rows)
    return out


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def _values(runs: list[dict[float, dict]], pick: Callable[[dict[float, dict]], float | None]):
    values = [pick(run) for run in runs]
    return [float(v) for v in values if _finite(v)]


def _worst(run: dict[float, dict], key: str) -> float | None:
    """The value, over the rescaled alphas, farthest from the checkpoint's (alpha = 1)."""
    ref = run.get(1.0, {}).get(key)
    others = [r.get(key) for a, r in run.items() if a != 1.0 and _finite(r.get(key))]
    if not _finite(ref) or not others:
        return None
    return max(others, key=lambda v: abs(v - ref))


def _stats(prefix: str, values: list[float]) -> dict:
    stats = kd.aggregate(values)
    return {
        f"{prefix}_mean": stats["mean"],
        f"{prefix}_std": stats["std"],
        f"{prefix}_n": stats["n"],
        f"{prefix}_values": ";".join(f"{v:.10g}" for v in values),
    }


def _regime_columns(plan: dict, run_dirs: list[str]) -> dict:
    """Every quantity at every alpha, and the claims' reference, rescaled and worst columns."""
    alphas = [float(a) for a in settings(plan)["alphas"]]
    runs = per_seed(plan, run_dirs)
    top = max(alphas)
    row: dict = {"alphas": ";".join(f"{a:g}" for a in alphas), "alpha_max": top}
    for q in QUANTITIES:
        for a in alphas:
            row |= _stats(f"{q}_{alpha_name(a)}", _values(runs, lambda r, a=a, q=q: r[a][q]))
        row |= _stats(f"{q}_ref", _values(runs, lambda r, q=q: r[1.0][q]))
        row |= _stats(f"{q}_rescaled", _values(runs, lambda r, q=q: r[top][q]))
        row |= _stats(f"{q}_worst", _values(runs, lambda r, q=q: _worst(r, q)))
    return row


def _fmt(values: list[float], digits: str) -> str:
    stats = kd.aggregate(values)
    if not stats["n"]:
        return "-"
    text = f"{stats['mean']:{digits}}"
    return text + (f" ± {stats['std']:{digits}}" if stats["n"] > 1 else "")


def _delta(runs: list[dict[float, dict]], alpha: float, key: str) -> str:
    """The largest |value(alpha) - value(1)| over seeds: zero up to float rounding if the
    rescaling keeps the function."""
    gaps = [abs(r[alpha][key] - r[1.0][key]) for r in runs if _finite(r[alpha][key])]
    return f"{max(gaps):.1e}" if gaps else "-"


def reparametrization_table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dinh et al.'s rescaling of the SB and LB minima: the same function, another phi."""
    cfg, sharp = settings(plan), kd.settings(plan)["sharpness"]
    label = layout.eps_label(sharp["figure_eps"])
    alphas = [float(a) for a in cfg["alphas"]]
    rows, shown = [], []
    for name, exp in kd.table_experiments(plan).items():
        for regime in kd.REGIMES:
            run_dirs = dirs(plan, exp, regime)
            row = experiment_columns(name, exp) | {"regime": regime, "case": f"{name} {regime}"}
            done = [d for d in run_dirs if read_json(layout.summary(d))["status"] == "completed"]
            row |= _regime_columns(plan, run_dirs)
            row |= {"diverged": diverged_runs(run_dirs), "note": exp["skip"] or ""}
            rows.append(row)
            runs = per_seed(plan, done)
            if not run_dirs:  # one line, not one per alpha
                shown.append({"Network": exp["label"], "Regime": regime, "α": "-",
                              "Note": exp["skip"] or "no run at this scale"})  # fmt: skip
                continue
            for a in alphas:
                cell = {
                    q: _values(runs, lambda r, a=a, q=q: r[a][q]) for q in QUANTITIES
                }  # fmt: skip
                shown.append(
                    {
                        "Network": exp["label"],
                        "Regime": regime,
                        "α": f"{a:g}",
                        "train loss": _fmt(cell["train_loss"], ".6f"),
                        "|Δ train loss|": _delta(runs, a, "train_loss"),
                        "train acc": _fmt(cell["train_acc"], ".2f"),
                        "test loss": _fmt(cell["test_loss"], ".6f"),
                        "test acc": _fmt(cell["test_acc"], ".2f"),
                        "|Δ test acc|": _delta(runs, a, "test_acc"),
                        f"φ ε={label}": _fmt(cell["phi"], ".4g"),
                        f"adaptive ε={cfg['adaptive_eps']:g}": _fmt(cell["adaptive"], ".4g"),
                        "λmax": _fmt(cell["lambda_max"], ".4g") if cfg["eigenvalue"] else "not run",
                        "Note": f"scale={plan['scale']}",
                    }
                )
    view = pd.DataFrame(shown).fillna("")
    seeds = ", ".join(map(str, cfg["seeds"]))
    view.attrs["notes"] = [
        "Not in the paper: Dinh et al. 2017 (Sharp Minima Can Generalize For Deep Nets). At "
        "every ReLU the final weights are rescaled: the batch norm (or layer) feeding it "
        "multiplies its gamma and beta by α, the next linear or convolutional layer divides "
        "its weights by α. relu(α z) = α relu(z), so the network computes the same function "
        "(in either batch-norm mode); α = 1 is the checkpoint itself.",
        f"φ: Keskar's sharpness (full space, ε={label}, {sharp['max_iter']} L-BFGS-B "
        "iterations), at α = 1 Table 3's measurement. adaptive: Kwon et al. 2021's box "
        f"|y_i| <= ε |w_i| (ε={cfg['adaptive_eps']:g}), maximized the same way; it cannot "
        "change under the rescaling, up to float rounding along the maximization. λmax: the "
        "Hessian's top eigenvalue (Lanczos as in the Hessian table; at α = 1 its value)"
        + ("" if cfg["eigenvalue"] else ", not computed at this scale (eigenvalue: false)")
        + ".",
        f"|Δ|: the largest difference from α = 1 over seeds ({seeds}). Loss: mean "
        "cross-entropy over the whole split, in the run's batch-norm mode. With α a power of "
        "two the rescaled weights are exact in floating point (the same function bit for bit); "
        "with other α the function agrees up to rounding, which the 10-iteration maximizations "
        "can amplify into small differences.",
    ]
    return pd.DataFrame(rows), view


def _ratio(sb: list[float], lb: list[float]) -> float | None:
    a, b = kd.aggregate(lb)["mean"], kd.aggregate(sb)["mean"]
    return a / b if a == a and b == b and b != 0 else None


def _moves(runs: list[dict[float, dict]], key: str) -> list[float]:
    """Per seed, the largest factor by which the rescaling moves a measure: max over alphas of
    max(v / v1, v1 / v) (1 is no change)."""
    out = []
    for r in runs:
        ref = r.get(1.0, {}).get(key)
        vals = [v[key] for a, v in r.items() if a != 1.0 and _finite(v[key])]
        if _finite(ref) and ref > 0 and vals and min(vals) > 0:
            out.append(max(max(v / ref, ref / v) for v in vals))
    return out


def adaptive_table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adaptive (scale-invariant) sharpness of SB and LB beside phi: is LB still sharper?"""
    cfg, sharp = settings(plan), kd.settings(plan)["sharpness"]
    label = layout.eps_label(sharp["figure_eps"])
    rows, shown = [], []
    for name, exp in kd.table_experiments(plan).items():
        row = experiment_columns(name, exp)
        view = {"Network": exp["label"]}
        measured = {}
        for regime in kd.REGIMES:
            run_dirs = dirs(plan, exp, regime)
            runs = per_seed(plan, run_dirs)
            phi = _values(runs, lambda r: r[1.0]["phi"])
            adaptive = _values(runs, lambda r: r[1.0]["adaptive"])
            measured[regime] = (phi, adaptive)
            top = max(float(a) for a in cfg["alphas"])
            rescaled = _values(runs, lambda r, top=top: r[top]["phi"])
            row |= _stats(f"{regime}_phi", phi) | _stats(f"{regime}_adaptive", adaptive)
            row |= _stats(f"{regime}_phi_rescaled", rescaled)
            row |= _stats(f"{regime}_phi_moves", _moves(runs, "phi"))
            row |= _stats(f"{regime}_adaptive_moves", _moves(runs, "adaptive"))
            row[f"{regime}_diverged"] = diverged_runs(run_dirs)
            view[f"φ {regime}"] = _fmt(phi, ".4g") if run_dirs else "not run"
            view[f"adaptive {regime}"] = _fmt(adaptive, ".4g") if run_dirs else "not run"
            view[f"φ {regime} rescaled (α={top:g})"] = _fmt(rescaled, ".4g") if run_dirs else "-"
        ratios = {
            "phi": _ratio(measured["SB"][0], measured["LB"][0]),
            "adaptive": _ratio(measured["SB"][1], measured["LB"][1]),
        }
        row |= {f"LB_over_SB_{k}": v for k, v in ratios.items()}
        known = [r > 1 for r in ratios.values() if r is not None]
        row["same_ranking"] = (all(known) or not any(known)) if len(known) == 2 else None
        view["LB/SB: φ, adaptive"] = ", ".join(
            f"{r:.3g}" if r is not None else "-" for r in ratios.values()
        )
        view["Same ranking"] = {True: "yes", False: "no", None: "-"}[row["same_ranking"]]
        moves = [row.get(f"{r}_{k}_moves_mean") for r in kd.REGIMES for k in ("phi", "adaptive")]
        view["rescaling moves φ (SB, LB)"] = ", ".join(
            f"{m:.3g}x" if m == m and m is not None else "-" for m in moves[0::2]
        )
        view["rescaling moves adaptive by (SB, LB)"] = ", ".join(
            f"{m - 1:.1e}" if m == m and m is not None else "-" for m in moves[1::2]
        )
        row["note"] = exp["skip"] or ""
        view["Note"] = exp["skip"] or f"scale={plan['scale']}, seeds {cfg['seeds']}"
        rows.append(row)
        shown.append(view)
    frame = pd.DataFrame(shown)
    frame.attrs["notes"] = [
        "Not in the paper: the adaptive sharpness of Kwon et al. 2021 (ASAM), with Keskar's "
        "normalization: (max f(x + y) - f(x)) / (1 + f(x)) x 100 over the box |y_i| <= ε |x_i| "
        f"(ε={cfg['adaptive_eps']:g}), maximized like φ ({sharp['max_iter']} L-BFGS-B "
        "iterations from y = 0, on the whole training set). Any positive per-parameter "
        "rescaling that keeps the function maps the box onto itself, so a minimum cannot be "
        f"made sharp or flat by reparametrization. φ: Table 3's (full space, ε={label}), of the "
        "same runs (CSV columns SB_phi, LB_phi).",
        "φ rescaled: φ of the same weights rescaled by the largest α (the reparametrization "
        "table): the same function, as sharp by φ as α makes it.",
        "Rescaling moves: the largest factor max(v / v(α=1), v(α=1) / v) over the "
        f"reparametrization table's α ({', '.join(f'{a:g}' for a in cfg['alphas'])}); 1x is "
        "no change. For the adaptive sharpness the column gives that factor minus 1.",
    ]
    return pd.DataFrame(rows), frame
