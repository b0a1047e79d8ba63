"""Where every file of the pipeline lives: runs, analyses, plans, tables, figures, logs.

The one place that spells the folders: the Snakemake rules write these paths, the tables,
figures and provenance read them (and parse a run folder back with `parse_run_dir`), so they
cannot drift apart. Snakemake's wildcard patterns come from the same functions, called with
"{paper}"-style placeholders. No torch import here: the table and figure jobs load it too.
"""

from __future__ import annotations

import re
from pathlib import PurePath

RESULTS = "results"  # runs, analyses, plans: what the workflow computes
REPORTS = "reports"  # tables, figures, the overview page: what a reader opens
TABLES = f"{REPORTS}/tables"
FIGURES = f"{REPORTS}/figures"
LOGS = "logs"
PREPARED = "data/prepared"  # the prepared datasets (data_root holds their sources)

EFFECTIVE_CONFIG = f"{RESULTS}/config.effective.json"  # written as the Snakefile is read
INDEX_PRODUCTS = f"{RESULTS}/index_products.json"  # the overview page's list of products
EFFECTIVE_CONFIG_YAML = f"{REPORTS}/config.effective.yaml"  # the provenance's copy, for readers
INDEX_HTML = f"{REPORTS}/index.html"
REPORT_HTML = f"{REPORTS}/report.html"

# A run's own files (lbgap.training.train writes them; spec.json is the workflow's).
SPEC = "spec.json"
SUMMARY = "summary.json"
METRICS = "metrics.csv"
STEPS = "steps.csv"
CHECKPOINT = "checkpoint.pt"
LIVE_METRICS = "metrics_live.csv"  # metrics.csv's rows so far, while the run trains
STATE = "state.pt"  # resumable state, kept out of Snakemake's outputs so retries find it
BENCHMARK = "benchmark.tsv"  # the training job's; an analysis's is benchmark_<job>.tsv
EARLIER_ATTEMPTS = "benchmark_earlier_attempts.tsv"  # a preempted run's earlier attempts
BENCHMARK_GLOB = "*benchmark*.tsv"  # every benchmark file the provenance sums

_EXPERIMENT_DIR = re.compile(rf"(?:.*/)?{re.escape(RESULTS)}/([^/]+)/([^/]+)")
_RUN_DIR = re.compile(rf"{_EXPERIMENT_DIR.pattern}/([^/]+)/seed([0-9]+)")


# ---------------------------------------------------------------- runs
def experiment_dir(paper: str, experiment: str) -> str:
    return f"{RESULTS}/{paper}/{experiment}"


def run_dir(paper: str, experiment: str, variant: str, seed: int | str) -> str:
    """results/<paper>/<experiment>/<variant>/seed<seed>: one training run and its analyses."""
    return f"{experiment_dir(paper, experiment)}/{variant}/seed{seed}"


def parse_run_dir(path: str | PurePath) -> tuple[str, str, str, int]:
    """The inverse of run_dir: (paper, experiment, variant, seed) of a run folder (relative,
    or under any folder that holds results/)."""
    match = _RUN_DIR.fullmatch(PurePath(path).as_posix())
    if not match:
        want = run_dir("<paper>", "<experiment>", "<variant>", "<n>")
        raise ValueError(f"{path} is not a run folder: give one of the form {want}")
    paper, experiment, variant, seed = match.groups()
    return paper, experiment, variant, int(seed)


def parse_experiment_dir(path: str | PurePath) -> tuple[str, str]:
    """The inverse of experiment_dir: (paper, experiment)."""
    match = _EXPERIMENT_DIR.fullmatch(PurePath(path).as_posix())
    if not match:
        want = experiment_dir("<paper>", "<experiment>")
        raise ValueError(f"{path} is not an experiment folder: give one of the form {want}")
    paper, experiment = match.groups()
    return paper, experiment


def experiment_dir_of(run_dir: str | PurePath) -> str:
    """The experiment folder that holds a run folder (below the same root)."""
    parse_run_dir(run_dir)  # a run folder, or a one-line error
    return PurePath(run_dir).parent.parent.as_posix()


def spec(run_dir: str) -> str:
    return f"{run_dir}/{SPEC}"


def summary(run_dir: str) -> str:
    return f"{run_dir}/{SUMMARY}"


def metrics(run_dir: str) -> str:
    return f"{run_dir}/{METRICS}"


def steps(run_dir: str) -> str:
    return f"{run_dir}/{STEPS}"


def checkpoint_name(epoch: int | None = None) -> str:
    """The weights after `epoch` epochs (save_epochs: checkpoint_epoch<k>.pt), or the final
    ones (checkpoint.pt) for None."""
    return CHECKPOINT if epoch is None else f"checkpoint_epoch{epoch}.pt"


def checkpoint(run_dir: str, epoch: int | None = None) -> str:
    return f"{run_dir}/{checkpoint_name(epoch)}"


