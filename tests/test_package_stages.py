"""The package follows the pipeline: imports only go down the stages, and planning is torch-free.

config < data < training < analysis < products; the shared helpers at the top (io, words,
progress) belong to no stage and import none. Products read result files, never the training
loop, and the workflow's planning (reading the Snakefile) never imports torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "lbgap"
STAGES = ("config", "data", "training", "analysis", "products")
SHARED = {"io", "words", "progress"}
TORCH_FREE = {"config", "products"}
# Imports torch only to describe the machine (torch build, CUDA, GPUs), never to compute.
TORCH_TO_DESCRIBE = {"lbgap.products.provenance"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def stage_of(module: str) -> int | None:
    """Index of the module's stage; -1 for the shared helpers; None outside lbgap."""
    parts = module.split(".")
    if parts[0] != "lbgap" or len(parts) == 1:
        return None
    if parts[1] in SHARED:
        return -1
    return STAGES.index(parts[1]) if parts[1] in STAGES else None


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_stage_or_is_shared():
    loose = [
        module_name(p)
        for p in modules()
        if p.parent == PACKAGE and p.stem not in SHARED | {"__init__"}
    ]
    assert not loose, f"modules outside the stages {STAGES}: {loose}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: module_name(p))
def test_imports_go_down_the_stages(path):
    own = stage_of(module_name(path))
    own = -1 if own is None else own  # lbgap/__init__.py: the bottom
    upward = sorted(
        m
        for m in imported_modules(path)
        if (theirs := stage_of(m)) is not None and theirs > own and (own >= 0 or theirs >= 0)
    )
    assert not upward, f"{module_name(path)} imports a later stage: {upward}"
    if own >= 0 and STAGES[own] in TORCH_FREE and module_name(path) not in TORCH_TO_DESCRIBE:
        torch = sorted(m for m in imported_modules(path) if m.split(".")[0] == "torch")
        assert not torch, f"{module_name(path)} ({STAGES[own]}) imports {torch}"


def test_the_rule_checks_would_see_an_upward_import(tmp_path):
    """The checker itself: a products import in a config module is an upward import."""
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    from lbgap.products import claims\n")
    ups = sorted(m for m in imported_modules(fake) if (stage_of(m) or 0) > STAGES.index("config"))
    assert ups == ["lbgap.products", "lbgap.products.claims"]


def test_reading_the_snakefile_imports_neither_torch_nor_matplotlib(tmp_path):
    """A dry run of the whole default DAG plans every job without importing torch, or the
    plotting library that only figure jobs need (lbgap.products.figures.Pyplot)."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['snakemake', '-s', {str(ROOT / 'Snakefile')!r}, '-d', {str(tmp_path)!r},"
        f" '--configfile', {str(ROOT / 'config.yaml')!r}, '-n', '--quiet', 'all', '--',"
        " 'reproduce_all']\n"
        "try:\n"
        "    runpy.run_module('snakemake', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print('torch' in sys.modules, 'matplotlib' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False False"
