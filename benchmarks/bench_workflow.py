"""Workflow: time to build the paper-scale DAG, and the quick-scale reproduction with rule shares.

Default (fast, what `make bench` runs): `snakemake -n reproduce_all --config scale=paper` in a
temporary folder (the repository's Snakefile, a copy of config.yaml), repeated; target < 10 s.
`--reproduce` also runs what `make reproduce` runs after set-up
(`snakemake --cores all reproduce_all --config scale=quick`) in a temporary copy of this
checkout without any results (with `--make`: `make setup`, timed apart, then `make reproduce`
itself, the Snakemake report included, in the copy's own new environment), and reports its
wall time (target <= 20 min on 2 cores) and each
rule's share, from the jobs' benchmark files (rules with a `benchmark:` directive) and from
Snakemake's log (every rule, 1-s resolution). `--from-run DIR` reports the shares of a finished
run in DIR instead (its results/**/benchmark.tsv and newest .snakemake/log).
"""

from __future__ import annotations

import datetime
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import _common

from lbgap.config import layout

ROOT = _common.ROOT
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
DAG_TARGET_S = 10.0
REPRODUCE_TARGET_S = 20 * 60  # issue 15: the default reproduction in at most 20 minutes on 2 cores
# Never copied into the throw-away clone: environments, caches and every output of a run.
NOT_COPIED = (".venv", "results", "logs", ".snakemake", "data", ".pytest_cache", ".ruff_cache")


