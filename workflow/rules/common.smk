# The matrix expansion: which runs exist at this scale and what each one trains.
# (lbgap is importable: workflow/rules/setup.smk, included before the config is read.)
import json
import os
import re
import sys

from snakemake.utils import validate

from lbgap.training import live

from lbgap.config import layout, matrix
from lbgap.config.resources import job_resources

from lbgap.products import outputs
from lbgap.config.datasets import FOLDERS, STANDIN_FILE, prepared_mismatch
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
    """The training job's threads and resources (lbgap.config.resources.job_resources)."""
    return job_resources(config, wildcards.paper, wildcards.experiment, wildcards.variant)


def resource_of(resources, key):
    """One of a job's resources, as a function of its wildcards (Snakemake's resource form)."""
    return lambda wildcards: resources(wildcards)[key]


# The training rule's threads and resources (train.smk): one SLURM task per node, see
# job_resources; the launcher's processes per node and threads per process beside them.
TRAIN_THREADS = resource_of(run_resources, "threads")
TRAIN_RESOURCES = {
    key: resource_of(run_resources, key)
    for key in (
        "gpu",
        "gres",
        "mpi",
        "tasks",
        "tasks_per_gpu",
        "nodes",
        "mem_mb",
        "runtime",
        "cpus_per_task",
        "threads_per_process",
    )
}


def train_data(wildcards):
    return SPECS[run_of(wildcards)].data


def warm_source(wildcards):
    """A warm-started run waits for its source run (whose checkpoint_epoch<k>.pt it loads)."""
    warm = SPECS[run_of(wildcards)].warm_start
    return [layout.summary(warm["run"])] if warm else []


PLANS = checked(lambda: {paper: outputs.plan(config, paper, SPECS) for paper in PAPERS})


# Whole specs, plans and the config reach the jobs as files, by path (on a command line a large
# matrix would pass Linux's 128 KB cap per argument). They are written here, as the Snakefile is
# read, and only when their content changes: a file's modification time then says when what its
# readers compute changed, and Snakemake reruns them (a local job per file cost seconds each).
def spec_path(run):
    return layout.spec(run.dir)


def plan_path(paper):
    return layout.plan(paper)


EFFECTIVE_CONFIG = layout.EFFECTIVE_CONFIG
for _run, _spec in SPECS.items():
    write_if_changed(spec_path(_run), _spec.to_json())
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
    """The prepared file's state: "damaged" when it no longer matches its recorded SHA-256 (a
    truncated copy, a disk error), else "intact": a change of this param makes Snakemake prepare
    the dataset again (a dry run only reports it); nothing is deleted while the DAG is built.
    (From the wildcards, not `output`: Snakemake ignores params derived from files.)"""
    path = layout.prepared(wildcards.dataset, wildcards.scale)
    problem = prepared_mismatch(path) if os.path.exists(path) else None
    if problem and path not in _DAMAGED_SAID:
        _DAMAGED_SAID.add(path)
        print(f"lbgap: {problem}; preparing it again", file=sys.stderr)
    return "damaged" if problem else "intact"


def standin_marker(dataset):
    return f"{config['data_root']}/{FOLDERS[dataset]}/{STANDIN_FILE}"


def standins_needed(wildcards):
    """At a scale that runs on stand-ins, the stand-in is written first."""
    return (
        [standin_marker(wildcards.dataset)] if config["scales"][wildcards.scale]["standins"] else []
    )


def raw_data_root(wildcards):
    """Where the datasets' own files are (data_root); prepared files go to data/prepared."""
    return config["data_root"]


# ---------------------------------------------------------------- the review (report.smk)
from snakemake import __version__ as SNAKEMAKE_VERSION

from lbgap.products import claims as lbgap_claims
from lbgap.products import papers as lbgap_papers
from lbgap.products import summary as lbgap_summary

OVERVIEW = "Claims and provenance"  # sorts before the papers' categories in the report menu
PAPER_PATTERN = "|".join(PAPERS)  # {paper} is a paper of the config, never another table


report: "../report/workflow.rst"


def product_caption(wildcards):
    """What a product shows, for its caption: its `caption`, else its builder's first line."""
    product = lbgap_papers.product(wildcards.paper, wildcards.name)
    build = getattr(product.build, "func", product.build)  # a functools.partial's function
    doc = (build.__doc__ or wildcards.name).strip().splitlines()[0]
    return product.caption or doc


def table_views():
    """A readable HTML view of every table, for the report and the overview page."""
    return [
        f.replace(".csv", ".html")
        for paper in PAPERS
        for f in paper_outputs(paper)
        if f.startswith(f"{layout.TABLES}/") and f.endswith(".csv")
    ]


def claim_tables(wildcards=None):
    """The tables the claims read that this workflow produces (a missing one is 'not run')."""
    produced = {f for paper in PAPERS for f in paper_outputs(paper)}
    return sorted({c.table_file for c in lbgap_claims.CLAIMS if c.table_file in produced})


def claim_runs(wildcards):
    """summary.json of the runs behind those tables (the claims' per-seed values)."""
    papers = {c.paper for c in lbgap_claims.CLAIMS if c.table_file in claim_tables()}
    return [layout.summary(run.dir) for run in RUNS if run.paper in papers]


def data_manifests(wildcards):
    return sorted({SPECS[run].data.removesuffix(".pt") + ".json" for run in RUNS})


def config_files(wildcards):
    return CONFIG_FILES


