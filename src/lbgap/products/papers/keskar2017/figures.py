"""Keskar et al. 2017 figures: parametric plots, phi vs batch size, warm starts, phi in training.

Every figure is built at every scale: a network or experiment that does not run at the chosen
scale gets a panel that says why, so the set of files never depends on the scale.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lbgap.config import layout
from lbgap.products.figures import plt
from lbgap.products.papers import reference
from lbgap.products.papers.keskar2017 import data as kd
from lbgap.words import plural

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LOSS, ACC = "tab:blue", "tab:red"
REGIME_COLORS = {"SB": "tab:blue", "LB": "tab:red"}
PAPER_STYLE = {"marker": "D", "mfc": "none", "ms": 8, "mew": 1.5, "ls": "none"}


def not_run(ax, title: str, reason: str) -> None:
    """A panel that says why it is empty."""
    ax.set_axis_off()
    ax.text(
        0.5,
        0.5,
        f"{title}\nnot run at this scale: {reason}",
        ha="center",
        va="center",
        fontsize=10,
        wrap=True,
        transform=ax.transAxes,
    )


def split_ran(pairs: dict, plan: dict) -> tuple[dict, dict]:
    """(what runs, {name: why not}) of experiments keyed by their table experiment's name."""
    ran, skipped = {}, {}
    for base, exp in pairs.items():
        reason = kd.skip_note(exp) or kd.skip_note(plan["experiments"][base])
        if reason:
            skipped[base] = reason
        else:
            ran[base] = exp
    return ran, skipped


def not_run_note(fig, skipped: dict[str, str]) -> None:
    """One line under the figure naming what did not run, grouped by reason."""
    if not skipped:
        return
    groups: dict[str, list[str]] = {}
    for name, reason in skipped.items():
        groups.setdefault(reason, []).append(name)
    text = "Not run at this scale: " + "; ".join(
        f"{', '.join(names)} ({reason})" for reason, names in groups.items()
    )
    fig.text(0.01, 0.005, textwrap.fill(text, 160), fontsize=7, va="bottom", color="dimgray")


def _mean_std(frame: pd.DataFrame, x: str, y: str) -> tuple[pd.Series, pd.Series]:
    grouped = frame.dropna(subset=[y]).groupby(x)[y]
    return grouped.mean(), grouped.std(ddof=1).fillna(0.0)


def _line(ax, frame: pd.DataFrame, x: str, y: str, color: str, label: str, **style) -> None:
    """Mean over seeds as a line with a ± std band, each seed as a faint dot."""
    mean, std = _mean_std(frame, x, y)
    if mean.empty:
        return
    ax.plot(mean.index, mean.values, color=color, label=label, **style)
    ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    ax.plot(frame[x], frame[y], ".", color=color, alpha=0.35, ms=5)


def _eps_label(plan: dict) -> tuple[float, str]:
    eps = kd.settings(plan)["sharpness"]["figure_eps"]
    return eps, layout.eps_label(eps)


def _legend(*axes, **kwargs) -> None:
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        axes[0].legend(handles, labels, **kwargs)


