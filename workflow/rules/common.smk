# The matrix expansion: which runs exist at this scale and what each one trains.
import json
import os
import sys

from snakemake.utils import validate

# The workflow and its jobs (local, conda or cluster) import lbgap from this source tree.
_SRC = os.path.join(os.path.dirname(os.path.abspath(workflow.main_snakefile)), "src")
sys.path.insert(0, _SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, os.environ.get("PYTHONPATH")) if p)

from lbgap import matrix, outputs

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
try:
    config = matrix.prepare_config(config, SCHEMA)
except matrix.ConfigError as err:
    sys.exit(f"lbgap: {err}")
validate(config, SCHEMA, set_default=False)

SCALE = config["scale"]
CONFIG_FILES = sorted({os.path.realpath(f) for f in workflow.configfiles})  # before a workdir
# A scale may keep its data, results, logs and reports in a folder of its own (the rehearsal:
# rehearsal/), so it never overwrites or invalidates another scale's. --directory wins.
if matrix.scale_cfg(config)["workdir"]:
    workflow.workdir(matrix.scale_cfg(config)["workdir"])
PAPERS = list(config["papers"])
RUNS = matrix.runs(config)
_SCHEMA = matrix.load_schema(SCHEMA)
try:
    SPECS = {run: matrix.spec(config, run, _SCHEMA) for run in RUNS}
except matrix.ConfigError as err:
    sys.exit(f"lbgap: {err}")

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
    scale="|".join(matrix.SCALES),


def run_of(wildcards):
    return matrix.Run(wildcards.paper, wildcards.experiment, wildcards.variant, int(wildcards.seed))


def spec_json(wildcards):
    run = run_of(wildcards)
    if run not in SPECS:
        raise ValueError(f"{run.dir} is not in the matrix at scale={SCALE}")
    return json.dumps(SPECS[run], sort_keys=True)


def run_resources(wildcards):
    return matrix.resources(config, wildcards.paper, wildcards.experiment)


def train_data(wildcards):
    return SPECS[run_of(wildcards)]["data"]


def warm_source(wildcards):
    """A warm-started run waits for its source run (whose checkpoint_epoch<k>.pt it loads)."""
    warm = SPECS[run_of(wildcards)].get("warm_start")
    return [f"{warm['run']}/summary.json"] if warm else []


PLANS = {paper: outputs.plan(config, paper, SPECS) for paper in PAPERS}


def paper_plan(wildcards):
    """What a paper's tables and figures are built from (runs, rows not run), as JSON."""
    return json.dumps(PLANS[wildcards.paper])


def product_inputs(wildcards):
    return outputs.inputs(PLANS[wildcards.paper], wildcards.name)


def paper_outputs(paper):
    return outputs.files(paper)