def report_outputs():
    """What reproduce_all builds for the review beside the papers' own tables and figures."""
    return [
        *table_views(),
        *rules.claims.output,
        *rules.provenance.output,
        *rules.index.output,
    ]


def other_tables(wildcards=None):
    """Tables that are no paper's product: the quoted literature table (literature.smk)."""
    return list(globals().get("LITERATURE_OUTPUTS", []))


def not_run_figures(paper):
    """A paper's figures that no run of this scale feeds (PNG -> why), listed apart."""
    plan = PLANS[paper]
    skips = {n: e["skip"] for n, e in plan["experiments"].items() if e["skip"]}
    found = {}
    for product in lbgap_papers.products(paper):
        if product.kind == "figure" and not product.inputs(plan):
            why = [r for n, r in skips.items() if product.name.endswith(f"_{n}")]
            found[product.files(paper)[0]] = (why or ["no run of this scale feeds it"])[0]
    return found


INDEX_PRODUCTS = layout.INDEX_PRODUCTS  # written as the Snakefile is read (Snakefile)


def index_products():
    """Per paper (and 'other'): its title and files, as JSON for lbgap.products.index_page."""
    products = {
        paper: {
            "title": config["papers"][paper].get("title", paper),
            "files": paper_outputs(paper)
            + [f for f in table_views() if f.startswith(f"{layout.TABLES}/{paper}_")],
            "not_run": not_run_figures(paper),
        }
        for paper in PAPERS
    }
    if other_tables():
        products["other"] = {"title": "Other tables (quoted, not run)", "files": other_tables()}
    return json.dumps(products)


# ---------------------------------------------------------------- analyses (analysis.smk)
# The rules' patterns of a run's and an experiment's folder.
RUN_DIR = layout.run_dir("{paper}", "{experiment}", "{variant}", "{seed}")
EXPERIMENT_DIR = layout.experiment_dir("{paper}", "{experiment}")


ANALYSIS = checked(lambda: {paper: matrix.analysis(config, paper) for paper in PAPERS})


def analysis_settings(wildcards, section):
    return ANALYSIS[wildcards.paper][section]


def run_dir(wildcards):
    return layout.run_dir(wildcards.paper, wildcards.experiment, wildcards.variant, wildcards.seed)


def analysis_resources(wildcards):
    """One process per job: the scale's threads and memory, one GPU where the scale has GPUs."""
    return job_resources(config, wildcards.paper, wildcards.experiment, analysis=True)


# Every analysis rule's threads and resources (analysis.smk).
ANALYSIS_THREADS = resource_of(analysis_resources, "threads")
ANALYSIS_RESOURCES = {
    key: resource_of(analysis_resources, key)
    for key in ("gpu", "mem_mb", "runtime", "cpus_per_task")
}


def analysis_group(name):
    """A group per rule, whose jobs the SLURM profile's group-components runs several to a
    submission, one after another: where analyses are short (no GPU: quick, rehearsal) each
    saves its own submission and one of its two Snakemake start-ups. On GPUs each is long and
    keeps a job of its own. Per rule, so no group holds a job and one that needs it: the plugin
    would run those side by side in one CPU's job. Local runs ignore groups."""
    return lambda wildcards: None if analysis_resources(wildcards)["gpu"] else name


def final_sharpness(wildcards):
    """The run's phi of its final weights (Table 3's files), reused by phi along training."""
    eps = analysis_settings(wildcards, "sharpness")["figure_eps"]
    return [layout.sharpness(run_dir(wildcards), "full", eps)]


def phi_max_iter(wildcards):
    """phi's L-BFGS-B iterations, followed by `--optimizer device` where the config asks for it.
    The default (scipy) leaves the value, hence the job's params and Snakemake's rerun check,
    exactly as before the setting existed."""
    cfg = analysis_settings(wildcards, "sharpness")
    optimizer = cfg.get("optimizer", "scipy")
    if optimizer == "scipy":
        return cfg["max_iter"]
    return f"{cfg['max_iter']} --optimizer {optimizer}"


def converge_args(wildcards):
    """The converged estimate beside the paper's phi, computed in the same job."""
    cfg = analysis_settings(wildcards, "sharpness")
    starts = layout.random_starts(cfg, wildcards.space)
    return (
        f"--converge-iter {cfg['converge_max_iter']} --random-starts {starts} "
        f"--converge-tol {cfg['converge_tol']} --converge-patience {cfg['converge_patience']}"
    )


def reparametrization_args(wildcards):
    """The rescaling factors and, with eigenvalues on, the Hessian analysis's Lanczos settings.
    alpha = 1's phi and eigenvalue are Table 3's and the Hessian table's: the tables read them
    from those jobs' files, so this job starts as soon as the run has finished."""
    cfg = analysis_settings(wildcards, "reparametrization")
    args = "--alphas " + " ".join(f"{a:g}" for a in cfg["alphas"])
    if cfg["eigenvalue"]:
        hess = analysis_settings(wildcards, "hessian")
        args += (
            f" --eigenvalue --lanczos-vectors {hess['lanczos_vectors']}"
            f" --tol {hess['lanczos_tol']}"
        )
    return args


def parametric_run(variant):
    """The SB (alpha = 0) or LB (alpha = 1) run of a seed pairing."""
    return lambda wc: layout.summary(layout.run_dir(wc.paper, wc.experiment, variant, wc.seed))


def parametric_data(wildcards):
    return SPECS[matrix.Run(wildcards.paper, wildcards.experiment, "SB", int(wildcards.seed))].data
