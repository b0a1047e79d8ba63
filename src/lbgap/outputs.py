"""Which tables and figures each paper produces, and the plan they are built from.

The plan lists every experiment of a paper with the run folders of its variants, or the reason
it does not run at this scale, so a table can show a row as "not run" instead of inventing it.
"""

from __future__ import annotations

from lbgap import matrix

# paper -> (tables, figures); names become reports/{tables,figures}/<paper>_<name>.<ext>
PRODUCTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "keskar2017": (("table2",), ("training_curves",)),
}


def files(config: dict, paper: str) -> list[str]:
    tables, figures = PRODUCTS.get(paper, ((), ()))
    out = [f"reports/tables/{paper}_{t}.{ext}" for t in tables for ext in ("csv", "md")]
    out += [f"reports/figures/{paper}_{f}.{ext}" for f in figures for ext in ("png", "pdf")]
    return out


def plan(config: dict, paper: str, specs: dict) -> dict:
    """Experiments in config order with their variants' run folders (or why they are skipped)."""
    skipped = matrix.skipped(config, paper)
    experiments = {}
    for name, exp in config["papers"][paper]["experiments"].items():
        entry = {
            "label": exp.get("label", name),
            "network": exp["network"],
            "dataset": exp["dataset"],
            "note": exp.get("note", ""),
            "skip": skipped.get(name),
            "variants": {},
        }
        for variant in exp["variants"]:
            runs = [
                r for r in specs if (r.paper, r.experiment, r.variant) == (paper, name, variant)
            ]
            entry["variants"][variant] = {
                "dirs": [r.dir for r in runs],
                "batch_size": specs[runs[0]]["batch_size"] if runs else None,
            }
        experiments[name] = entry
    return {"paper": paper, "scale": config["scale"], "experiments": experiments}
