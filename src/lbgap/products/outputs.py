"""Which files each paper produces, and the plan they are built from.

The plan lists every experiment of a paper with the run folders of its variants, or the reason
it does not run at this scale, so a table can show a row as "not run" instead of inventing it.
"""

from __future__ import annotations

from lbgap.config import matrix
from lbgap.config.datasets import DATASET_TITLES
from lbgap.io import read_json
from lbgap.products import papers


def files(paper: str) -> list[str]:
    return [f for p in papers.products(paper) for f in p.files(paper)]


def read_plans(paths: list[str]) -> dict:
    """paper -> plan from the plan files the workflow writes (results/<paper>/plan.json)."""
    plans = [read_json(path) for path in paths]
    return {plan["paper"]: plan for plan in plans}


def inputs(plan: dict, name: str) -> list[str]:
    return papers.product(plan["paper"], name).inputs(plan)


def _note(config: dict, exp: dict) -> str:
    """The experiment's note, and why it ran on another dataset than its own, if it did."""
    parts = (exp.get("note", "").strip(), matrix.dataset_note(config, exp))
    return " ".join(part for part in parts if part)


def plan(config: dict, paper: str, specs: dict) -> dict:
    """Experiments in config order with their variants' run folders (or why they are skipped)."""
    skipped = matrix.skipped(config, paper)
    experiments = {}
    for name, exp in config["papers"][paper]["experiments"].items():
        dataset = matrix.experiment_dataset(config, exp)
        entry = {
            "label": exp.get("label", name).replace("{dataset}", DATASET_TITLES[dataset]),
            "network": exp["network"],
            "dataset": dataset,
            "paper_dataset": matrix.paper_dataset(config, exp),
            "note": _note(config, exp),
            "skip": skipped.get(name),
            "variants": {},
        }
        for variant in exp["variants"]:
            runs = [
                r for r in specs if (r.paper, r.experiment, r.variant) == (paper, name, variant)
            ]
            entry["variants"][variant] = {
                "dirs": [r.dir for r in runs],
                "batch_size": specs[runs[0]].batch_size if runs else None,
            }
            if not runs and not entry["skip"]:
                reason = matrix.variant_skip_reason(config, paper, name, variant)
                entry["variants"][variant]["skip"] = reason
        experiments[name] = entry
    out = {
        "paper": paper,
        "scale": config["scale"],
        "standins": matrix.scale_cfg(config)["standins"],
        "experiments": experiments,
    }
    if "analysis" in config["papers"][paper]:
        out["analysis"] = matrix.analysis(config, paper)
    return out
