"""Provenance: what produced these results, so a reviewer can judge and rerun them.

Code (git commit, dirty flag), configuration (file hashes, the effective config, the scale),
software (package, CUDA and cuDNN versions), hardware (this machine; the runs' devices), data
(the prepared datasets' manifests with checksums) and compute (Snakemake's benchmark files
under results/, summed per paper into wall, CPU and GPU hours).

CPU-hours are wall time x the cores of the experiment's allocation (the scale's `threads` x
tasks, also for its analysis jobs); GPU-hours are wall time x the GPUs the run used (its world
size when its device was CUDA, else 0). The measured CPU time (`cpu_time` in the benchmark
file) is shown beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from lbgap.config import layout
from lbgap.config.resources import job_resources
from lbgap.io import read_json, write_text
from lbgap.products import htmlview, outputs
from lbgap.words import plural

PACKAGES = ("torch", "torchvision", "snakemake", "numpy", "scipy", "pandas", "matplotlib")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_hash(config: dict) -> str:
    """Hash of the effective config as canonical JSON (key order and layout do not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- code
def _git(repo: Path, *args: str) -> str | None:
    # GIT_OPTIONAL_LOCKS=0: `git status` then never rewrites the index of a shared checkout.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: Path) -> dict:
    commit = _git(repo, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown (not a git checkout)", "dirty": "unknown"}
    changed = _git(repo, "status", "--porcelain") or ""
    n = len(changed.splitlines())
    return {"commit": commit, "dirty": f"yes ({plural(n, 'file')} changed)" if n else "no"}


# ---------------------------------------------------------------- software and hardware
def versions(snakemake: str | None = None) -> dict:
    """Versions in this job's environment; Snakemake's is the workflow's own when given."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    if snakemake:
        found["snakemake"] = snakemake
    try:
        import torch

        found["CUDA (torch build)"] = torch.version.cuda or "none (CPU build)"
        cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        found["cuDNN"] = str(cudnn) if cudnn else "not used (no GPU)"
    except ImportError:
        pass
    return found


def cpu_model() -> str:
    """The CPU's model name (as /proc/cpuinfo gives it, else what platform knows): the
    provenance and the benchmarks' machine facts both name the machine with it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def hardware() -> dict:
    found = {
        "CPU": f"{cpu_model()} ({plural(os.cpu_count() or 0, 'logical core')})",
        "memory": _memory_gib(),
        "OS": platform.platform(),
    }
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = sorted({torch.cuda.get_device_name(i) for i in range(n)})
        found["GPU"] = f"{n} x {', '.join(names)}" if n else "none"
    except ImportError:
        found["GPU"] = "unknown (no torch)"
    return found


# ---------------------------------------------------------------- runs and compute
def run_dirs(plans: dict) -> list[Path]:
    """The run folders of this matrix (never stale folders from another scale)."""
    return [
        Path(d)
        for plan in plans.values()
        for exp in plan["experiments"].values()
        for variant in exp["variants"].values()
        for d in variant["dirs"]
    ]


def device_label(summary: dict) -> str:
    """How a run computed: "cuda:0 x 8, bf16, channels_last, compile reduce-overhead"."""
    device = str(summary.get("device", "?"))
    parts = [f"{device} x {summary.get('world_size', 1)}"]
    accel = summary.get("acceleration")
    if accel:
        parts.append(accel["amp"])
        if accel["channels_last"]:
            parts.append("channels_last")
        if accel["compile"]:
            parts.append(f"compile {accel['compile']}")
        if device.startswith("cuda") and not accel["deterministic"]:
            parts.append("autotuned (not bit-exact) kernels")
    return ", ".join(parts)


def run_devices(dirs: list[Path]) -> dict[str, str]:
    """How many runs used which device, per paper, from the runs' summary.json."""
    counts: dict[str, dict[str, int]] = {}
    for path in [Path(layout.summary(d)) for d in dirs if Path(layout.summary(d)).exists()]:
        summary = json.loads(path.read_text())
        paper = summary.get("spec", {}).get("paper") or layout.parse_run_dir(path.parent)[0]
        device = device_label(summary)
        counts.setdefault(paper, {}).setdefault(device, 0)
        counts[paper][device] += 1
    return {
        p: "; ".join(f"{n} run{'' if n == 1 else 's'} on {d}" for d, n in sorted(c.items()))
        for p, c in counts.items()
    }


def _allocation(config: dict, paper: str, experiment: str, run_dir: Path | None):
    """(cores, GPUs) of a job: its experiment's training job's cores (the scale's threads x
    processes per node, for its analyses too), and the GPUs of the run's device if known."""
    cores, gpus = 1, 0
    if experiment in config.get("papers", {}).get(paper, {}).get("experiments", {}):
        cores = job_resources(config, paper, experiment)["cpus_per_task"]
    summary = Path(layout.summary(run_dir)) if run_dir else None
    if summary is not None and summary.exists():
        run = json.loads(summary.read_text())
        if str(run.get("device", "cpu")).startswith("cuda"):
            gpus = int(run.get("world_size", 1))
    return cores, gpus


def benchmark_files(dirs: list[Path]) -> list[tuple[Path, Path | None]]:
    """(benchmark file, its run folder or None) for this matrix: every benchmark in or below a
    run folder (training, per-run analyses) and beside them in the experiment's folder
    (analyses across variants)."""
    found = [(p, d) for d in dirs for p in sorted(d.glob(f"**/{layout.BENCHMARK_GLOB}"))]
    for exp_dir in sorted({Path(layout.experiment_dir_of(d)) for d in dirs}):
        found += [(p, None) for p in sorted(exp_dir.glob(layout.BENCHMARK_GLOB))]
    return found


def compute(config: dict, dirs: list[Path]) -> pd.DataFrame:
    """Per paper: benchmarked jobs, wall hours, CPU-hours, GPU-hours, measured CPU time."""
    rows = []
    for path, run_dir in benchmark_files(dirs):
        bench = pd.read_csv(path, sep="\t")
        if "s" not in bench.columns:
            continue
        if run_dir:
            paper, experiment = layout.parse_run_dir(run_dir)[:2]
        else:
            paper, experiment = layout.parse_experiment_dir(path.parent)
        cores, gpus = _allocation(config, paper, experiment, run_dir)
        wall = float(bench["s"].sum())
        cpu = float(pd.to_numeric(bench.get("cpu_time"), errors="coerce").sum())
        rows.append(
            {
                "paper": paper,
                # a preempted job's earlier attempts: their time counts, they are no more jobs
                "jobs": 0 if path.name == layout.EARLIER_ATTEMPTS else 1,
                "wall_h": wall / 3600,
                "cpu_h": wall * cores / 3600,
                "gpu_h": wall * gpus / 3600,
                "cpu_time_h": cpu / 3600,
            }
        )
    columns = ["paper", "jobs", "wall_h", "cpu_h", "gpu_h", "cpu_time_h"]
    if not rows:
        return pd.DataFrame(columns=columns)
    per_paper = pd.DataFrame(rows).groupby("paper", as_index=False).sum()
    per_paper["jobs"] = per_paper["jobs"].astype(int)
    total = per_paper.drop(columns="paper").sum().to_dict() | {"paper": "total"}
    out = pd.concat([per_paper, pd.DataFrame([total])], ignore_index=True)[columns]
    return out.astype({"jobs": int})


# ---------------------------------------------------------------- data
def manifests(paths: list[str]) -> list[dict]:
    out = []
    for path in paths:
        m = json.loads(Path(path).read_text())
        sources = ", ".join(f"{k} sha256 {v}" for k, v in sorted(m.get("source_files", {}).items()))
        out.append(
            {
                "dataset": m.get("dataset", Path(path).stem),
                "manifest": str(path),
                "source": m.get("source", "?"),
                "sizes": f"{m.get('n_train', '?')} train / {m.get('n_test', '?')} test",
                "prepared sha256": m.get("prepared_sha256", "?"),
                "source files": sources or "-",
            }
        )
    return out


# ---------------------------------------------------------------- assembling
def collect(
    config: dict,
    plans: dict,
    configfiles: list[str],
    repo: Path,
    manifest_paths: list[str],
    snakemake: str | None = None,
) -> dict:
    scale = config["scale"]
    dirs = run_dirs(plans)
    sc = config["scales"][scale]
    return {
        "code": git_state(repo),
        "configuration": {
            **{f"config file {f}": f"sha256 {sha256(f)}" for f in configfiles},
            "effective config": f"sha256 {config_hash(config)} (canonical JSON)",
            "scale": scale,
            "scale description": " ".join(str(sc.get("description", "")).split()),
            "seeds": ", ".join(str(s) for s in sc["seeds"]),
            "batch norm at evaluation": config.get("bn_eval", "?"),
        },
        "software": versions(snakemake),
        "hardware (machine that built this report)": hardware(),
        "runs' devices": run_devices(dirs),
        "data": manifests(manifest_paths),
        "compute": compute(config, dirs),
    }


def flat(prov: dict) -> pd.DataFrame:
    """section, item, value: every fact as one CSV row."""
    rows = []
    for section, content in prov.items():
        if isinstance(content, pd.DataFrame):
            for rec in content.to_dict("records"):
                for key, value in rec.items():
                    if key != "paper":
                        rows.append((section, f"{rec['paper']} {key}", value))
        elif isinstance(content, list):
            for rec in content:
                for key, value in rec.items():
                    if key != "dataset":
                        rows.append((section, f"{rec['dataset']} {key}", value))
        else:
            rows += [(section, key, value) for key, value in content.items()]
    return pd.DataFrame(rows, columns=["section", "item", "value"])


def _is_hash(column: str) -> bool:
    return "sha256" in column or column == "source files"


def markdown(prov: dict, config: dict) -> str:
    parts = [f"# Provenance (scale `{config['scale']}`)\n"]
    for section, content in prov.items():
        parts.append(f"## {section[0].upper()}{section[1:]}\n")
        if isinstance(content, pd.DataFrame):
            if content.empty:
                parts.append(f"No benchmark files under {layout.RESULTS}/.\n")
                continue
            parts.append(
                "Training and analysis jobs with a Snakemake benchmark file; CPU-hours = wall x "
                "the experiment's cores (threads x tasks), GPU-hours = wall x GPUs the run used; "
                "cpu_time_h: CPU time measured by Snakemake.\n"
            )
            parts.append(content.to_markdown(index=False, floatfmt=".3f") + "\n")
        elif isinstance(content, list):
            # checksums as code, so that a narrow page may wrap them
            rows = [{k: f"`{v}`" if _is_hash(k) else v for k, v in r.items()} for r in content]
            parts.append((pd.DataFrame(rows).to_markdown(index=False) if rows else "-") + "\n")
        elif content:
            parts.append("\n".join(f"- **{k}**: {v}" for k, v in content.items()) + "\n")
        else:
            parts.append("-\n")
    parts.append("## Effective config\n")
    parts.append("```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record what produced the results.")
    parser.add_argument("--config", required=True, help="the effective config (JSON file)")
    parser.add_argument("--plans", nargs="*", default=[], help="the papers' plan.json")
    parser.add_argument("--configfiles", nargs="*", default=[])
    parser.add_argument("--repo", required=True, help="the workflow's source checkout")
    parser.add_argument("--manifests", nargs="*", default=[])
    parser.add_argument("--snakemake", help="the version of Snakemake that ran the workflow")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--md", required=True)
    parser.add_argument("--html", required=True)
    parser.add_argument("--config-out", required=True, help="the effective config as YAML")
    args = parser.parse_args(argv)
    config = read_json(args.config)
    plans = outputs.read_plans(args.plans)
    prov = collect(config, plans, args.configfiles, Path(args.repo), args.manifests, args.snakemake)
    md = markdown(prov, config)
    write_text(args.csv, flat(prov).to_csv(index=False))
    write_text(args.md, md)
    write_text(args.html, htmlview.page("Provenance", htmlview.markdown_to_html(md)))
    write_text(args.config_out, yaml.safe_dump(config, sort_keys=False))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
