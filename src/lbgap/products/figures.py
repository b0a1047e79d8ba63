"""Figures, each saved as PNG and PDF, from finished runs listed in a paper's plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lbgap.config.datasets import DATASET_TITLES
from lbgap.io import atomic_write
from lbgap.products import results
from lbgap.products.papers import reference
from lbgap.words import plural

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class Pyplot:
    """matplotlib.pyplot with the Agg backend (files only), imported when a figure is drawn.

    Reading the Snakefile imports the papers' product registries, and so this module, at every
    Snakemake start (each job's too); pyplot would add about 0.4 s to each, for code that only
    the figure jobs run.
    """

    def __getattr__(self, name: str):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot

        return getattr(matplotlib.pyplot, name)


plt = Pyplot()


def _band(ax, frame, x: str, y: str, label: str, **style) -> str:
    """Mean over seeds as a line, +- one std as a band; returns the line's colour."""
    grouped = frame.groupby(x)[y]
    mean, std = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    (line,) = ax.plot(mean.index, mean.values, label=label, **style)
    ax.fill_between(mean.index, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    return line.get_color()


def paper_line(ax, value: float | None, label: str, color: str) -> None:
    """The paper's reported value as a dashed horizontal line, labelled with the number."""
    if value is not None:
        ax.axhline(value, color=color, ls="--", lw=1.2, label=f"{label}: {value:.2f}")


def ran_experiments(plan: dict) -> dict:
    """The plan's experiments that run at this scale: those a figure has lines for."""
    return {n: e for n, e in plan["experiments"].items() if not e["skip"]}


def panel_per_experiment(
    plan: dict,
    draw: Callable[[Axes, dict], None],
    panel: tuple[float, float],
    title: str,
    **axis: str,
) -> Figure:
    """One panel per experiment that ran, side by side, gridded for log scales: the layout of
    a figure that follows one quantity of every variant over training.

    `draw(ax, exp)` draws an experiment's lines; `panel` is one panel's (width, height) in
    inches; `axis` sets each panel's scales and axis labels, and its title is the experiment's.
    """
    ran = ran_experiments(plan)
    width, height = panel
    fig, axes = plt.subplots(1, max(len(ran), 1), figsize=(width * max(len(ran), 1), height))
    axes = np.atleast_1d(axes)
    for ax, exp in zip(axes, ran.values(), strict=False):
        draw(ax, exp)
        ax.set(**axis, title=exp["label"])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return finish(fig, axes[0], ran, title)


def _on_other_data(exp: dict) -> str:
    """ " (on MNIST)" where the run's dataset is not the one the paper's number is on."""
    ours, theirs = exp.get("dataset"), exp.get("paper_dataset")
    return f" (on {DATASET_TITLES[theirs]})" if ours and theirs and ours != theirs else ""


def training_curves(plan: dict, reference_table: str | None = None) -> Figure:
    """Per experiment: train loss and test accuracy against epochs, one line per variant.

    With `reference_table`, the paper's final test accuracy of each variant (that table's
    `test_<variant>` column in reference.yaml) is drawn as a dashed line.
    """
    ran = ran_experiments(plan)
    fig, axes = plt.subplots(len(ran) or 1, 2, figsize=(10, 3.4 * max(len(ran), 1)), squeeze=False)
    for (name, exp), (ax_loss, ax_acc) in zip(ran.items(), axes, strict=False):
        for variant, info in exp["variants"].items():
            frame = results.metrics(info["dirs"])
            seeds = plural(frame["seed"].nunique(), "seed")
            label = f"{variant} (batch {info['batch_size']}, {seeds})"
            _band(ax_loss, frame, "epoch", "train_loss", label)
            color = _band(ax_acc, frame, "epoch", "test_acc", label)
            if reference_table:
                value, _ = reference(plan["paper"], reference_table, name, f"test_{variant}")
                paper_line(ax_acc, value, f"{variant}, paper's final{_on_other_data(exp)}", color)
        ax_loss.set(
            yscale="log",
            xlabel="epoch",
            ylabel="training loss (cross-entropy)",
            title=f"{exp['label']}: training loss",
        )
        ax_acc.set(
            xlabel="epoch", ylabel="test accuracy (%)", title=f"{exp['label']}: test accuracy"
        )
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return finish(
        fig, axes[0, 0], ran, f"{plan['paper']}, scale={plan['scale']}: mean ± std over seeds"
    )


def finish(fig: Figure, first_ax, ran: dict, title: str) -> Figure:
    """The common end of a figure: say so when nothing ran, title it, lay it out."""
    if not ran:
        first_ax.text(0.5, 0.5, "no experiment runs at this scale", ha="center")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save(fig: Figure, png: str, pdf: str) -> None:
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    atomic_write(pdf, lambda tmp: fig.savefig(tmp, format="pdf"))
    plt.close(fig)
