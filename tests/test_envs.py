"""The install: one conda environment, a lock, Python 3.11 to 3.13, and what lbgap imports.

The real installs with another Python (minutes, gigabytes) are marked `install` and run by
`make test-install`; the rest reads files and takes milliseconds.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest
import yaml
from conftest import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEPS = {canonicalize_name(r.name): r for r in map(Requirement, PROJECT["dependencies"])}
SUPPORTED = ["3.11", "3.12", "3.13"]
# Declared but not imported by src/lbgap: the workflow engine, its SLURM executor and what
# pandas' to_markdown needs.
INDIRECT = {"snakemake", "snakemake-executor-plugin-slurm", "tabulate"}


def locked() -> dict[str, Version]:
    """requirements.lock's pins for this machine (its markers evaluated here)."""
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if spec := line.split("#")[0].strip():
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate():
                pins[canonicalize_name(req.name)] = Version(next(iter(req.specifier)).version)
    return pins


def test_one_conda_environment_with_the_pins_of_pyproject():
    assert [p.name for p in (ROOT / "envs").glob("*.yaml")] == ["lbgap.yaml"]
    spec = yaml.safe_load((ROOT / "envs/lbgap.yaml").read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(PROJECT["dependencies"])
    python = next(d for d in spec["dependencies"] if str(d).startswith("python="))
    assert python.removeprefix("python=") in SUPPORTED
    assert "envs/lbgap.yaml" in (ROOT / "README.md").read_text()


def test_every_rule_uses_the_one_environment():
    rules = "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))
    assert set(re.findall(r'"\.\./\.\./envs/([a-z_]+)\.yaml"', rules)) == {"lbgap"}


def test_python_3_11_to_3_13_are_declared_and_accepted_by_the_setup_script():
    allowed = Requirement(f"x{PROJECT['requires-python']}").specifier
    assert [v for v in ["3.10", *SUPPORTED, "3.14"] if allowed.contains(f"{v}.0")] == SUPPORTED
    classifiers = {c.rsplit(" ", 1)[-1] for c in PROJECT["classifiers"] if "Python :: 3." in c}
    assert sorted(classifiers) == SUPPORTED
    script = (ROOT / "scripts/setup_venv.sh").read_text()
    assert "(3, 11) <= sys.version_info[:2] <= (3, 13)" in script


def test_setup_script_refuses_another_python(tmp_path):
    fake = tmp_path / "python3.10"  # answers like a Python 3.10 would
    fake.write_text('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.10.12" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "VENV": str(tmp_path / "venv")}
    out = subprocess.run([ROOT / "scripts/setup_venv.sh"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "Python 3.10.12" in out.stderr, out.stderr
    assert not (tmp_path / "venv").exists()


def test_lock_holds_every_dependency_at_its_pin():
    pins = locked()
    extras = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
    for req in [*DEPS.values(), *extras]:
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name]), f"{name}: lock has {pins[name]}, not {req}"
    assert "requirements.lock" in (ROOT / "scripts/setup_venv.sh").read_text()


def third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in src/lbgap that are neither stdlib nor lbgap."""
    found = set()
    for path in (ROOT / "src/lbgap").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"lbgap", "__future__"}


def test_what_lbgap_imports_is_declared_and_what_is_declared_is_used():
    dists = packages_distributions()
    imported = {canonicalize_name(dists[m][0]) for m in third_party_imports()}
    assert imported - set(DEPS) == set(), "imported but not declared in pyproject.toml"
    assert set(DEPS) - imported - INDIRECT == set(), "declared but never imported"


# ---------------------------------------------------------------- real installs (slow)
def interpreter(version: str) -> str | None:
    """A working python<version>: on PATH, or one that pyenv has installed."""
    for candidate in [shutil.which(f"python{version}"), None]:
        if candidate is None and shutil.which("pyenv"):
            prefix = subprocess.run(["pyenv", "prefix", version], capture_output=True, text=True)
            candidate = f"{prefix.stdout.strip()}/bin/python{version}"
        if candidate and subprocess.run([candidate, "-V"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.install
@pytest.mark.parametrize("version", [v for v in SUPPORTED if v != "3.11"])
def test_setup_installs_and_imports_with(version, tmp_path):
    python = interpreter(version)
    if python is None:
        if os.environ.get("LBGAP_REQUIRE_PYTHONS"):
            pytest.fail(f"no Python {version} here")
        pytest.skip(f"no Python {version} here")
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": python, "VENV": str(venv)}
    out = subprocess.run([ROOT / "scripts/setup_venv.sh"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    modules = [p.stem for p in (ROOT / "src/lbgap").glob("*.py") if p.stem != "__init__"]
    code = "import importlib, sys; [importlib.import_module('lbgap.' + m) for m in sys.argv[1:]]"
    out = subprocess.run([venv / "bin/python", "-c", code, *modules], capture_output=True)
    assert out.returncode == 0, out.stderr[-3000:]