# ---------------------------------------------------------------- the paper-scale DAG
def child_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_dry_run(scale: str, tree: Path = ROOT) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, jobs) of one dry run of reproduce_all in a fresh folder,
    with the Snakefile, config and package of `tree` (this checkout, or --against's)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(tree / "config.yaml", Path(tmp) / "config.yaml")
        cmd = [SNAKEMAKE, "-n", "reproduce_all", "-s", str(tree / "Snakefile"),
               "--directory", tmp, "--configfile", f"{tmp}/config.yaml",
               "--config", f"scale={scale}"]  # fmt: skip
        cpu0, t0 = child_cpu_s(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        wall, cpu = time.perf_counter() - t0, child_cpu_s() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"dry run failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    jobs = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.M)
    return wall, cpu, int(jobs.group(1)) if jobs else -1


def exported(rev: str, into: Path) -> Path:
    """The tree of commit `rev`, as files (its Snakefile imports its own src/, setup.smk)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def bench_dag(repeats: int, against: str | None = None) -> dict:
    """The paper-scale dry run; with `against`, alternated with commit `against`'s, one after
    the other in each round, so the ratio compares the two under the same load."""
    walls, cpus, jobs = [], [], -1
    old = {"wall": [], "cpu": [], "jobs": -1}
    with tempfile.TemporaryDirectory() as tmp:
        other = exported(against, Path(tmp)) if against else None
        for _ in range(repeats):
            wall, cpu, jobs = time_dry_run("paper")
            walls.append(wall)
            cpus.append(cpu)
            if other:
                wall, cpu, old["jobs"] = time_dry_run("paper", other)
                old["wall"].append(wall)
                old["cpu"].append(cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    # Snakemake is one thread: on an idle machine its wall time is its CPU time. When other
    # processes held the cores (CPU < 90% of wall), the CPU time is the estimate load can't skew.
    basis = "cpu" if cpu < 0.9 * wall else "wall"
    seconds = cpu if basis == "cpu" else wall
    met = seconds < DAG_TARGET_S
    print(
        f"paper-scale dry run: {wall:.1f} s wall, {cpu:.1f} s CPU (median of {repeats}; wall "
        f"[{min(walls):.1f}, {max(walls):.1f}]), {jobs} jobs  "
        f"{'met' if met else 'MISSED'} on {basis} (target < {DAG_TARGET_S:.0f} s)",
        flush=True,
    )
    compared = {}
    if against:
        ratio = _common.ratios(cpus if basis == "cpu" else walls, old[basis])
        print(
            f"  against {against}: {statistics.median(old['wall']):.1f} s wall, "
            f"{statistics.median(old['cpu']):.1f} s CPU, {old['jobs']} jobs; this/that "
            f"{ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}] on {basis}",
            flush=True,
        )
        compared = {
            "against": {
                "rev": against,
                "wall_s": _common.spread(old["wall"]),
                "cpu_s": _common.spread(old["cpu"]),
                "jobs": old["jobs"],
                "ratio_this_over_that": ratio,
            }
        }
    return {
        "command": "snakemake -n reproduce_all --config scale=paper",
        **compared,
        "wall_s": _common.spread(walls),
        "cpu_s": _common.spread(cpus),
        "basis": basis,
        "jobs": jobs,
        "target_s": DAG_TARGET_S,
        "met": met,
    }


# ---------------------------------------------------------------- rule shares
def benchmark_patterns(root: Path) -> dict[str, re.Pattern]:
    """Rule name -> regex of its `benchmark:` path, read from the workflow's rule files.

    A path is a string, an f-string or a call of lbgap.config.layout (`layout.benchmark(RUN_DIR,
    "hessian")`), evaluated with the rule files' module-level constants built the same way
    (`RUN_DIR = layout.run_dir("{paper}", ...)`); each {wildcard} becomes one path component.
    """
    texts = [smk.read_text() for smk in sorted((root / "workflow" / "rules").glob("*.smk"))]
    names: dict = {"layout": layout}
    for text in texts:
        for m in re.finditer(r'^([A-Z_][A-Z0-9_]*) = ("[^"]*"|layout\.[^#\n]*)', text, re.M):
            names[m.group(1)] = eval(m.group(2), names)  # the workflow's own text
    patterns = {}
    for text in texts:
        for m in re.finditer(r"^rule (\w+):(.*?)(?=^rule |\Z)", text, re.M | re.S):
            bench = re.search(r"^\s+benchmark:\s*\n?\s*(.+)$", m.group(2), re.M)
            if not bench:
                continue
            path = eval(bench.group(1), dict(names))
            parts = re.split(r"\{[^}]+\}", path)
            patterns[m.group(1)] = re.compile("[^/]+".join(map(re.escape, parts)) + "$")
    return patterns


def shares_from_benchmarks(root: Path) -> dict:
    """Seconds per rule summed over its jobs' benchmark.tsv files, and each rule's share."""
    patterns = benchmark_patterns(root)
    seconds: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    jobs: dict[str, int] = defaultdict(int)
    tops = {pat.pattern.split("/", 1)[0] for pat in patterns.values()}  # e.g. "results"
    files = [
        p for top in sorted(tops) if (root / top).is_dir() for p in (root / top).rglob("*.tsv")
    ]
    for path in files:
        rel = path.relative_to(root).as_posix()
        rule = next((r for r, pat in patterns.items() if pat.match(rel)), None)
        if rule is None:
            continue
        rows = [row.split("\t") for row in path.read_text().splitlines()]
        if len(rows) < 2:
            continue
        record = dict(zip(rows[0], rows[1], strict=False))
        seconds[rule] += float(record["s"])
        cpu[rule] += float(record.get("cpu_time", "nan"))
        jobs[rule] += 1
    total = sum(seconds.values())
    return {
        rule: {
            "jobs": jobs[rule],
            "seconds": s,
            "cpu_seconds": cpu[rule],
            "share": s / total if total else None,
        }
        for rule, s in sorted(seconds.items(), key=lambda kv: -kv[1])
    }


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def shares_from_log(log: Path) -> dict:
    """Per-rule job-seconds from Snakemake's log (job start and finish stamps), and wall time."""
    stamp, started, rule_secs = None, {}, defaultdict(float)
    rule_jobs: dict[str, int] = defaultdict(int)
    first = last = None
    for line in log.read_text().splitlines():
        m = STAMP.match(line.strip())
        if m:
            stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            first, last = first or stamp, stamp
            continue
        if stamp is None:
            continue
        start = re.match(r"^(?:Job (\d+):|\s+jobid: (\d+)$)", line)
        if start:
            started.setdefault(start.group(1) or start.group(2), stamp)
        done = re.match(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", line)
        if done and done.group(1) in started:
            rule_secs[done.group(2)] += (stamp - started[done.group(1)]).total_seconds()
            rule_jobs[done.group(2)] += 1
    total = sum(rule_secs.values())
    wall = (last - first).total_seconds() if first and last else None
    return {
        "log": log.name,
        "wall_s": wall,
        "rules": {
            r: {"jobs": rule_jobs[r], "seconds": s, "share": s / total if total else None}
            for r, s in sorted(rule_secs.items(), key=lambda kv: -kv[1])
        },
    }


def report_run(root: Path) -> dict:
    logs = sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))
    result = {"benchmark_files": shares_from_benchmarks(root)}
    if logs:
        result["log"] = shares_from_log(logs[-1])
    for rule, r in result["benchmark_files"].items():
        print(
            f"  benchmark files {rule:20s} {r['jobs']:4d} jobs {r['seconds']:8.1f} s "
            f"{r['share']:6.1%}"
        )
    for rule, r in result.get("log", {}).get("rules", {}).items():
        print(
            f"  snakemake log   {rule:20s} {r['jobs']:4d} jobs {r['seconds']:8.0f} s "
            f"{r['share']:6.1%}"
        )
    return result


# ---------------------------------------------------------------- the quick reproduction
def clone(dest: Path) -> Path:
    """This checkout's files (committed or not), without environments and outputs."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder).resolve() == ROOT
        skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        if top:
            skip |= {n for n in names if n in NOT_COPIED}
        if Path(folder).resolve() in (ROOT / "reports" / "tables", ROOT / "reports" / "figures"):
            skip |= {n for n in names if n != ".gitkeep"}
        return skip

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    return dest


def run_timed(cmd: list[str], work: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all its processes) of `cmd` run in `work`; stops on failure."""
    cpu0 = child_cpu_s()
    with _common.Timer() as t:
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return t.wall, child_cpu_s() - cpu0


def bench_reproduce(cores: str, keep: Path | None, make: bool) -> dict:
    """The quick reproduction in a fresh copy: Snakemake with this environment, or with `make`
    the user's own commands (`make setup`, timed apart, then `make reproduce`, report included)."""
    tmp = Path(tempfile.mkdtemp(prefix="lbgap-reproduce-"))
    work = clone(tmp / "lbgap")
    env = dict(os.environ)
    setup_s = None
    if make:
        env.pop("VIRTUAL_ENV", None)
        setup_s, _ = run_timed(["make", "setup"], work, env)
        print(f"make setup: {setup_s:.0f} s", flush=True)
        cmd = ["make", "reproduce", f"CORES={cores}"]
        what = "`make reproduce` after `make setup`"
    else:
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        cmd = [SNAKEMAKE, "--cores", cores, "reproduce_all", "--config", "scale=quick"]
        what = "what `make reproduce` runs after set-up, without the report"
    print(f"running `{' '.join(cmd)}` in a fresh copy ({work})", flush=True)
    wall, cpu = run_timed(cmd, work, env)
    cores = os.cpu_count() or 1
    met = wall <= REPRODUCE_TARGET_S
    print(
        f"quick reproduction: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min of all jobs "
        f"(/ {cores} cores = {cpu / cores / 60:.1f} min)  "
        f"{'met' if met else 'MISSED'} (target <= 20 min)",
        flush=True,
    )
    shares = report_run(work)
    if keep:
        shutil.copytree(work, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "command": " ".join(cmd[1:] if not make else cmd) + f" ({what})",
        "setup_s": setup_s,
        "cores": cores,
        "wall_s": wall,
        "cpu_s": cpu,
        # CPU time of every job over the cores: the wall time on an idle machine whose cores
        # stay busy (a lower bound when the DAG leaves a core idle).
        "cpu_s_per_core": cpu / cores,
        "target_s": REPRODUCE_TARGET_S,
        "met": met,
        **shares,
    }


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], "workflow")
    p.add_argument("--repeats", type=int, default=3, help="dry runs of the paper-scale DAG")
    p.add_argument(
        "--against", default=None, help="a commit whose dry run alternates with this one's"
    )
    p.add_argument("--reproduce", action="store_true", help="also run the quick reproduction")
    p.add_argument("--cores", default="all", help="snakemake --cores for --reproduce")
    p.add_argument("--keep", type=Path, default=None, help="copy the reproduction here")
    p.add_argument(
        "--make", action="store_true", help="as a user would: make setup, make reproduce"
    )
    p.add_argument("--from-run", type=Path, default=None, help="shares of a finished run")
    args = p.parse_args(argv)
    machine = _common.machine_info()
    old = _common.load_json(args.out) if args.out.exists() else {}
    payload = {"dag": bench_dag(args.repeats, args.against)}
    if args.reproduce:
        reproduction = bench_reproduce(args.cores, args.keep, args.make)
        payload["reproduce"] = {**reproduction, "measured": machine}
    elif "reproduce" in old:  # keep the last (slow) reproduction's numbers
        payload["reproduce"] = old["reproduce"]
    if args.from_run:
        payload["from_run"] = {"folder": str(args.from_run), **report_run(args.from_run)}
    _common.write_result(args.out, "workflow", payload, machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
