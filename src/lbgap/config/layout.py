"""Where the analyses of finished runs write their results.

One place for the names, so the Snakemake rules (workflow/rules/analysis.smk) that write these
files and the tables and figures that read them cannot drift apart. No torch import here: the
table and figure jobs load this module too.
"""

from __future__ import annotations

import re


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


def sharpness(run_dir: str, space: str, eps: float) -> str:
    return f"{run_dir}/sharpness_{space}_eps{eps_name(eps)}.json"


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
    return f"results/{paper}/{experiment}/parametric_seed{seed}.csv"
