"""Shared fixtures: the repository root, the config, a tiny-scale config for workflow runs."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process training tests run on one thread, as the launcher gives each rank: faster on
    a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shipped_config() -> dict:
    """config.yaml as shipped, seeing no system-installed datasets: the tests' numbers and
    labels then do not depend on the machine (the quick scale's Fashion-MNIST rows fall back to
    the bundled digits, as on a machine without the package; test_default_scale.py covers both)."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["system_datasets"] = False
    return cfg


@pytest.fixture(scope="session")
def repo_config() -> dict:
    return shipped_config()


def tiny_config(config: dict, papers: list[str] | None = None, epochs: int = 2) -> dict:
    """The shipped config shrunk to seconds: 500 digits, 2 seeds, `epochs` epochs."""
    cfg = copy.deepcopy(config)
    cfg["scales"]["quick"].update(train_size=500, test_size=200, seeds=[0, 1])
    if papers is not None:
        cfg["papers"] = {p: cfg["papers"][p] for p in papers}
    for paper in cfg["papers"].values():
        for exp in paper["experiments"].values():
            if isinstance(exp.get("epochs"), dict):
                exp["epochs"] = {**exp["epochs"], "quick": epochs}
    return cfg


def run_snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Snakemake from the repository's Snakefile in `workdir`, killed if it hangs."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = ["timeout", "-s", "KILL", str(timeout), str(VENV_BIN / "snakemake"),
           "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def write_config(workdir: Path, cfg: dict) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def prepared_mnist(tmp_path_factory) -> Path:
    """The bundled digits prepared once at 500/200 samples, shared by the training tests."""
    from lbgap.data.prepare import prepare

    root = tmp_path_factory.mktemp("data")
    out = root / "prepared" / "mnist_quick.pt"
    prepare("mnist", root, out, out.with_suffix(".json"), 500, 200, allow_bundled=True)
    return out


__all__ = ["ROOT", "run_snakemake", "shutil", "tiny_config", "write_config"]
