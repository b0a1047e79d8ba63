"""Tables: our numbers beside the papers', as CSV (numbers) and Markdown (for reading)."""

from __future__ import annotations

import pandas as pd

from lbgap.io import write_text

STANDIN_NOTE = (
    "**Rehearsal on stand-in data** (lbgap.data.standins): these numbers check that every code "
    "path runs; they test neither the papers nor this pipeline's results."
)


def data_note(plan: dict) -> str:
    """A line above every table built on stand-ins, so that it is never read as a result."""
    return STANDIN_NOTE + "\n\n" if plan.get("standins") else ""


def format_paper(mean: float | None, std: float | None, digits: int = 2) -> str:
    """A paper's number as printed; '-' where the paper gives none."""
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def render_markdown(view: pd.DataFrame, title: str, plan: dict) -> str:
    header = (
        f"# {title}\n\n{data_note(plan)}Scale: `{plan['scale']}`. Mean ± std over seeds. Columns "
        "marked (paper) quote the paper; columns marked (ours) are computed by this pipeline.\n\n"
    )
    notes = "".join(f"\n- {n}" for n in view.attrs.get("notes", []))
    # disable_numparse: print cells as formatted ("97.60"), not re-parsed as numbers ("97.6").
    body = view.to_markdown(index=False, disable_numparse=True)
    return header + body + "\n" + (f"\nNotes:\n{notes}\n" if notes else "")


def write_table(
    data: pd.DataFrame, view: pd.DataFrame, title: str, plan: dict, csv: str, md: str
) -> None:
    write_text(csv, data.to_csv(index=False))
    write_text(md, render_markdown(view, title, plan))
