"""The experiment matrix: validate the config and expand it into runs, each a resolved spec.

Snakemake's rules call these functions to know which runs exist and what each one trains; the
training job receives the resolved spec as JSON, so a changed setting reruns exactly the runs
it touches.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lbgap.config import layout
from lbgap.config.datasets import DATASET_TITLES, FOLDERS, dataset_info, present
from lbgap.config.networks import NO_BATCH_NORM
from lbgap.config.resources import allocation
from lbgap.config.run_spec import RunSpec
from lbgap.config.schedules import Schedule, adapt_regime
from lbgap.io import read_yaml
from lbgap.words import plural

SCALES = ("quick", "small", "paper", "rehearsal")
SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
SCHEDULE_KEYS = (
    "lr_scaling",
    "warmup",
    "warmup_epochs",
    "decay_epochs",
    "decay_factor",
    "batch_growth",
    "max_batch",
)


class ConfigError(ValueError):
    """A config problem, always one line that names the key and what to do."""


@dataclass(frozen=True)
class Run:
    paper: str
    experiment: str
    variant: str
    seed: int

    @property
    def dir(self) -> str:
        return layout.run_dir(self.paper, self.experiment, self.variant, self.seed)


# ---------------------------------------------------------------- validation
def yaml_syntax_error(path: str | Path) -> str | None:
    """A YAML syntax error of a config file as one line `file:line:column: what`, or None.

    Snakemake's own message for a config file it cannot parse names neither the file nor the
    place; this is checked before Snakemake reads the workflow's config.yaml. Only the syntax
    is read (no values are built), so a file Snakemake accepts is never refused here.
    """
    try:
        yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{Path(path).resolve()}:{mark.line + 1}:{mark.column + 1}" if mark else path
        context = ""
        if err.context and err.context_mark and err.context_mark is not mark:
            context = f" ({err.context} started at line {err.context_mark.line + 1})"
        elif err.context:
            context = f" ({err.context})"
        return f"{where}: YAML syntax error: {err.problem or err.context}{context}"
    except yaml.YAMLError as err:
        return f"{Path(path).resolve()}: YAML syntax error: {' '.join(str(err).split())}"
    return None


def load_schema(path: str | Path = SCHEMA) -> dict:
    return read_yaml(path)


@functools.cache
def _schema() -> dict:
    """The shipped schema, read once (for settings defaults during the expansion)."""
    return load_schema()


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


_KINDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "boolean": "true or false",
    "null": "null",
}
PER_SCALE = "one per scale as {quick: .., small: .., paper: ..}"
NAME_RULE = (
    "use only letters, digits and + . _ - and do not start with . or - "
    "(names become folders and command-line arguments)"
)


def _types(types: str | list[str]) -> str:
    """JSON schema types in words: "an integer or null"."""
    return " or ".join(_KINDS.get(t, t) for t in ([types] if isinstance(types, str) else types))


def _kind(schema: dict) -> str:
    """What a schema accepts, in words: "an integer", "a list", "one per scale as {..}"."""
    if schema.get("type") == "object" and set(schema.get("properties", {})) <= set(SCALES):
        return PER_SCALE
    return _types(schema.get("type", []))


def _fits_type(branch: list[jsonschema.ValidationError]) -> bool:
    """Whether a oneOf branch failed inside the value (not on the value's type itself)."""
    return not any(e.validator == "type" and not e.relative_path for e in branch)


def _explain(error: jsonschema.ValidationError) -> tuple[str, str]:
    """The key path and message a user can act on, for one schema error.

    A oneOf (an integer, or one per scale) reports "2.5 is not of type 'object'" by default,
    which names the wrong alternative: say instead which kinds of value it takes, or, where
    the value has the type of one alternative, what is wrong inside that one.
    """
    if error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [b for b in branches.values() if _fits_type(b)]
        if len(fitting) == 1:
            return _explain(max(fitting[0], key=lambda e: len(e.relative_path)))
        kinds = [_kind(s) for s in error.validator_value]
        plain = " or ".join(k for k in kinds if k and k != PER_SCALE)
        per_scale = f" (or {PER_SCALE})" if PER_SCALE in kinds and plain else ""
        if plain or per_scale:
            return _where(error), f"{error.instance!r} is not {plain or PER_SCALE}{per_scale}"
    if error.validator == "type":
        return _where(error), f"{error.instance!r} is not {_types(error.validator_value)}"
    if "propertyNames" in error.schema_path:
        return _where(error), f"name {error.instance!r} is not allowed; {NAME_RULE}"
    if error.validator == "contains" and "description" in error.schema:  # say what is missing
        return _where(error), f"{error.instance!r}: {error.schema['description']}"
    unknown = error.message.replace("Unevaluated properties are not allowed", "unknown key")
    return _where(error), unknown


def check(config: dict, schema: dict, origins: Origins | None = None) -> None:
    """Validate against the schema; raise ConfigError, one line naming the key to fix."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = list(validator.iter_errors(config))
    # An unknown key is also reported for every key of an object with any other error: prefer
    # the specific error, at the deepest place.
    specific = [e for e in errors if e.validator != "unevaluatedProperties"]
    error = jsonschema.exceptions.best_match(specific or errors)
    if specific:
        error = max(specific, key=lambda e: len(e.absolute_path))
        error = jsonschema.exceptions.best_match([error])
    if error is not None:
        where, message = _explain(error)
        where = _written_at(where, origins or {})
        raise ConfigError(
            f"config error at {where}: {message} (see workflow/schemas/config.schema.yaml)"
        )


def with_defaults(config: dict, schema: dict) -> dict:
    """Top-level and per-scale defaults from the schema (settings defaults apply per run)."""
    config = copy.deepcopy(config)
    for key, prop in schema["properties"].items():
        if "default" in prop:
            config.setdefault(key, prop["default"])
    for scale in config["scales"].values():
        for key, prop in schema["$defs"]["scale"]["properties"].items():
            if "default" in prop:
                scale.setdefault(key, prop["default"])
    return config


def booleans_from_command_line(config: dict, schema: dict) -> dict:
    """`--config download=true` arrives as the string "true": read it as the boolean it means."""
    words = {"true": True, "false": False}
    for key, prop in schema["properties"].items():
        value = config.get(key)
        allows_bool = prop.get("type") == "boolean" or True in prop.get("enum", [])
        if allows_bool and isinstance(value, str) and value.lower() in words:
            config[key] = words[value.lower()]
    return config


def prepare_config(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    schema = load_schema(schema_path)
    config = json.loads(json.dumps(config))  # YAML anchors share objects; make them separate
    config = booleans_from_command_line(config, schema)
    config, origins = with_bases(config)
    check(config, schema, origins)
    config = with_defaults(config, schema)
    check_scale_and_selection(config)
    return config


# Keys an experiment never takes from its base: what it is called and said to be.
OWN_KEYS = ("label", "note", "base")


Origins = dict[tuple[str, str, str], str]


def with_bases(config: dict) -> tuple[dict, Origins]:
    """Experiments with `base: X` take X's settings (X resolved first), their own keys winning.

    Resolved after every config file and --config value was merged, so a derived experiment
    (F1_batch_sweep, F1_warmstart) follows its base when an overlay changes the base's dataset
    or network, which a YAML anchor, copied when the file is read, would not. Also returns
    where each inherited key was written, (paper, experiment, key) -> experiment, so that a
    config error names the key the user wrote.
    """
    origins: Origins = {}
    for paper, pcfg in config.get("papers", {}).items():
        experiments, done = pcfg.get("experiments", {}), {}
        for name in experiments:
            experiments[name] = _with_base(paper, experiments, name, (name,), done, origins)
    return config, origins


def _with_base(
    paper: str, experiments: dict, name: str, chain: tuple[str, ...], done: dict, origins: Origins
) -> dict:
    """One experiment with its base's keys (resolved first), remembering where each came from."""
    if name in done:
        return done[name]
    exp = experiments[name]
    base = exp.get("base") if isinstance(exp, dict) else None
    if base is not None:
        where = f"papers.{paper}.experiments.{name}.base"
        if base not in experiments:
            names = ", ".join(experiments)
            raise ConfigError(f"config error at {where}: no experiment {base!r} (have {names})")
        if base in chain:
            raise ConfigError(
                f"config error at {where}: bases form a cycle ({' -> '.join((*chain, base))})"
            )
        resolved = _with_base(paper, experiments, base, (*chain, base), done, origins)
        inherited = {k: v for k, v in resolved.items() if k not in OWN_KEYS}
        for key in set(inherited) - set(exp):
            origins[paper, name, key] = origins.get((paper, base, key), base)
        exp = {**inherited, **exp}
    done[name] = exp
    return exp


def _written_at(where: str, origins: Origins) -> str:
    """The key path as the user wrote it: an inherited key is named in its base experiment."""
    parts = where.split(".")
    if len(parts) >= 5 and parts[0] == "papers" and parts[2] == "experiments":
        parts[3] = origins.get((parts[1], parts[3], parts[4]), parts[3])
    return ".".join(parts)


def check_scale_and_selection(config: dict) -> None:
    """The scale must be one of scales:, and `only` must select something that exists."""
    if config["scale"] not in config["scales"]:
        names = ", ".join(config["scales"])
        raise ConfigError(
            f"config error at scale: no scale {config['scale']!r}; choose one of {names} "
            "or add it under scales:"
        )
    for entry in selection(config):
        paper, experiment, variant = (entry.split("/") + [None, None])[:3]
        known = config["papers"]
        exps = known.get(paper, {}).get("experiments", {})
        if (
            paper not in known
            or (experiment and experiment not in exps)
            or (variant and variant not in exps[experiment]["variants"])
        ):
            raise ConfigError(
                f"config error at only: {entry!r} names no paper/experiment/variant of the "
                f"config; write paper[/experiment[/variant]], e.g. keskar2017/F1/SB"
            )


def selection(config: dict) -> list[str]:
    """The `only` entries (paper, paper/experiment or paper/experiment/variant), [] for all."""
    only = config.get("only")
    if only is None:
        return []
    return [only] if isinstance(only, str) else list(only)


def selected(config: dict, paper: str, experiment: str, variant: str) -> bool:
    """Whether `only` (if given) includes this variant of this experiment."""
    names = selection(config)
    path = (paper, experiment, variant)
    return not names or any(tuple(n.split("/")) == path[: len(n.split("/"))] for n in names)


# ---------------------------------------------------------------- expansion
def _experiments(config: dict):
    for paper, pcfg in config["papers"].items():
        for name, exp in pcfg["experiments"].items():
            yield paper, name, exp


def scale_cfg(config: dict) -> dict:
    return config["scales"][config["scale"]]


def matrix_scales(config: dict) -> list[str]:
    """The scales whose experiments, variants and per-scale values this scale runs, in order.

    A scale is its own by default; the rehearsal names `[paper, small]`, so it runs every
    experiment of the paper's matrix and of small's, with their settings (paper's first) and its
    own sizes (seeds, width, data, the size reductions of `shrink`).
    """
    return list(scale_cfg(config).get("matrix") or [config["scale"]])


def _runs_at(scales: list[str], config: dict) -> bool:
    return bool(set(scales) & set(matrix_scales(config)))


def skip_reason(config: dict, exp: dict) -> str | None:
    """Why an experiment does not run at this scale, in words for the table row; None if it runs."""
    if "scales" in exp and not _runs_at(exp["scales"], config):
        return f"runs at scale={'/'.join(exp['scales'])}"
    dataset = experiment_dataset(config, exp)
    if dataset not in scale_cfg(config)["datasets"]:
        later = [s for s in SCALES if dataset in config["scales"].get(s, {}).get("datasets", [])]
        hint = f": run with scale={later[0]}" if later else ""
        return f"needs {dataset}{hint}"
    return None


_FALLBACKS_SAID: set[str] = set()


def dataset_at_scale(config: dict, value: str | dict, where: str) -> str:
    """The dataset a run uses at this scale: the per-scale value, or the scale's fallback for it
    when its files are not there (no data_root copy, no system package) and download is off.

    The fallback is a dataset of its own in the run's spec, so results never mix the two; it
    is said once on the terminal and in the table rows (see `fallback_note`).
    """
    name = _at_scale(value, config, where)
    fallback = (scale_cfg(config).get("fallback") or {}).get(name)
    root, system = Path(config["data_root"]), config.get("system_datasets", True)
    if fallback is None or config.get("download") or present(name, root, system):
        return name
    if name not in _FALLBACKS_SAID:
        _FALLBACKS_SAID.add(name)
        print(f"lbgap: {fallback_note(config, name)}", file=sys.stderr)
    return fallback


def fallback_note(config: dict, name: str) -> str:
    """One line: which dataset was missing, what runs instead, and how to get the real one."""
    fallback = scale_cfg(config)["fallback"][name]
    return (
        f"{DATASET_TITLES[name]} was not found, so its runs use {DATASET_TITLES[fallback]} "
        f"instead, on which this scale's headline claims cannot be tested; install it with "
        f"`make setup` as root, `sudo apt-get install dataset-fashion-mnist`, or put its files "
        f"in {config['data_root']}/{FOLDERS[name]}/raw"
    )


def dataset_note(config: dict, exp: dict) -> str:
    """What a reader of the row must know about its data, or "": that the scale's dataset was
    missing (the fallback), and that the paper's columns are for another dataset."""
    own = _at_scale(exp["dataset"], config, "dataset")
    ran = experiment_dataset(config, exp)
    notes = [fallback_note(config, own) + "."] if ran != own else []
    papers = paper_dataset(config, exp)
    if ran != papers:
        notes.append(
            f"Ran on {DATASET_TITLES[ran]}: the paper's columns are its "
            f"{DATASET_TITLES[papers]} numbers, for comparison."
        )
    return " ".join(notes)


def paper_dataset(config: dict, exp: dict) -> str:
    """The dataset of the experiment at the paper's scale: what its reference numbers are on."""
    return _at_scale(exp["dataset"], {**config, "scale": "paper"}, "dataset")


def experiment_dataset(config: dict, exp: dict) -> str:
    """An experiment's dataset at this scale (per-scale values and the scale's fallback)."""
    return dataset_at_scale(config, exp["dataset"], "dataset")


def scaled_seeds(config: dict, value: dict | None) -> list[int]:
    """Seeds given per scale ({quick: [0]}); a scale not named uses all the scale's seeds."""
    return list((value or {}).get(config["scale"]) or scale_cfg(config)["seeds"])


def experiment_seeds(config: dict, exp: dict) -> list[int]:
    return scaled_seeds(config, exp.get("seeds"))


def inert_ghost_batch_twin(config: dict, paper: str, experiment: str, variant: str) -> str | None:
    """Why a variant would repeat another run: ghost batch norm on a network without batch norm
    changes nothing, so Hoffer's AlexNet +GBN is +LR again (its table says n/a)."""
    own = settings(config, paper, experiment, variant, _schema())
    if not own["ghost_batch"] or own["network"] not in NO_BATCH_NORM:
        return None
    inert = {**own, "ghost_batch": None}
    for other in config["papers"][paper]["experiments"][experiment]["variants"]:
        if other != variant and settings(config, paper, experiment, other, _schema()) == inert:
            return f"would repeat {other}: {own['network']} has no batch norm for ghost batch norm"
    return None


def variant_skip_reason(config: dict, paper: str, experiment: str, variant: str) -> str | None:
    """Why a variant of a running experiment does not run at this scale; None if it runs.

    A variant may be limited to some scales (fewer sweep points at quick), and a warm start
    cannot start after more epochs than its source run trains at this scale.
    """
    overrides = config["papers"][paper]["experiments"][experiment]["variants"][variant] or {}
    if "scales" in overrides and not _runs_at(overrides["scales"], config):
        return f"runs at scale={'/'.join(overrides['scales'])}"
    if same := inert_ghost_batch_twin(config, paper, experiment, variant):
        return same
    warm = settings(config, paper, experiment, variant, _schema())["warm_start"]
    if warm:
        source = _warm_source_name(paper, experiment, warm)
        src_exp = config["papers"][paper]["experiments"].get(source[0], {})
        if source[1] not in src_exp.get("variants", {}):
            where = f"papers.{paper}.experiments.{experiment}.variants.{variant}.warm_start"
            if not src_exp:
                missing = f"{paper} has no experiment {source[0]}"
            else:
                names = ", ".join(src_exp["variants"])
                missing = f"{source[0]} has no variant {source[1]} (it has {names})"
            raise ConfigError(
                f"config error at {where}: no run {source[0]}/{source[1]} to start from: {missing}"
            )
        if reason := skip_reason(config, src_exp) or variant_skip_reason(config, paper, *source):
            return f"{source[0]}/{source[1]} does not run at this scale ({reason})"
        epochs = settings(config, paper, *source, _schema())["epochs"]
        if warm["epoch"] > epochs:
            return f"{source[0]}/{source[1]} trains only {plural(epochs, 'epoch')} at this scale"
    return None


def runs(config: dict, paper: str | None = None) -> list[Run]:
    return [
        Run(p, name, variant, seed)
        for p, name, exp in _experiments(config)
        if (paper is None or p == paper) and skip_reason(config, exp) is None
        for variant in exp["variants"]
        if selected(config, p, name, variant)
        and variant_skip_reason(config, p, name, variant) is None
        for seed in experiment_seeds(config, exp)
    ]


def skipped(config: dict, paper: str) -> dict[str, str]:
    return {
        name: reason
        for p, name, exp in _experiments(config)
        if p == paper and (reason := skip_reason(config, exp) or unselected(config, p, name))
    }


def unselected(config: dict, paper: str, experiment: str) -> str | None:
    """Why an experiment left out by `only` does not run, in words for its table row."""
    variants = config["papers"][paper]["experiments"][experiment]["variants"]
    if any(selected(config, paper, experiment, v) for v in variants):
        return None
    return f"not selected (only={','.join(selection(config))})"


# ---------------------------------------------------------------- one run's spec
def _at_scale(value: Any, config: dict, key: str) -> Any:
    """Values given per scale ({quick: .., small: .., paper: ..}) resolve to this scale's.

    A scale with no value of its own takes the value of the scale whose matrix it runs.
    """
    if isinstance(value, dict) and value and set(value) <= {*SCALES, *config["scales"]}:
        for scale in (config["scale"], *matrix_scales(config)):
            if scale in value:
                return value[scale]
        scale = config["scale"]
        raise ConfigError(f"config error at {key}: no value for scale {scale}; add {scale}: ..")
    return value


def settings(config: dict, paper: str, experiment: str, variant: str, schema: dict) -> dict:
    """Schema defaults < experiment settings < variant overrides, resolved at the scale."""
    exp = config["papers"][paper]["experiments"][experiment]
    props = schema["$defs"]["settings"]["properties"]
    merged = {k: p["default"] for k, p in props.items() if "default" in p}
    merged.update({k: v for k, v in exp.items() if k in props})
    where = f"papers.{paper}.experiments.{experiment}"
    given = {k: f"{where}.{k}" for k in merged}  # the key to name in an error: a variant's own
    overrides = exp["variants"][variant] or {}
    for key, value in overrides.items():
        if key in ("scales", "resources"):  # where and on what it runs, not a training setting
            continue
        if key == "optimizer":
            merged["optimizer"] = {**merged["optimizer"], **value}
        else:
            merged[key] = value
        given[key] = f"{where}.variants.{variant}.{key}"
    resolved = {k: _at_scale(v, config, given[k]) for k, v in merged.items() if k != "dataset"}
    return {**resolved, "dataset": dataset_at_scale(config, merged["dataset"], given["dataset"])}


def train_size(config: dict, dataset: str) -> int:
    """Training samples at this scale (bundled MNIST has 4,000 at most)."""
    scale = scale_cfg(config)
    full = dataset_info(dataset).n_train
    if dataset == "mnist" and scale.get("allow_bundled_mnist"):
        full = min(full, 5000 - (dataset_size(scale.get("test_size"), dataset) or 1000))
    cap = dataset_size(scale.get("train_size"), dataset)
    return min(full, cap) if cap else full


def dataset_size(value: int | dict | None, dataset: str) -> int | None:
    """A scale's train_size/test_size: one cap for all datasets, or one per dataset."""
    return value.get(dataset) if isinstance(value, dict) else value


def resolve_batch(value: int | str, n_train: int, where: str) -> int:
    """A batch as an integer or as a share of the training set ("10%")."""
    if isinstance(value, str):
        if not n_train:
            raise ConfigError(
                f"config error at {where}.batch_size: {value} of a dataset of unknown size; "
                "give the batch as an integer"
            )
        share = float(re.fullmatch(r"([0-9.]+)%", value).group(1)) / 100
        value = int(round(share * n_train))
    if not 1 <= value <= n_train:
        raise ConfigError(
            f"config error at {where}.batch_size: batch {value} is impossible with "
            f"{n_train} training samples at this scale; use at most {n_train}"
        )
    return value


def _warm_source_name(paper: str, experiment: str, warm: dict) -> tuple[str, str]:
    return warm.get("experiment", experiment), warm["variant"]


def warm_start(config: dict, run: Run, warm: dict | None, schema: dict) -> dict:
    """Spec keys of a warm-started run: the source run's weights after `epoch` epochs.

    The source is the run of the named experiment and variant with the same seed; it must exist
    at this scale and save that epoch (save_epochs), so the file exists once it has finished.
    """
    if not warm:
        return {}
    experiment, variant = _warm_source_name(run.paper, run.experiment, warm)
    source = Run(run.paper, experiment, variant, run.seed)
    where = f"papers.{run.paper}.experiments.{run.experiment}.variants.{run.variant}.warm_start"
    src_exp = config["papers"][run.paper]["experiments"][experiment]
    if run.seed not in experiment_seeds(config, src_exp):
        raise ConfigError(
            f"config error at {where}: {experiment}/{variant} has no seed {run.seed} at this "
            f"scale; give {run.experiment} a subset of its seeds"
        )
    source_settings = settings(config, run.paper, experiment, variant, schema)
    own = settings(config, run.paper, run.experiment, run.variant, schema)
    for key in ("dataset", "network"):
        if source_settings[key] != own[key]:
            raise ConfigError(
                f"config error at {where}: {experiment}/{variant} trains {key} "
                f"{source_settings[key]} but {run.experiment} uses {own[key]}; give both the "
                f"same {key} (e.g. base: {experiment})"
            )
    saved = source_settings.get("save_epochs") or []
    if warm["epoch"] not in saved:
        raise ConfigError(
            f"config error at {where}: {experiment}/{variant} does not save epoch "
            f"{warm['epoch']}; add it to that experiment's save_epochs"
        )
    return {
        "init_checkpoint": layout.checkpoint(source.dir, warm["epoch"]),
        "warm_start": {"run": source.dir, "epoch": warm["epoch"]},
    }


def analysis(config: dict, paper: str) -> dict:
    """A paper's analysis settings at this scale: schema defaults, per-scale values resolved."""
    props = _schema()["$defs"]["analysis"]["properties"]
    given = config["papers"][paper].get("analysis", {})
    out = {}
    for section, sub in props.items():
        seed_keys = {k for k, p in sub["properties"].items() if "scaled_seeds" in p.get("$ref", "")}
        values = {k: p["default"] for k, p in sub["properties"].items() if "default" in p}
        values |= dict.fromkeys(seed_keys) | given.get(section, {})
        where = f"papers.{paper}.analysis.{section}"
        out[section] = {
            k: scaled_seeds(config, v) if k in seed_keys else _at_scale(v, config, f"{where}.{k}")
            for k, v in values.items()
        }
    return out


def data_path(config: dict, dataset: str) -> str:
    return layout.prepared(dataset, config["scale"])


def spec(config: dict, run: Run, schema: dict | None = None) -> RunSpec:
    """Everything a training job needs, with no reference back to the config file.

    The spec is first resolved and checked at the datasets' real sizes, exactly as the scale's
    matrix would run it (so a spec that cannot run fails here with its one-line error); a
    scale with `shrink` then reduces its sizes (see `shrink`).
    """
    schema = schema or load_schema()
    full = _spec(config, run, schema)
    where = f"papers.{run.paper}.experiments.{run.experiment}.variants.{run.variant}"
    res = allocation(config, run.paper, run.experiment, run.variant)
    ranks = res["tasks"] * res["nodes"]
    how = scale_cfg(config).get("shrink")
    if not how:
        try:
            check_split(full, ranks)
        except ValueError as err:
            raise ConfigError(f"config error at {where}: {err}") from None
        return full
    try:  # the world size of the scale whose matrix this one runs (e.g. paper's 8 GPUs)
        check_split(full, _matrix_ranks(config, run))
    except ValueError as err:
        raise ConfigError(f"config error at {where}: {err}") from None
    source_epochs = None
    if full.warm_start:
        name, variant = _warm_source_name(run.paper, run.experiment, _warm(config, run))
        source = Run(run.paper, name, variant, run.seed)
        source_epochs = _spec(config, source, schema).schedule["epochs"]
    try:
        out = shrink(full, how, source_epochs)
        check_split(out, ranks)  # the shrunk batches are the ones this scale's ranks share
    except ValueError as err:
        shrunk = f"shrunk by scales.{config['scale']}.shrink"
        raise ConfigError(f"config error at {where} ({shrunk}): {err}") from None
    return out


def check_split(spec: RunSpec, ranks: int) -> None:
    """Refuse, at dry-run time, a split of the batch that the training job would refuse.

    Every global batch of the schedule (the grown ones of batch_growth=increase too) is
    shared equally by the job's ranks (processes per node x nodes), and a rank's share by
    micro-batches of gradient accumulation (lbgap.training.train.micro_batches: a micro_batch at
    least the share means no accumulation). With ghost batch norm every forward pass (a
    micro-batch, or the share) holds whole ghost batches, so that the split does not change
    the statistics; without it, batch norm needs the whole share in one pass (ranks share
    statistics, micro-batches could not).
    """
    micro, ghost = spec.micro_batch, spec.ghost_batch
    batch_norm = spec.network not in NO_BATCH_NORM
    if micro and ghost and micro % ghost:
        raise ValueError(
            f"micro_batch {micro} is not a multiple of ghost_batch {ghost}; use a multiple of it"
        )
    for batch in spec.lr_schedule().batches():
        if batch % ranks:
            raise ValueError(
                f"batch {batch} cannot be split equally over the job's {ranks} ranks "
                "(processes per node x nodes, see resources); use a multiple of "
                f"{ranks} or fewer ranks"
            )
        share = batch // ranks
        if micro and micro < share and share % micro:
            raise ValueError(
                f"micro_batch {micro} does not divide the per-rank batch {share} (batch {batch} "
                f"over {plural(ranks, 'rank')}); use a divisor of {share}"
            )
        split = bool(micro) and micro < share
        if split and batch_norm and not ghost:
            raise ValueError(
                f"micro_batch {micro} would make batch norm normalize over {micro} samples "
                f"instead of the batch {batch}; set micro_batch: null, or a ghost_batch that "
                f"divides {micro}"
            )
        if ghost and (micro if split else share) % ghost:
            part = f"micro-batch {micro}" if split else f"per-rank batch {share}"
            raise ValueError(
                f"ghost_batch {ghost} does not divide the {part} (batch {batch} over "
                f"{plural(ranks, 'rank')}), so batch norm would not see whole ghost batches; "
                f"use a ghost_batch that divides {micro if split else share}"
            )


def _matrix_ranks(config: dict, run: Run) -> int:
    """The ranks the run's job has at the first scale whose matrix this scale runs it from."""
    exp = config["papers"][run.paper]["experiments"][run.experiment]
    for scale in matrix_scales(config):
        at = {**config, "scale": scale}
        if skip_reason(at, exp) is None:
            res = allocation(at, run.paper, run.experiment, run.variant)
            return res["tasks"] * res["nodes"]
    return 1


def _warm(config: dict, run: Run) -> dict:
    return settings(config, run.paper, run.experiment, run.variant, _schema())["warm_start"]


def _spec(config: dict, run: Run, schema: dict) -> RunSpec:
    s = settings(config, run.paper, run.experiment, run.variant, schema)
    where = f"papers.{run.paper}.experiments.{run.experiment}.variants.{run.variant}"
    n_train = train_size(config, s["dataset"])
    exp = config["papers"][run.paper]["experiments"][run.experiment]
    base_batch = s.get("base_batch") or resolve_batch(exp["batch_size"], n_train, where)
    batch = resolve_batch(s["batch_size"], n_train, where)
    schedule_cfg = {
        "base_lr": s["optimizer"]["lr"],
        "base_batch": base_batch,
        "batch_size": batch,
        "epochs": s["epochs"],
        **{k: s[k] for k in SCHEDULE_KEYS if k in s},
    }
    schedule_cfg["decay_epochs"] = tuple(schedule_cfg.get("decay_epochs", ()))
    try:
        schedule = Schedule.from_config(schedule_cfg)
        if s["regime_adaptation"]:
            schedule = adapt_regime(schedule, batch / base_batch)
        schedule.total_updates(n_train)  # every epoch must hold at least one full batch
        check_warmup(schedule, adapted=s["regime_adaptation"])
    except ValueError as err:
        raise ConfigError(f"config error at {where}: {err}") from None
    sc = scale_cfg(config)
    keys = {
        "paper": run.paper,
        "experiment": run.experiment,
        "variant": run.variant,
        "seed": run.seed,
        "scale": config["scale"],
        "network": s["network"],
        "dataset": s["dataset"],
        "data": data_path(config, s["dataset"]),
        "n_train": n_train,
        "width": sc["width"],
        "image_size": sc.get("image_size"),
        "batch_size": batch,
        "ghost_batch": s["ghost_batch"],
        "optimizer": s["optimizer"],
        "schedule": schedule_as_dict(schedule),
        "augment": s["augment"],
        "grad_clip": s["grad_clip"],
        "grad_clip_epochs": s["grad_clip_epochs"],
        "zero_init_residual": s["zero_init_residual"],
        "micro_batch": s["micro_batch"],
        "regime_adaptation": s["regime_adaptation"],
        "momentum_correction": s["momentum_correction"],
        "noise_every": s["noise_every"],
        "save_epochs": [int(e) for e in s.get("save_epochs", [])],
        # Only when set: without it a spec stays as it was, and so its run and results.
        **({"patience": s["patience"]} if s.get("patience") else {}),
        **warm_start(config, run, s.get("warm_start"), schema),
        "device": config["device"],
        **{k: config[k] for k in ("amp", "channels_last", "compile", "deterministic")},
        "bn_eval": config["bn_eval"],
        "eval_chunk": config["eval_chunk"],
        # ImageNet's JPEG decoding, only when not auto: other specs stay as they were.
        **({"decode": config["decode"]} if _decode_set(config, s["dataset"]) else {}),
    }
    return RunSpec.from_dict(keys, f"the spec of {run.dir}")


def _decode_set(config: dict, dataset: str) -> bool:
    return dataset == "imagenet" and config.get("decode", "auto") != "auto"


def check_warmup(schedule: Schedule, adapted: bool = False) -> None:
    """A warmup must end before training does: otherwise the run never reaches its LR."""
    if schedule.warmup != "none" and schedule.warmup_epochs >= schedule.epochs:
        after = " (after regime adaptation)" if adapted else ""
        raise ValueError(
            f"warmup_epochs {schedule.warmup_epochs:g} is not shorter than the "
            f"{plural(schedule.epochs, 'training epoch')}{after}; shorten the warmup or "
            "train longer"
        )


def schedule_as_dict(schedule: Schedule) -> dict:
    keys = ("base_lr", "base_batch", "batch_size", "epochs") + SCHEDULE_KEYS + ("max_iterations",)
    out = {k: getattr(schedule, k) for k in keys}
    out["decay_epochs"] = list(out["decay_epochs"])
    return out


def size_args(config: dict, scale: str, dataset: str) -> str:
    """prepare_data's subset options for a dataset at a scale."""
    sc = config["scales"][scale]
    sizes = {k: dataset_size(sc.get(k), dataset) for k in ("train_size", "test_size")}
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sizes.items() if v)


