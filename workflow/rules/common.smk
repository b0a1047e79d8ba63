# The matrix expansion: which runs exist at this scale and what each one trains.
# (lbgap is importable: workflow/rules/setup.smk, included before the config is read.)
import json
import os
import re
import sys

from snakemake.utils import validate

from lbgap import live, matrix, outputs
from lbgap.datasets import FOLDERS, STANDIN_FILE, prepared_mismatch
from lbgap.io import write_if_changed


def checked(build):
    """build(), or the end of Snakemake with its config error as one line, no traceback.

    Every expansion of the config while the Snakefile is read (the runs, their specs, the
    analysis settings, the plans) goes through here: a value missing for the scale or an
    impossible setting is the user's to fix, not a bug of the workflow.
    """
    try:
        return build()
    except matrix.ConfigError as err:
        sys.exit(f"lbgap: {err}")


SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
config = checked(lambda: matrix.prepare_config(config, SCHEMA))
validate(config, SCHEMA, set_default=False)
if config["tensorboard"] and (_missing := live.tensorboard_missing()):
    sys.exit(f"lbgap: {_missing}")  # at the start, not in every training job

SCALE = config["scale"]
CONFIG_FILES = sorted({os.path.realpath(f) for f in workflow.configfiles})  # before a workdir
# A scale may keep its data, results, logs and reports in a folder of its own (the rehearsal:
# rehearsal/), so it never overwrites or invalidates another scale's. --directory wins. A job
# re-reading this file is already there (its executor starts it there).
if matrix.scale_cfg(config)["workdir"]:
    _workdir = os.path.join(LAUNCH_DIR, matrix.scale_cfg(config)["workdir"])
    if os.path.realpath(os.getcwd()) != os.path.realpath(_workdir):
        workflow.workdir(_workdir)
PAPERS = list(config["papers"])
RUNS = checked(lambda: matrix.runs(config))
_SCHEMA = matrix.load_schema(SCHEMA)
SPECS = checked(lambda: {run: matrix.spec(config, run, _SCHEMA) for run in RUNS})

localrules:
    reproduce_all,
    keskar2017,
    hoffer2017,
    goyal2017,
    smith2018,
    table,
    figure,
    table_view,
    claims,
    provenance,
    index,
    standins,


wildcard_constraints:
    paper="[A-Za-z0-9]+",
    seed=r"\d+",
    scale="|".join(re.escape(s) for s in config["scales"]),


def run_of(wildcards):
    return matrix.Run(wildcards.paper, wildcards.experiment, wildcards.variant, int(wildcards.seed))


def run_resources(wildcards):
    return matrix.resources(config, wildcards.paper, wildcards.experiment, wildcards.variant)


def train_data(wildcards):
    return SPECS[run_of(wildcards)]["data"]


def warm_source(wildcards):
    """A warm-started run waits for its source run (whose checkpoint_epoch<k>.pt it loads)."""
    warm = SPECS[run_of(wildcards)].get("warm_start")
    return [f"{warm['run']}/summary.json"] if warm else []


PLANS = checked(lambda: {paper: outputs.plan(config, paper, SPECS) for paper in PAPERS})


# Whole specs, plans and the config reach the jobs as files, by path (on a command line a large
# matrix would pass Linux's 128 KB cap per argument). They are written here, as the Snakefile is
# read, and only when their content changes: a file's modification time then says when what its
# readers compute changed, and Snakemake reruns them (a local job per file cost seconds each).
def spec_path(run):
    return f"{run.dir}/spec.json"


def plan_path(paper):
    return f"results/{paper}/plan.json"


EFFECTIVE_CONFIG = "results/config.effective.json"
for _run, _spec in SPECS.items():
    write_if_changed(spec_path(_run), json.dumps(_spec, sort_keys=True) + "\n")
for _paper, _plan in PLANS.items():
    write_if_changed(plan_path(_paper), json.dumps(_plan) + "\n")
write_if_changed(EFFECTIVE_CONFIG, json.dumps(config, sort_keys=True, default=str) + "\n")


def run_spec(wildcards):
    run = run_of(wildcards)
    if run not in SPECS:
        raise ValueError(f"{run.dir} is not in the matrix at scale={SCALE}")
    return spec_path(run)


def paper_plan(wildcards):
    return plan_path(wildcards.paper)


def plan_files(wildcards=None):
    return [plan_path(paper) for paper in PAPERS]


def product_inputs(wildcards):
    return outputs.inputs(PLANS[wildcards.paper], wildcards.name)


def paper_outputs(paper):
    return outputs.files(paper)


# ---------------------------------------------------------------- datasets (data.smk)
_DAMAGED_SAID = set()


def prepared_state(wildcards):
    """"damaged" when the prepared file no longer matches its recorded SHA-256 (a truncated
    copy, a disk error), else "intact": a change of this param makes Snakemake prepare the
    dataset again (a dry run only reports it); nothing is deleted while the DAG is built.
    (From the wildcards, not `output`: Snakemake ignores params derived from files.)"""
    path = f"data/prepared/{wildcards.dataset}_{wildcards.scale}.pt"
    problem = prepared_mismatch(path) if os.path.exists(path) else None
    if problem and path not in _DAMAGED_SAID:
        _DAMAGED_SAID.add(path)
        print(f"lbgap: {problem}; preparing it again", file=sys.stderr)
    return "damaged" if problem else "intact"


def standin_marker(dataset):
    return f"{config['data_root']}/{FOLDERS[dataset]}/{STANDIN_FILE}"


def standins_needed(wildcards):
    """At a scale that runs on stand-ins, the stand-in is written first."""
    return [standin_marker(wildcards.dataset)] if config["scales"][wildcards.scale]["standins"] else []


def raw_data_root(wildcards):
    """Where the datasets' own files are (data_root); prepared files go to data/prepared."""
    return config["data_root"]

