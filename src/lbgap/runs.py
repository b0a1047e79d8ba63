"""Load a finished run's checkpoint back into a model, for the analyses of its minimum."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from lbgap.data import dataset_info
from lbgap.io import load_torch
from lbgap.models import build_model


def load_run(
    run_dir: str | Path, device: torch.device | str = "cpu", checkpoint: str = "checkpoint.pt"
) -> tuple[nn.Module, dict]:
    """The trained model in evaluation mode and the spec it was trained with.

    `checkpoint` names another weights file of the run, e.g. checkpoint_epoch5.pt (save_epochs).
    """
    fix = f"delete {run_dir}/summary.json and rerun: Snakemake trains the run again"
    path = Path(run_dir) / checkpoint
    blob = load_torch(path, fix, map_location=device, weights_only=True)
    spec = blob["spec"]
    model = build_model(
        spec["network"],
        dataset_info(spec["dataset"]).classes,
        spec.get("width", 1.0),
        spec.get("ghost_batch"),
    )
    model.load_state_dict(blob["model"])
    return model.to(device).eval(), spec


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def analysis_parser(description: str) -> argparse.ArgumentParser:
    """The options every analysis of one run's minimum takes on the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="prepared data set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--device", type=torch.device, default=None)
    parser.add_argument("--out", type=Path, required=True)
    return parser


def load_for_analysis(args: argparse.Namespace) -> tuple[nn.Module, dict, torch.device]:
    """The run's model (evaluation mode) and its training data, on the chosen device."""
    from lbgap.data import load_prepared

    device = args.device or default_device()
    model, _spec = load_run(args.run_dir, device)
    return model, load_prepared(args.data, device), device


def write_analysis(args: argparse.Namespace, device: torch.device, result: dict) -> None:
    """The result JSON, with where it came from."""
    from lbgap.io import write_json

    result.update(run_dir=str(args.run_dir), data=str(args.data), device=str(device))
    write_json(args.out, result)