def data_flags(config: dict, scale: str) -> str:
    flags = ["--download"] if config.get("download") else []
    if config["scales"][scale].get("allow_bundled_mnist"):
        flags.append("--allow-bundled")
    if not config.get("system_datasets", True):
        flags.append("--no-system-datasets")
    return " ".join(flags)


def _shrunk_epoch(epoch: float, total: int, most: int) -> int:
    """A whole epoch of a run of `total` epochs mapped onto `most` epochs (rounded up)."""
    return max(1, math.ceil(epoch * most / total)) if total > most else int(epoch)


def shrink(spec: RunSpec, how: dict, source_epochs: int | None = None) -> RunSpec:
    """The run with its sizes reduced and its method kept: the rehearsal's runs.

    - `samples: D` divides every sample count by D: the training set, and every batch (batch,
      base batch, largest batch, ghost batch) rounded down to an even number of at least 2,
      so that the ratios the papers compare (LB/SB, kn/256, the batch growth) stay as they are
      (exactly where they are powers of two) and two ranks can share any batch;
    - `epochs: E` trains at most E epochs: milestones, warmup and `patience` shrink in
      proportion, and patience, the saved epochs and a warm start's epoch (of a source run of
      `source_epochs`) round up;
    - `updates_per_epoch: U` ends each epoch after at most U updates.

    Micro-batches (memory) and the analyses' sizes are the scale's settings, not shrunk here.
    """
    out = spec.to_dict()
    sched = out["schedule"]
    div = int(how.get("samples", 1))

    def fewer(n: int | None) -> int | None:
        """A batch size divided: even (so that two ranks can share it), at least 2."""
        return None if n is None else max(2, n // div // 2 * 2)

    out["n_train"] = max(1, out["n_train"] // div)
    out["batch_size"] = fewer(out["batch_size"])
    out["ghost_batch"] = fewer(out["ghost_batch"])
    for key in ("base_batch", "batch_size", "max_batch"):
        sched[key] = fewer(sched[key])
    most, total = how.get("epochs"), sched["epochs"]
    if most and total > most:
        factor = most / total
        sched["epochs"] = most
        sched["decay_epochs"] = [m * factor for m in sched["decay_epochs"]]
        sched["warmup_epochs"] = sched["warmup_epochs"] * factor
        saved = {_shrunk_epoch(e, total, most) for e in out["save_epochs"]}
        out["save_epochs"] = sorted(saved)
        if spec.patience:  # early stopping stays reachable in the shorter run
            out["patience"] = max(1, math.ceil(spec.patience * factor))
    if spec.warm_start and most and source_epochs:
        epoch = _shrunk_epoch(spec.warm_start["epoch"], source_epochs, most)
        run = spec.warm_start["run"]
        out["warm_start"] = {"run": run, "epoch": epoch}
        out["init_checkpoint"] = layout.checkpoint(run, epoch)
    if how.get("updates_per_epoch"):
        sched["max_iterations"] = int(how["updates_per_epoch"])
    shrunk = RunSpec.from_dict(out, f"the shrunk spec of {spec.experiment}/{spec.variant}")
    shrunk.lr_schedule().total_updates(shrunk.n_train)
    return shrunk
