"""Goyal et al. 2017: linear LR scaling and warmup (Table 1), error vs minibatch (Figure 1).

Variant names carry the method: `baseline` (kn = base), `no_warmup`, `constant_warmup`,
`gradual_warmup` (the large kn), and `kn*` for the other points of the minibatch sweep, which
like the paper's Figure 1 use the linear rule with gradual warmup. The paper's numbers are for
ResNet-50 on ImageNet; analog rows quote them for comparison and say so.

Experiments named `<experiment>_lars` (issue 21, not in the paper) rerun some kn of
`<experiment>` with LARS (You et al. 2017); only the `lars` table reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lbgap.products import figures, results
from lbgap.products.figures import plt
from lbgap.products.papers import Product, _reference
from lbgap.products.papers.cells import (
    batch_of,
    beside_paper,
    dirs_of,
    diverged,
    experiment_columns,
    experiment_notes,
    measured,
    median_column,
    spec_of,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAPER = "goyal2017"
# B_noise (McCandlish et al.) is read from the large-batch run: there the noise estimate's two
# batches are whole numbers of the 32-sample batch-norm batches, at kn = 32 they cannot be.
NOISE_FROM = "gradual_warmup"
# The paper's Table 1 is for ResNet-50 on ImageNet: every row, analogs too, quotes that row.
PAPER_ROW = (PAPER, "table1", "ResNet50_ImageNet")
SETTINGS = {
    "baseline": "baseline (no warmup needed)",
    "no_warmup": "no warmup",
    "constant_warmup": "constant warmup",
    "gradual_warmup": "gradual warmup",
}


LARS = "_lars"


def goyal_plan(plan: dict) -> dict:
    """The plan without the LARS experiments (the paper's table and figures)."""
    keep = {n: e for n, e in plan["experiments"].items() if not n.endswith(LARS)}
    return {**plan, "experiments": keep}


def sweep_variants(exp: dict) -> list[str]:
    """The Figure 1 points: the baseline, the gradual-warmup large batch and every kn* variant."""
    names = [
        v for v in exp["variants"] if v in ("baseline", "gradual_warmup") or v.startswith("kn")
    ]
    return sorted(names, key=lambda v: exp["variants"][v]["batch_size"] or 0)


def _peak_lr(dirs: list[str]) -> float | None:
    spec = spec_of(dirs)
    return spec.lr_schedule().peak_lr if spec else None


def table1(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-1 error (%) with no, constant, gradual warmup (Goyal et al. Table 1): ours, paper."""
    plan = goyal_plan(plan)
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        row = experiment_columns(name, exp) | {
            "note": exp["skip"] or "",
            "b_noise_median": median_column(dirs_of(exp, NOISE_FROM), "b_noise"),
            "b_noise_batch": batch_of(exp, NOISE_FROM),
        }
        for v, setting in SETTINGS.items():
            dirs = dirs_of(exp, v)
            cols, cell, paper_cell = beside_paper(dirs, v, "err", PAPER_ROW, error=True)
            lr = _peak_lr(dirs)
            row |= cols | {f"{v}_batch": batch_of(exp, v), f"{v}_lr": lr}
            shown.append(
                {
                    "Network": exp["label"],
                    "Setting": setting,
                    "kn": row[f"{v}_batch"] or "-",
                    "eta": f"{lr:.4g}" if lr is not None else "-",
                    "top-1 error % (ours)": cell,
                    "top-1 error % (paper, ResNet-50 ImageNet)": paper_cell,
                    "Note": exp["skip"] or "",
                }
            )
        rows.append(row)
    view = pd.DataFrame(shown)
    view.attrs["notes"] = [
        "Error = 100 - final test (validation) accuracy. The paper's kn = 256 baseline and "
        "kn = 8k settings are quoted on every row; our kn and eta are those actually run.",
        "eta is the peak LR after warmup: eta = base LR x kn / base kn (linear scaling rule).",
        *experiment_notes(plan),
    ]
    return pd.DataFrame(rows), view


def error_vs_batch(plan: dict) -> Figure:
    """Validation error vs minibatch size: ours (left) and the paper's Figure 1 (right)."""
    fig, (ours, paper) = plt.subplots(1, 2, figsize=(12, 4.6))
    ran = figures.ran_experiments(goyal_plan(plan))
    for exp in ran.values():
        points = []
        for v in sweep_variants(exp):
            stats, _ = results.final_metric(dirs_of(exp, v), "test_acc")
            if stats["n"]:
                points.append((exp["variants"][v]["batch_size"], 100 - stats["mean"], stats["std"]))
        if points:
            x, y, err = map(np.array, zip(*points, strict=True))
            ours.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{exp['label']}")
        b_noise = median_column(dirs_of(exp, NOISE_FROM), "b_noise")
        if b_noise and b_noise > 0:
            ours.axvline(b_noise, ls="--", color="grey", lw=1)
            kn = exp["variants"][NOISE_FROM]["batch_size"]
            ours.annotate(
                f" B_noise ≈ {b_noise:.0f}\n (median over training,\n  kn = {kn} runs)",
                (b_noise, 0.97),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                va="top",
            )
    ours.set(
        xscale="log",
        xlabel="minibatch size kn (log scale)",
        ylabel="top-1 test error (%)",
        title="ours: linear scaling + gradual warmup, mean ± std over seeds",
    )
    if not ran:
        ours.text(
            0.5, 0.5, "no experiment runs at this scale", ha="center", transform=ours.transAxes
        )
    figure1 = _reference()[PAPER]["figure1"]
    kn = sorted(int(k) for k in figure1)
    paper.plot(
        kn, [figure1[k] for k in kn], "s-", color="black", label="paper (ImageNet, ResNet-50)"
    )
    paper.set(
        xscale="log",
        xlabel="minibatch size kn (log scale)",
        ylabel="top-1 validation error (%)",
        title="paper: Goyal et al. Figure 1 (quoted, not ours)",
    )
    paper.set_xticks(kn, [f"{k // 1024}k" if k >= 1024 else str(k) for k in kn], fontsize=8)
    for ax in (ours, paper):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Error vs minibatch size (scale={plan['scale']})", fontsize=10)
    fig.tight_layout()
    return fig


def _log_band(ax, frame: pd.DataFrame, label: str, **style) -> None:
    """Training loss per epoch: geometric mean over seeds, band of one geometric std.

    On a log axis an arithmetic mean - std can fall below zero and fill the whole axis.
    """
    logs = np.log10(frame["train_loss"].astype(float)).groupby(frame["epoch"])
    mean, std = logs.mean(), logs.std(ddof=1).fillna(0.0)
    (line,) = ax.plot(mean.index, 10**mean, label=label, **style)
    ax.fill_between(
        mean.index, 10 ** (mean - std), 10 ** (mean + std), color=line.get_color(), alpha=0.2, lw=0
    )


# The two settings the paper compares drawn bold; the warmups that fall short thin and broken.
CURVE_STYLES = {
    "baseline": {"lw": 2.0},
    "gradual_warmup": {"lw": 2.0},
    "constant_warmup": {"ls": "--", "lw": 1.0},
    "no_warmup": {"ls": ":", "lw": 1.2},
}


def _draw_losses(ax, exp: dict) -> None:
    """Training loss of each warmup setting that ran, labelled with its kn and peak LR."""
    for v, style in CURVE_STYLES.items():
        dirs = dirs_of(exp, v)
        if not dirs:
            continue
        lr = _peak_lr(dirs)
        label = f"{SETTINGS[v]}: kn {exp['variants'][v]['batch_size']}, eta {lr:.3g}"
        _log_band(ax, results.metrics(dirs), label, **style)


def training_curves(plan: dict) -> Figure:
    """Training loss of the small-batch baseline and the large batch with linear rule and warmup."""
    return figures.panel_per_experiment(
        goyal_plan(plan),
        _draw_losses,
        (6.5, 4.4),
        f"Small vs large minibatch with the linear scaling rule (scale={plan['scale']})\n"
        "geometric mean over seeds, band: one geometric std",
        yscale="log",
        xlabel="epoch",
        ylabel="training loss (cross-entropy, whole training set)",
    )


# ---------------------------------------------------------------- LARS (You et al. 2017)
def _same_seeds(dirs: list[str], seeds: set[str]) -> list[str]:
    return [d for d in dirs if Path(d).name in seeds]


def _sgd_variant(exp: dict, batch: int | None) -> str | None:
    """The experiment's linear-rule, gradual-warmup run at `batch` (Figure 1's point)."""
    if batch is None:  # not run at this scale
        return None
    return next((v for v in sweep_variants(exp) if batch_of(exp, v) == batch), None)


def lars_table(plan: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LARS at the largest minibatches (You et al. 2017, not in the paper) beside plain SGD."""
    rows, shown = [], []
    for name, exp in plan["experiments"].items():
        base = plan["experiments"].get(name.removesuffix(LARS))
        if not name.endswith(LARS) or base is None:
            continue
        variants = sorted(exp["variants"], key=lambda v: batch_of(exp, v) or 0)
        row = experiment_columns(name, exp) | {"base": name.removesuffix(LARS),
                                               "note": exp["skip"] or ""}  # fmt: skip
        seeds = {Path(d).name for v in variants for d in dirs_of(exp, v)}
        base_dirs = _same_seeds(dirs_of(base, "baseline"), seeds)
        cols, base_cell = measured(base_dirs, "baseline_err", error=True)
        row |= cols | {"baseline_diverged": diverged(base_dirs),
                       "baseline_batch": batch_of(base, "baseline")}  # fmt: skip
        for v in variants:
            kn = batch_of(exp, v)
            sgd = _sgd_variant(base, kn)
            lars_dirs = dirs_of(exp, v)
            sgd_dirs = _same_seeds(dirs_of(base, sgd), seeds) if sgd else []
            lars_cols, lars_cell = measured(lars_dirs, f"{v}_err", error=True)
            sgd_cols, sgd_cell = measured(sgd_dirs, f"{v}_sgd_err", error=True)
            row |= lars_cols | sgd_cols | {f"{v}_batch": kn, f"{v}_sgd_variant": sgd,
                                           f"{v}_diverged": diverged(lars_dirs),
                                           f"{v}_sgd_diverged": diverged(sgd_dirs)}  # fmt: skip
            if exp["skip"]:  # one line, not one per kn
                continue
            shown.append(
                {
                    "Network": exp["label"],
                    "kn": str(kn),
                    "eta (peak)": f"{_peak_lr(lars_dirs):.4g}" if lars_dirs else "-",
                    "top-1 error % SGD (linear rule, gradual warmup)": sgd_cell
                    if sgd
                    else "no such run",
                    "top-1 error % LARS": lars_cell,
                    "top-1 error % baseline": f"{base_cell} (kn {batch_of(base, 'baseline')})",
                    "Note": f"seeds: {', '.join(sorted(seeds)) or '-'}",
                }
            )
        if exp["skip"]:
            shown.append({"Network": exp["label"], "Note": exp["skip"]})
        # The claims read the largest kn, where plain SGD falls behind first.
        top = variants[-1]
        for suffix in ("err", "sgd_err"):
            for stat in ("mean", "std", "n", "values"):
                row[f"largest_{suffix}_{stat}"] = row.get(f"{top}_{suffix}_{stat}")
        row["largest_batch"] = batch_of(exp, top)
        row["largest_diverged"] = row[f"{top}_diverged"]
        row["largest_sgd_diverged"] = row[f"{top}_sgd_diverged"]
        rows.append(row)
    view = pd.DataFrame(shown).fillna("-")
    view.attrs["notes"] = [
        "Not in the paper: LARS (You, Gitman, Ginsburg 2017, Large Batch Training of "
        "Convolutional Networks). The same recipe as the SGD runs of the same kn (linear "
        "scaling rule, gradual warmup, decays, batch-norm batches of 32), with each weight "
        "tensor's step scaled by trust x ||w|| / (||g|| + weight decay x ||w||); biases and "
        "batch-norm parameters keep the global step and no weight decay.",
        "SGD and baseline: the Table 1 experiment's runs of the same seeds as LARS's, so the "
        "comparison is seed for seed. Does LARS hold the baseline's error at a kn where SGD "
        "does not? (claims you2017-*)",
        *experiment_notes(
            {
                **plan,
                "experiments": {n: e for n, e in plan["experiments"].items() if n.endswith(LARS)},
            }
        ),  # fmt: skip
    ]
    return pd.DataFrame(rows), view


PRODUCTS = [
    Product("table1", "table", table1),
    Product("error_vs_batch", "figure", error_vs_batch),
    Product("training_curves", "figure", training_curves),
    Product(
        "lars",
        "table",
        lars_table,
        caption="Not in the paper (You et al. 2017): LARS at the largest minibatches beside "
        "SGD with the linear rule and gradual warmup at the same kn, and the baseline.",
    ),
]
