"""Load a finished run's checkpoint back into a model, for the analyses of its minimum."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.data.prepare import dataset_info
from lbgap.io import load_torch
from lbgap.training.models import build_model


def load_run(
    run_dir: str | Path, device: torch.device | str = "cpu", checkpoint: str = layout.CHECKPOINT
) -> tuple[nn.Module, RunSpec]:
    """The trained model in evaluation mode and the spec it was trained with.

    `checkpoint` names another weights file of the run, e.g. checkpoint_epoch5.pt (save_epochs).
    """
    fix = f"delete {layout.summary(run_dir)} and rerun: Snakemake trains the run again"
    path = Path(run_dir) / checkpoint
    blob = load_torch(path, fix, map_location=device, weights_only=True)
    spec = RunSpec.from_dict(blob["spec"], f"the spec in {path}")
    model = build_model(
        spec.network, dataset_info(spec.dataset).classes, spec.width, spec.ghost_batch
    )
    model.load_state_dict(blob["model"])
    return model.to(device).eval(), spec
