"""One run's resolved spec, typed: what a training job computes, as its spec.json holds it.

The matrix builds it (`lbgap.config.matrix.spec`), the Snakefile writes it into the run's folder
(`to_json`), and training, the analyses and the tables read it back (`read`, `from_dict`) and
use its attributes. Its defaults live in the config schema, which the matrix applies: a spec
file lacking a key the matrix always writes was written by another version of the pipeline, and
reading it fails with one line that says how to rewrite it. Keys the matrix writes only when
they are set (patience, a warm start, ImageNet's decoding) are optional here and left out of the
file when unset, so that a spec, and so its run, stays as it was without them.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbgap.config.schedules import Schedule

REWRITE = "rerun snakemake to rewrite the run's spec"


class SpecError(ValueError):
    """A spec that cannot be read: one line naming the key and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """Everything a training job needs, with no reference back to the config file."""

    paper: str
    experiment: str
    variant: str
    seed: int
    scale: str
    network: str
    dataset: str
    data: str  # the prepared data file
    n_train: int | None  # training samples of an epoch; None: all prepared ones
    width: float
    image_size: int | None
    batch_size: int  # the initial global batch, also schedule["batch_size"] (checked equal)
    ghost_batch: int | None
    optimizer: dict[str, Any]  # as given in the config (see `optimizer_settings`)
    schedule: dict[str, Any]  # Schedule's fields (see `lr_schedule`)
    augment: bool
    grad_clip: float | None
    grad_clip_epochs: int | None
    zero_init_residual: bool
    micro_batch: int | None
    regime_adaptation: bool
    momentum_correction: bool
    noise_every: int
    save_epochs: list[int]
    device: str
    amp: str
    channels_last: bool | str
    compile: bool | str
    deterministic: bool
    bn_eval: str
    eval_chunk: int
    # Only when set, and then written; unset ones are left out of the file.
    patience: int | None = None
    init_checkpoint: str | None = None
    warm_start: dict[str, Any] | None = None  # {"run": source run folder, "epoch": k}
    decode: str | None = None  # ImageNet's JPEG decoding when not auto
    loader_workers: int | None = None  # ImageNet's loader processes (tests); None: automatic

    # ------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "the spec") -> RunSpec:
        """The spec of a mapping as a spec file holds it; `source` names it in errors."""
        if not isinstance(data, Mapping):
            raise SpecError(f"{source} is not a JSON object: {REWRITE}")
        names = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - names):
            raise SpecError(f"{source} has the unknown key {unknown[0]!r}: {REWRITE}")
        for key in REQUIRED:
            if key not in data:
                raise SpecError(f"{source} lacks {key!r}: {REWRITE}")
        for key in ("optimizer", "schedule"):
            if not isinstance(data[key], Mapping):
                raise SpecError(f"{source}: {key} is not a JSON object: {REWRITE}")
        optimizer_keys = set(_optimizer_schema()["properties"])
        if unknown := sorted(set(data["optimizer"]) - optimizer_keys):
            raise SpecError(f"{source} has the unknown key 'optimizer.{unknown[0]}': {REWRITE}")
        if data["schedule"].get("batch_size") != data["batch_size"]:
            raise SpecError(
                f"{source}: batch_size {data['batch_size']} differs from schedule.batch_size "
                f"{data['schedule'].get('batch_size')}: {REWRITE}"
            )
        return cls(**copy.deepcopy(dict(data)))

    @classmethod
    def of(cls, spec: RunSpec | Mapping[str, Any]) -> RunSpec:
        """A RunSpec, or the mapping a spec file holds made one (the Python entry points')."""
        return spec if isinstance(spec, RunSpec) else cls.from_dict(spec)

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any], path: str | Path) -> RunSpec:
        """The spec a run's summary.json (at `path`) records: what the run was trained with."""
        if "spec" not in summary:
            raise SpecError(f"{path} lacks 'spec': delete it and rerun snakemake to train the run")
        return cls.from_dict(summary["spec"], f"the spec in {path}")

    @classmethod
    def read(cls, path: str | Path) -> RunSpec:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SpecError(f"cannot read the run spec {path}: {err}; {REWRITE}") from None
        return cls.from_dict(data, str(path))

    # ------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """The keys a spec file holds: every required one, the optional ones only when set."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in REQUIRED or value is not None:
                out[f.name] = copy.deepcopy(value)
        return out

    def to_json(self) -> str:
        """The spec file's text (keys sorted: a file changes only when its content does)."""
        return json.dumps(self.to_dict(), sort_keys=True) + "\n"

    # ------------------------------------------------------------ derived
    def lr_schedule(self) -> Schedule:
        """The run's LR and batch schedule."""
        return Schedule.from_config(self.schedule)

    def optimizer_settings(self) -> dict[str, Any]:
        """The optimizer's keys with the schema's defaults for those the config left out."""
        props = _optimizer_schema()["properties"]
        defaults = {k: p["default"] for k, p in props.items() if "default" in p}
        return {**defaults, **self.optimizer}


REQUIRED = tuple(f.name for f in dataclasses.fields(RunSpec) if f.default is dataclasses.MISSING)


@functools.cache
def _optimizer_schema() -> dict:
    """The schema's optimizer settings: its keys and their defaults (read once)."""
    from lbgap.config.matrix import load_schema  # the matrix builds RunSpecs: import it late

    return load_schema()["$defs"]["settings"]["properties"]["optimizer"]
