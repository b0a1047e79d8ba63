# The matrix expansion: which runs exist at this scale and what each one trains.
# (lbgap is importable: workflow/rules/setup.smk, included before the config is read.)
import json
import os
import re
import sys

from snakemake.utils import validate

from lbgap import live, matrix, outputs
from lbgap.io import write_text


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
    spec_file,
    plan_file,
    effective_config,


wildcard_constraints:
    paper="[A-Za-z0-9]+",
    seed=r"\d+",
    scale="|".join(re.escape(s) for s in config["scales"]),


def run_of(wildcards):
    return matrix.Run(wildcards.paper, wildcards.experiment, wildcards.variant, int(wildcards.seed))


def spec_json(wildcards):
    run = run_of(wildcards)
    if run not in SPECS:
        raise ValueError(f"{run.dir} is not in the matrix at scale={SCALE}")
    return json.dumps(SPECS[run], sort_keys=True)


# Whole specs, plans and the config are written to files by these local rules and handed to the
# jobs by path: on a command line a large matrix would pass Linux's 128 KB cap per argument.
# A changed spec or plan rewrites its file (a params change), which reruns what reads it.
rule spec_file:
    wildcard_constraints:
        experiment="[^/]+",
        variant="[^/]+",
    output:
        "results/{paper}/{experiment}/{variant}/seed{seed}/spec.json",
    params:
        spec=spec_json,
    run:
        write_text(output[0], params.spec + "\n")


def run_resources(wildcards):
    return matrix.resources(config, wildcards.paper, wildcards.experiment, wildcards.variant)


def train_data(wildcards):
    return SPECS[run_of(wildcards)]["data"]


def warm_source(wildcards):
    """A warm-started run waits for its source run (whose checkpoint_epoch<k>.pt it loads)."""
    warm = SPECS[run_of(wildcards)].get("warm_start")
    return [f"{warm['run']}/summary.json"] if warm else []


PLANS = checked(lambda: {paper: outputs.plan(config, paper, SPECS) for paper in PAPERS})


def paper_plan(wildcards):
    """What a paper's tables and figures are built from (runs, rows not run), as JSON."""
    return json.dumps(PLANS[wildcards.paper])


rule plan_file:
    output:
        "results/{paper}/plan.json",
    params:
        plan=paper_plan,
    run:
        write_text(output[0], params.plan + "\n")


def plan_files(wildcards=None):
    return [f"results/{paper}/plan.json" for paper in PAPERS]


rule effective_config:
    output:
        "results/config.effective.json",
    params:
        config=lambda wc: json.dumps(config, sort_keys=True, default=str),
    run:
        write_text(output[0], params.config + "\n")


def product_inputs(wildcards):
    return outputs.inputs(PLANS[wildcards.paper], wildcards.name)


def paper_outputs(paper):
    return outputs.files(paper)