# ---------------------------------------------------------------- parametric plots (Figure 3)
def parametric(plan: dict, network: str) -> Figure:
    """Loss (left axis) and accuracy (right) along (1 - α) x_SB + α x_LB, α in [-1, 2]."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    exp = plan["experiments"].get(network)
    if exp is None:
        not_run(ax, network, "not in the configuration")
        return fig
    reason = kd.skip_note(exp) or (None if kd.pairing_seeds(plan, exp) else "no SB/LB pair")
    if reason:
        not_run(ax, exp["label"], reason)
        return fig
    frame = kd.parametric_frame(plan, network)
    acc_ax = ax.twinx()
    for split, style in (("train", "-"), ("test", "--")):
        _line(ax, frame, "alpha", f"{split}_loss", LOSS, f"{split} loss", ls=style)
        _line(acc_ax, frame, "alpha", f"{split}_acc", ACC, f"{split} accuracy", ls=style)
    for alpha, regime in ((0.0, "SB"), (1.0, "LB")):
        batch = exp["variants"][regime]["batch_size"]
        ax.axvline(alpha, color="grey", lw=0.8, ls=":")
        ax.text(alpha, 1.01, f"{regime}\n(batch {batch})", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=8)  # fmt: skip
        for split, marker in (("train", "o"), ("test", "s")):
            value, _ = reference(kd.PAPER, "table2", network, f"{split}_{regime}")
            if value is not None:
                label = f"paper's {split} accuracy (Table 2)" if regime == "SB" else None
                acc_ax.plot(alpha, value, **{**PAPER_STYLE, "marker": marker}, color=ACC,
                            label=label)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("α  (weights (1 − α)·x_SB + α·x_LB)")
    ax.set_ylabel("cross-entropy loss (log scale)", color=LOSS)
    acc_ax.set_ylabel("accuracy (%)", color=ACC)
    acc_ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    _legend(ax, acc_ax, fontsize=7, loc="center left", framealpha=0.9)
    pairs = frame["seed"].nunique()
    mode = frame["bn_stats"].iloc[0]
    ax.set_title(
        f"{exp['label']}: SB → LB, scale={plan['scale']}, {pairs} seed pairing(s)\n"
        f"batch-norm statistics: {mode} at each α",
        fontsize=9,
        pad=24,
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- batch-size sweep (Figure 4)
def _paper_points(ax, acc_ax, base: str, dataset: str, label: str) -> None:
    """The paper's SB and LB (Tables 2 and 3) at the paper's own batch sizes."""
    batches = {"SB": kd.PAPER_SB}
    if dataset in kd.PAPER_TRAIN_SIZE:
        batches["LB"] = kd.PAPER_TRAIN_SIZE[dataset] // 10
    for i, (regime, batch) in enumerate(batches.items()):
        acc, _ = reference(kd.PAPER, "table2", base, f"test_{regime}")
        phi, _ = reference(kd.PAPER, "table3", base, f"{label}_{regime}")
        if acc is not None:
            name = "paper's test accuracy (Table 2)" if i == 0 else None
            acc_ax.plot(batch, acc, **PAPER_STYLE, color=LOSS, label=name)
        if phi is not None:
            ax.plot(
                batch,
                phi,
                **PAPER_STYLE,
                color=ACC,
                label="paper's φ (Table 3)" if i == 0 else None,
            )


def sharpness_vs_batch(plan: dict) -> Figure:
    """Test accuracy and phi (full space) of the final weights against the batch size."""
    sweeps, skipped = split_ran(kd.with_suffix(plan, kd.SWEEP), plan)
    cols = max(len(sweeps), 1)
    fig, axes = plt.subplots(1, cols, figsize=(7.5 * cols, 5.2), squeeze=False)
    eps, label = _eps_label(plan)
    for ax, (base, sweep) in zip(axes[0], sweeps.items(), strict=False):
        main = plan["experiments"][base]
        dirs = [d for v in sweep["variants"].values() for d in v["dirs"]]
        dirs += [d for r in kd.REGIMES for d in kd.dirs_of(main, r)]
        pts = kd.points(plan, dirs)
        acc_ax = ax.twinx()
        _line(acc_ax, pts, "batch", "test_acc", LOSS, "test accuracy (ours)", marker="o")
        _line(ax, pts, "batch", "phi", ACC, f"φ, ε={label} (ours)", marker="s")
        _paper_points(ax, acc_ax, base, main["dataset"], label)
        for regime in kd.REGIMES:
            batch = main["variants"][regime]["batch_size"]
            ax.axvline(batch, color="grey", lw=0.8, ls=":")
            ax.text(batch, 1.01, regime, transform=ax.get_xaxis_transform(), ha="center",
                    fontsize=8)  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (samples, log scale)")
        ax.set_ylabel(f"sharpness φ, ε={label}, full space (log scale)", color=ACC)
        acc_ax.set_ylabel("test accuracy (%)", color=LOSS)
        seeds = pts.groupby("batch")["seed"].nunique()
        few, most = int(seeds.min()), int(seeds.max())
        per_batch = plural(most, "seed") if few == most else f"{few}-{most} seeds"
        ax.set_title(
            f"{sweep['label']}\nscale={plan['scale']}, n={pts['n_train'].iloc[0]:,} training "
            f"samples, {per_batch} per batch",
            fontsize=9,
            pad=16,
        )
        ax.grid(alpha=0.3)
        _legend(ax, acc_ax, fontsize=7, loc="best", framealpha=0.9)
    if not sweeps:
        not_run(axes[0, 0], "batch-size sweep", "; ".join(skipped.values()) or "none configured")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    not_run_note(fig, skipped)
    return fig


# ---------------------------------------------------------------- warm starts
def warmstart(plan: dict) -> Figure:
    """Warm-started LB after k SB epochs: test accuracy (top) and phi (bottom) against k."""
    warms, skipped = split_ran(kd.with_suffix(plan, kd.WARM), plan)
    cols = max(len(warms), 1)
    fig, axes = plt.subplots(2, cols, figsize=(6.4 * cols, 7.6), squeeze=False, sharex="col")
    eps, label = _eps_label(plan)
    for (ax_acc, ax_phi), (base, warm) in zip(axes.T, warms.items(), strict=False):
        main = plan["experiments"][base]
        dirs = [d for v in warm["variants"].values() for d in v["dirs"]]
        seeds = sorted({kd.seed_of(d) for d in dirs})
        pts = kd.points(plan, dirs + kd.with_seeds(kd.dirs_of(main, "LB"), seeds))
        sb_dirs = kd.with_seeds(kd.dirs_of(main, "SB"), seeds)
        sb = pd.DataFrame(
            [{"k": k, "test_acc": v} for k in sorted(pts["k"].unique()) if k > 0
             for v in kd.metric_at(sb_dirs, int(k))]
        )  # fmt: skip
        sb_final = kd.points(plan, sb_dirs)
        _line(ax_acc, pts, "k", "test_acc", ACC, "LB after k SB epochs (final)", marker="o")
        if not sb.empty:
            _line(ax_acc, sb, "k", "test_acc", LOSS, "SB after k epochs", marker="s", ls="--")
        ax_acc.axhline(sb_final["test_acc"].mean(), color=LOSS, ls=":",
                       label=f"SB final ({main['variants']['SB']['batch_size']})")  # fmt: skip
        _line(ax_phi, pts, "k", "phi", ACC, f"LB after k SB epochs, φ ε={label}", marker="o")
        ax_phi.axhline(sb_final["phi"].mean(), color=LOSS, ls=":", label="SB final φ")
        ax_phi.set_yscale("log")
        ax_acc.set_ylabel("test accuracy (%)")
        ax_phi.set_ylabel(f"sharpness φ, ε={label}, full space (log scale)")
        ax_phi.set_xlabel("k: SB epochs before switching to LB (0: plain LB)")
        lb_batch = main["variants"]["LB"]["batch_size"]
        ax_acc.set_title(
            f"{warm['label']}\nscale={plan['scale']}, LB batch {lb_batch}, seeds {seeds}",
            fontsize=9,
        )
        for ax in (ax_acc, ax_phi):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, framealpha=0.9)
    if not warms:
        not_run(axes[0, 0], "warm starts", "; ".join(skipped.values()) or "none configured")
        axes[1, 0].set_axis_off()
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    not_run_note(fig, skipped)
    return fig


# ---------------------------------------------------------------- phi along training
def sharpness_during_training(plan: dict) -> Figure:
    """phi at the saved epochs of SB and LB: against the epoch and against the training loss."""
    eps, label = _eps_label(plan)
    ran, skipped = {}, {}
    for name, exp in kd.table_experiments(plan).items():
        reason = kd.skip_note(exp)
        if reason or not kd.training_sharpness_dirs(plan, exp):
            skipped[name] = reason or "no seed selected"
        else:
            ran[name] = exp
    fig, axes = plt.subplots(max(len(ran), 1), 2, figsize=(11, 4.4 * max(len(ran), 1)),
                             squeeze=False)  # fmt: skip
    for (name, exp), (ax_e, ax_l) in zip(ran.items(), axes, strict=False):
        frame = kd.training_sharpness_frame(plan, exp)
        frame = frame[np.isclose(frame["eps"], eps)]
        for (regime, seed), run in frame.groupby(["regime", "seed"]):
            run = run.sort_values("epoch")
            color = REGIME_COLORS[regime]
            text = f"{regime} (batch {exp['variants'][regime]['batch_size']}), seed {seed}"
            ax_e.plot(run["epoch"], run["phi"], "o-", color=color, label=text, alpha=0.85)
            ax_l.plot(run["f_x"], run["phi"], "o-", color=color, label=text, alpha=0.85)
            for _, point in run.iloc[[0, -1]].iterrows():
                ax_l.annotate(f"ep {int(point['epoch'])}", (point["f_x"], point["phi"]),
                              fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
        for regime in kd.REGIMES:
            value, _ = reference(kd.PAPER, "table3", name, f"{label}_{regime}")
            if value is not None:
                for ax in (ax_e, ax_l):
                    ax.axhline(value, color=REGIME_COLORS[regime], ls="--", lw=1,
                               label=f"paper's final {regime} φ (Table 3): {value:g}")  # fmt: skip
        ax_e.set(yscale="log", xlabel="epoch", ylabel=f"sharpness φ, ε={label} (log scale)")
        ax_e.set_title(f"{exp['label']}: φ at saved epochs, scale={plan['scale']}", fontsize=9)
        ax_l.set(
            xscale="log",
            xlabel="training loss f(x) (log scale, reversed: training runs left to right)",
            yscale="log",
            ylabel=f"sharpness φ, ε={label} (log scale)",
        )
        ax_l.invert_xaxis()
        ax_l.set_title(f"{exp['label']}: φ against the training loss", fontsize=9)
        for ax in (ax_e, ax_l):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, framealpha=0.9)
    if not ran:
        not_run(axes[0, 0], "phi along training", "see below")
        axes[0, 1].set_axis_off()
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    not_run_note(fig, skipped)
    return fig


# ---------------------------------------------------------------- convergence of the maximization
def sharpness_convergence(plan: dict) -> Figure:
    """phi after each L-BFGS-B iteration of Tables 3 and 4's measurements: was the maximum
    approached at the paper's iteration count, and do random starts find more?"""
    cfg = kd.settings(plan)["sharpness"]
    panels = [(s, e) for s in ("full", layout.space_name(cfg["subspace_dim"])) for e in cfg["eps"]]
    ran, skipped = {}, {}
    for name, exp in kd.table_experiments(plan).items():
        frame = pd.DataFrame() if kd.skip_note(exp) else kd.convergence_frame(plan, exp)
        if frame.empty:
            skipped[name] = kd.skip_note(exp) or "no phi"
        else:
            ran[name] = (exp, frame)
    rows = max(len(ran), 1)
    fig, axes = plt.subplots(rows, len(panels), figsize=(4.2 * len(panels), 3.8 * rows),
                             squeeze=False)  # fmt: skip
    for (exp, frame), row in zip(ran.values(), axes, strict=False):
        for ax, (space, eps) in zip(row, panels, strict=True):
            part = frame[(frame["space"] == space) & np.isclose(frame["eps"], eps)]
            for (regime, seed, start), run in part.groupby(["regime", "seed", "start"]):
                run = run[run["phi"] > 0].sort_values("iteration")
                label = f"{regime} seed {seed}" if start == 0 else None
                style = {"ls": "-", "marker": "."} if start == 0 else {"ls": ":", "alpha": 0.7}
                ax.plot(run["iteration"], run["phi"], color=REGIME_COLORS[regime], label=label,
                        **style)  # fmt: skip
            ax.axvline(cfg["max_iter"], color="grey", lw=0.8, ls="--",
                       label=f"paper's {cfg['max_iter']} iterations")  # fmt: skip
            where = "full space" if space == "full" else f"random subspace p={cfg['subspace_dim']}"
            ax.set(yscale="log", xlabel="L-BFGS-B iteration", title=f"{exp['label']}, {where}, "
                   f"ε={layout.eps_label(eps)}")  # fmt: skip
            ax.title.set_fontsize(9)
            ax.set_ylabel("largest φ so far (log scale)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, framealpha=0.9)
    if not ran:
        not_run(axes[0, 0], "sharpness convergence", "see below")
        for ax in axes[0, 1:]:
            ax.set_axis_off()
    fig.suptitle(
        f"scale={plan['scale']}: solid, from y = 0 (the paper's run, continued); dotted, random "
        "starts in the box",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    not_run_note(fig, skipped)
    return fig