def benchmark(folder: str, job: str | None = None) -> str:
    """A job's Snakemake benchmark: the training's benchmark.tsv in its run folder, an
    analysis's benchmark_<job>.tsv beside it."""
    return f"{folder}/{BENCHMARK}" if job is None else f"{folder}/benchmark_{job}.tsv"


def stage_benchmark(stage: str, name: str) -> str:
    """The benchmark of a job outside any run (preparing a dataset): results/benchmarks/."""
    return f"{RESULTS}/benchmarks/{stage}/{name}.tsv"


def plan(paper: str) -> str:
    """The paper's plan: its runs' folders per experiment and variant (lbgap.products.outputs)."""
    return f"{RESULTS}/{paper}/plan.json"


def prepared(dataset: str, scale: str, ext: str = "pt") -> str:
    """A prepared dataset (.pt) or its manifest (.json)."""
    return f"{PREPARED}/{dataset}_{scale}.{ext}"


def log(stage: str, name: str) -> str:
    """A job's log: logs/<stage>/<name>.log."""
    return f"{LOGS}/{stage}/{name}.log"


def run_log(stage: str, folder: str, suffix: str = "") -> str:
    """The log of a job on a folder of results/ (a run's, an experiment's): the same path
    under logs/<stage>/, e.g. logs/train/<paper>/<experiment>/<variant>/seed<seed>.log."""
    return log(stage, folder.removeprefix(f"{RESULTS}/") + suffix)


# ---------------------------------------------------------------- tables and figures
def report_table(stem: str, ext: str) -> str:
    """A table of reports/tables: a paper's (<paper>_<name>) or the overview's (claims, ...)."""
    return f"{TABLES}/{stem}.{ext}"


def table(paper: str, name: str, ext: str) -> str:
    """A paper's table as CSV (numbers), Markdown (view) or HTML (the report's view)."""
    return report_table(f"{paper}_{name}", ext)


def figure(paper: str, name: str, ext: str) -> str:
    """A paper's figure as PNG or PDF."""
    return f"{FIGURES}/{paper}_{name}.{ext}"


# ---------------------------------------------------------------- analyses of finished runs
def eps_name(eps: float) -> str:
    """eps as it appears in file names: 0.001, 0.0005."""
    return f"{float(eps):g}"


def eps_label(eps: float) -> str:
    """eps as the paper writes it and as table columns name it: 1e-3, 5e-4."""
    mantissa, exponent = f"{float(eps):.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def space_name(subspace_dim: int | None) -> str:
    """full (A = I, Table 3) or sub<p> (a random n x p matrix A, Table 4)."""
    return "full" if subspace_dim is None else f"sub{subspace_dim}"


def subspace_dim(space: str) -> int | None:
    """The inverse of space_name."""
    if space == "full":
        return None
    match = re.fullmatch(r"sub([0-9]+)", space)
    if not match:
        raise ValueError(f"space must be 'full' or 'sub<p>', got {space!r}")
    return int(match.group(1))


def random_starts(settings: dict, space: str) -> int:
    """Random starts of phi's converged estimate in this space: the sharpness settings'
    `random_starts` in the full space, `subspace_random_starts` in a random subspace."""
    return settings["random_starts" if space == "full" else "subspace_random_starts"]


def sharpness(run_dir: str, space: str, eps: float | str) -> str:
    """phi of a run's final weights: eps a number, or the rules' wildcard "{eps}"."""
    name = eps if isinstance(eps, str) and eps.startswith("{") else eps_name(eps)
    return f"{run_dir}/sharpness_{space}_eps{name}.json"


BN_MODES = ("running", "batch")  # the config's bn_eval values, in the bn_modes table's order


def bn_modes(run_dir: str) -> str:
    """Accuracy and phi of a run's final weights in both batch-norm evaluation modes."""
    return f"{run_dir}/bn_modes.json"


def hessian(run_dir: str) -> str:
    return f"{run_dir}/hessian.json"


REPARAMETRIZATION = "reparametrization.json"


def reparametrization(run_dir: str) -> str:
    """Loss, phi, adaptive sharpness (and eigenvalue) of a run's rescaled final weights."""
    return f"{run_dir}/{REPARAMETRIZATION}"


def training_sharpness(run_dir: str) -> str:
    """phi at every saved epoch of a run (sharpness along training)."""
    return f"{run_dir}/sharpness_training.csv"


def parametric(paper: str, experiment: str, seed: int) -> str:
    """The SB-to-LB line of one seed pairing (SB seed s with LB seed s)."""
    return f"{experiment_dir(paper, experiment)}/parametric_seed{seed}.csv"


def parametric_log(paper: str, experiment: str, seed: int | str) -> str:
    return run_log("parametric", experiment_dir(paper, experiment), f"/seed{seed}")
