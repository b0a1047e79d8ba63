"""Cluster execution: the SLURM profile, its installer, and the workflow on a real SLURM cluster.

The tests marked `slurm` start a throw-away single-node cluster with an accounting database
(tests/slurm/cluster.py) and run the workflow at a tiny scale with the shipped profile exactly as
a user would (`make slurm-profile`, then `snakemake --profile slurm ...`, no overrides) from a
copy of the repository; one test starts a cluster without accounting, where the run must stop
at once with one line naming the profile key to set. They are skipped when no cluster can start
here (not root, packages missing) unless LBGAP_REQUIRE_SLURM=1 (`make test-slurm`), which makes
that a failure.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS_RULES = ROOT / "workflow" / "rules" / "analysis.smk"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).parent))
from slurm import cluster as slurm_cluster  # noqa: E402

from lbgap.config import slurm_status  # noqa: E402
from lbgap.training import launch  # noqa: E402

# Keskar et al.'s paper with its F1 runs only: on the cluster, the whole review (every rule kind:
# data, training, each analysis, tables, figures, claims, provenance, overview), locally the
# two training runs it is compared with.
RUNS = ("results/keskar2017/F1/SB/seed0", "results/keskar2017/F1/LB/seed0")
TARGETS = [f"{run}/summary.json" for run in RUNS]
REVIEW = "reproduce_all"
ANALYSES = {"sharpness", "training_sharpness", "bn_modes", "hessian", "parametric"}
RULE_KINDS = {"prepare_data", "train", "table", "table_view", "figure", "claims", "provenance",
              "index", *ANALYSES}  # fmt: skip
PREEMPTED = RUNS[1]  # the run of the multi-node test's spec
# Each run is signalled mid-training, one in each of SLURM's ways: the whole job (preemption,
# `scancel --full`: the batch script and every step) and the job steps only (`--signal` before
# a time limit, plain `scancel --signal`).
SIGNALS = {"SB": ["--signal=TERM", "--full"], "LB": ["--signal=TERM"]}
# Fast polling, for the tests beside the shipped profile's own run (not in it).
POLLING = ["--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"]


# ---------------------------------------------------------------- the profiles, no cluster
def load_profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def test_slurm_profile_has_the_documented_keys():
    profile = load_profile("slurm")
    assert profile["executor"] == "slurm"
    assert profile["jobs"] >= 1 and profile["retries"] >= 1 and profile["latency-wait"] >= 1
    resources = profile["default-resources"]
    keys = {"slurm_partition", "slurm_account", "runtime", "mem_mb", "cpus_per_task"}
    assert keys <= set(resources)
    assert "--signal=TERM@" in resources["slurm_extra"]


def test_every_grouped_rule_shares_submissions_one_job_at_a_time():
    """Each rule the workflow groups has its group-components in the profile, and a grouped
    submission runs its jobs one after another (it asks for one job's CPUs)."""
    grouped = set(re.findall(r'group:\s*analysis_group\("(\w+)"\)', ANALYSIS_RULES.read_text()))
    profile = load_profile("slurm")
    components = dict(entry.split("=") for entry in profile["group-components"])
    assert grouped >= ANALYSES and set(components) == grouped
    assert all(int(n) > 1 for n in components.values())
    assert profile["resources"] == ["group_slots=1"]
    assert profile["set-resource-scopes"] == ["group_slots=local"]
    assert profile["default-resources"]["group_slots"] == 1


def test_workflow_profile_never_overrides_a_site_profile():
    """Snakemake lets the workflow profile win over --profile: it must not touch site keys."""
    profile = load_profile("default")
    site_keys = {"executor", "jobs", "default-resources", "cores", "latency-wait"}
    assert not site_keys & set(profile)
    assert "prepare_data" in profile["set-resources"]


def test_local_profile_runs_on_a_laptop():
    profile = load_profile("local")
    assert "executor" not in profile and profile["cores"] == "all"


def fake_slurm(sacct_ok: bool, min_job_age: int):
    """subprocess.run for sacct and `scontrol show config`, with or without accounting."""

    def run(cmd, **_):
        if cmd[0] == "sacct":
            err = "" if sacct_ok else "sacct: error: Slurm accounting storage is disabled\n"
            return subprocess.CompletedProcess(cmd, 0 if sacct_ok else 1, "", err)
        out = f"MaxJobCount = 10000\nMinJobAge               = {min_job_age} sec\n"
        return subprocess.CompletedProcess(cmd, 0, out, "")

    return run


def test_status_check_names_the_profile_key_when_sacct_fails():
    line = slurm_status.problem(None, 40, fake_slurm(False, 300))  # the plugin's default: sacct
    assert "slurm-status-command: squeue" in line and "accounting storage is disabled" in line
    assert "\n" not in line
    assert slurm_status.problem(None, 40, fake_slurm(True, 300)) is None
    assert slurm_status.problem("squeue", 40, fake_slurm(False, 300)) is None


def test_status_check_sees_the_plugin_go_back_to_sacct():
    """With squeue but MinJobAge under 3 x the first check's delay the plugin uses sacct."""
    line = slurm_status.problem("squeue", 40, fake_slurm(False, 60))
    assert "slurm-init-seconds-before-status-checks: 20" in line
    assert slurm_status.problem("squeue", 40, fake_slurm(True, 60)) is None


# ---------------------------------------------------------------- every attempt's benchmark
def attempt_starts(log: Path, earlier: Path, start: float, end: float) -> str:
    """One attempt as the train rule runs it: its start line appended to the log, which it
    last writes at `end`."""
    line = launch.record_attempt(log, earlier, start)
    with log.open("a") as out:
        out.write(line + "\nepoch 1/20 ...\n")
    os.utime(log, (end, end))
    return line


def test_each_retry_records_the_attempt_before_it(tmp_path):
    """Snakemake's benchmark has only the attempt that succeeded: the earlier attempts' rows
    (start to the log's last write) go beside it, in its columns."""
    log, earlier = tmp_path / "seed0.log", tmp_path / "benchmark_earlier_attempts.tsv"
    earlier.write_text("left from an older run\n")
    log.write_text("")
    first = attempt_starts(log, earlier, 1000.0, 1030.5)
    assert first.startswith("launch: attempt 1 started at") and not earlier.exists()
    second = attempt_starts(log, earlier, 1040.0, 1100.0)
    assert second.startswith("launch: attempt 2 started")
    attempt_starts(log, earlier, 1110.0, 1200.0)
    rows = pd.read_csv(earlier, sep="\t")
    assert rows["s"].tolist() == [30.5, 60.0] and rows["attempt"].tolist() == [1, 2]
    assert rows["h:m:s"].tolist() == ["0:00:30", "0:01:00"]
    snakemakes = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
    last = pd.read_csv(
        io.StringIO(snakemakes + "\n90.1\t0:01:30\t1\t2\t3\t4\t5\t6\t7\t8\n"), sep="\t"
    )
    assert list(rows.columns[: len(last.columns)]) == list(last.columns)
    assert pd.concat([rows, last])["s"].sum() == pytest.approx(180.6)


def test_a_fresh_log_starts_the_record_afresh(tmp_path):
    """The train rule empties the log when the run starts over (no state.pt): so do the rows."""
    log, earlier = tmp_path / "seed0.log", tmp_path / "benchmark_earlier_attempts.tsv"
    log.write_text("")
    attempt_starts(log, earlier, 1000.0, 1010.0)
    attempt_starts(log, earlier, 1020.0, 1030.0)
    assert len(pd.read_csv(earlier, sep="\t")) == 1
    log.write_text("")  # `: > {log}.attempts`
    assert launch.record_attempt(log, earlier, 2000.0).startswith("launch: attempt 1 ")
    assert not earlier.exists()


# ---------------------------------------------------------------- make slurm-profile
def install(tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "user"),
           "XDG_CONFIG_DIRS": str(tmp_path / "site")}  # fmt: skip
    cmd = ["make", "-s", "-C", str(ROOT), "slurm-profile"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_make_slurm_profile_links_and_is_idempotent(tmp_path):
    link = tmp_path / "user" / "snakemake" / "slurm"
    first = install(tmp_path)
    assert first.returncode == 0, first.stderr
    assert link.is_symlink() and link.resolve() == (ROOT / "profiles" / "slurm").resolve()
    second = install(tmp_path)
    assert second.returncode == 0 and "already installed" in second.stdout
    assert link.resolve() == (ROOT / "profiles" / "slurm").resolve()


@pytest.mark.parametrize("where", ["user", "user-link", "site"])
def test_make_slurm_profile_keeps_an_existing_profile(tmp_path, where):
    base = tmp_path / ("site" if where == "site" else "user") / "snakemake"
    base.mkdir(parents=True)
    theirs = base / "slurm"
    if where == "user-link":
        (tmp_path / "elsewhere").mkdir()
        theirs.symlink_to(tmp_path / "elsewhere")
    else:
        theirs.mkdir()
        (theirs / "config.yaml").write_text("executor: slurm\n")
    out = install(tmp_path)
    assert out.returncode == 0, out.stderr
    assert str(theirs) in out.stdout and "slurm_extra" in out.stdout  # says what to merge
    if where == "user-link":
        assert theirs.resolve() == (tmp_path / "elsewhere").resolve()
    else:
        assert (theirs / "config.yaml").read_text() == "executor: slurm\n"
    if where == "site":
        assert not (tmp_path / "user" / "snakemake" / "slurm").exists()


# ---------------------------------------------------------------- a real cluster
def start_cluster(workdir: Path, accounting: bool) -> slurm_cluster.Cluster:
    try:
        slurm_cluster.check_machine(accounting)
        return slurm_cluster.start(workdir, accounting=accounting)
    except slurm_cluster.ClusterUnavailable as why:
        if os.environ.get("LBGAP_REQUIRE_SLURM") == "1":
            pytest.fail(f"no SLURM test cluster: {why}")
        pytest.skip(f"no SLURM test cluster: {why}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster with accounting (`sacct` works), stopped (by process id)
    after the module's tests."""
    started = start_cluster(tmp_path_factory.mktemp("cluster"), accounting=True)
    yield started
    slurm_cluster.stop(started)


def copy_repo(dst: Path) -> Path:
    """The working tree as git would commit it (no venv, results, data, logs)."""
    cmd = ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(cmd, capture_output=True)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.decode().split("\0")):
            if (ROOT / name).is_file():
                (dst / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, dst / name)
        return dst
    skip = shutil.ignore_patterns(  # no git: the tree without what .gitignore lists
        ".git", ".venv", "results", "data", "logs", ".snakemake", "__pycache__", "*_cache"
    )
    shutil.copytree(ROOT, dst, ignore=skip, dirs_exist_ok=True)
    for old in (dst / "reports").rglob("*"):
        if old.is_file() and old.name != ".gitkeep":
            old.unlink()
    return dst


def tiny_config(config: dict) -> dict:
    """Keskar et al.'s paper with F1 only, one seed, 500 digits, 20 short epochs, on CPU; its
    analyses at one eps, with the rehearsal's few iterations, probes and points."""
    config["device"] = "cpu"
    config["system_datasets"] = False  # the same data on every machine
    keskar = config["papers"]["keskar2017"]
    config["papers"] = {"keskar2017": keskar}
    keskar["experiments"] = {"F1": keskar["experiments"]["F1"]}
    f1 = keskar["experiments"]["F1"]
    f1["epochs"] = {**f1["epochs"], "quick": 20}
    analysis = keskar["analysis"]
    analysis["sharpness"]["eps"] = [analysis["sharpness"]["figure_eps"]]
    for section, key in [("sharpness", "max_iter"), ("sharpness", "converge_max_iter"),
                         ("hessian", "hutchinson_samples"), ("parametric", "points")]:  # fmt: skip
        analysis[section][key]["quick"] = analysis[section][key]["rehearsal"]
    config["scales"]["quick"].update(
        train_size=500, test_size=200, seeds=[0], mem_mb=1000, runtime=10, threads=1
    )
    return config


def make_workdir(base: Path) -> Path:
    work = copy_repo(base)
    config = yaml.safe_load((work / "config.yaml").read_text())
    (work / "config.yaml").write_text(yaml.safe_dump(tiny_config(config), sort_keys=False))
    return work


def env_for(tmp: Path) -> dict:
    """The venv first on PATH (jobs inherit it), configuration folders of our own."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "XDG_CONFIG_HOME": str(tmp / "xdg-user"),
        "XDG_CONFIG_DIRS": str(tmp / "xdg-site"),
    }


def snakemake(work: Path, env: dict, *args: str, timeout: int = 400) -> subprocess.Popen:
    """Snakemake in `work`, output to work/snakemake.out, killed if it hangs."""
    log = (work / "snakemake.out").open("w")
    cmd = ["timeout", "-s", "KILL", str(timeout), "snakemake", *args]
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def train_log(variant: str) -> str:
    return f"logs/train/keskar2017/F1/{variant}/seed0.log"


def preempt_when_training(work: Path, proc: subprocess.Popen) -> dict[str, str]:
    """SIGTERM each run's job once it has trained an epoch, in the way SIGNALS gives. Returns
    the job id signalled per variant."""
    signalled: dict[str, str] = {}
    while proc.poll() is None and len(signalled) < len(SIGNALS):
        for variant, how in SIGNALS.items():
            log = work / train_log(variant)
            if variant in signalled or not log.exists() or "epoch 1/" not in log.read_text():
                continue
            jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True)
            for line in jobs.stdout.splitlines():
                job_id, _, comment = line.partition(" ")
                if f"keskar2017_F1_{variant}_0" in comment:
                    subprocess.run(["scancel", *how, job_id], check=True)
                    signalled[variant] = job_id
        time.sleep(0.1)
    return signalled


@dataclass
class Runs:
    slurm: Path
    local: Path
    slurm_out: str
    local_out: str
    preempted_jobs: dict[str, str]
    seconds: dict[str, float]  # wall seconds per side, both started together


def install_profile(work: Path, env: dict) -> None:
    """`make slurm-profile`, nothing edited: the test cluster's partition is its default."""
    cmd = ["make", "-s", "slurm-profile"]
    installed = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stdout + installed.stderr


@pytest.mark.slurm
def test_without_accounting_the_run_stops_with_one_line(tmp_path):
    """No accounting database: `sacct` fails, and the plugin would drop every job unseen and
    wait forever. The run stops before submitting anything, naming the profile key to set."""
    bare = start_cluster(tmp_path / "cluster", accounting=False)
    try:
        work = make_workdir(tmp_path / "repo")
        env = env_for(tmp_path)
        install_profile(work, env)
        proc = snakemake(work, env, "--profile", "slurm", TARGETS[0], timeout=120)
        proc.wait()
    finally:
        slurm_cluster.stop(bare)
    out = (work / "snakemake.out").read_text()
    assert proc.returncode not in (0, -9), out[-3000:]  # stopped, not killed by the timeout
    lines = [line for line in out.splitlines() if "slurm-status-command: squeue" in line]
    assert len(lines) == 1 and "sacct does not work" in lines[0], out[-3000:]
    assert "SLURM jobid" not in out


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory) -> Runs:
    """The tiny review on the cluster (both training jobs preempted) and, meanwhile, its
    training runs locally."""
    tmp = tmp_path_factory.mktemp("runs")
    slurm_dir, local_dir = make_workdir(tmp / "slurm"), make_workdir(tmp / "local")
    env = env_for(tmp)
    install_profile(slurm_dir, env)
    start = time.monotonic()
    # The shipped profile as it is: no partition (the cluster's default), no overrides.
    on_slurm = snakemake(slurm_dir, env, "--profile", "slurm", REVIEW, timeout=900)
    local = snakemake(local_dir, env, "--profile", "profiles/local", *TARGETS)
    try:
        jobs = preempt_when_training(slurm_dir, on_slurm)
        seconds = {}
        while len(seconds) < 2:
            for side, proc in (("slurm", on_slurm), ("local", local)):
                if side not in seconds and proc.poll() is not None:
                    seconds[side] = time.monotonic() - start
            time.sleep(0.2)
    finally:
        for proc in (on_slurm, local):
            if proc.poll() is None:
                proc.kill()
    slurm_out, local_out = ((d / "snakemake.out").read_text() for d in (slurm_dir, local_dir))
    assert on_slurm.returncode == 0, slurm_out[-5000:]
    assert local.returncode == 0, local_out[-5000:]
    return Runs(slurm_dir, local_dir, slurm_out, local_out, jobs, seconds)


def result_files(work: Path) -> list[Path]:
    results = work / "results"
    return sorted(p.relative_to(work) for p in results.rglob("*") if p.is_file())


def finished_rules(out: str) -> list[str]:
    """The rule of every job Snakemake reports finished (a group's jobs each once)."""
    return re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)$", out, re.MULTILINE)


def assert_same_weights(a: Path, b: Path) -> None:
    wa = torch.load(a, weights_only=True)["model"]
    wb = torch.load(b, weights_only=True)["model"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), a


def assert_same_metrics(a: Path, b: Path) -> None:
    """Equal to the last bit, except the wall-clock column."""
    pd.testing.assert_frame_equal(
        pd.read_csv(a).drop(columns="train_time_s"),
        pd.read_csv(b).drop(columns="train_time_s"),
        check_exact=True,
    )


@pytest.mark.slurm
def test_workflow_on_slurm_equals_local_run(runs):
    assert "Using profiles slurm and workflow specific profile" in runs.slurm_out
    assert "SLURM jobid" in runs.slurm_out and "SLURM jobid" not in runs.local_out
    files = result_files(runs.local)  # the training runs, on the cluster among the review's
    assert files and set(files) <= set(result_files(runs.slurm))
    for path in files:
        a, b = runs.slurm / path, runs.local / path
        if path.name == "metrics.csv":
            assert_same_metrics(a, b)
        elif path.name == "steps.csv":
            assert a.read_text() == b.read_text(), path
        elif path.suffix == ".pt":
            assert_same_weights(a, b)
    print(f"SLURM run {runs.seconds['slurm']:.0f} s, local training {runs.seconds['local']:.0f} s")


@pytest.mark.slurm
def test_every_rule_kind_ran_and_short_analyses_shared_submissions(runs):
    """The review through the shipped profile: every kind of rule ran, the analyses in grouped
    submissions (several jobs each), the tables, figures and overview on the login node."""
    finished = finished_rules(runs.slurm_out)
    assert RULE_KINDS <= set(finished), sorted(RULE_KINDS - set(finished))
    analyses = sum(rule in ANALYSES for rule in finished)
    groups = re.findall(r"SLURM jobid \d+ \(log: \S+/group_\w+/", runs.slurm_out)
    assert groups and len(groups) < analyses, (len(groups), analyses)
    assert "/rule_table/" not in runs.slurm_out and "/rule_figure/" not in runs.slurm_out
    assert (runs.slurm / "reports" / "index.html").exists()
    claims = pd.read_csv(runs.slurm / "reports" / "tables" / "claims.csv").set_index("claim")
    assert not claims.loc["keskar2017-sharpness", "verdict"].startswith("not run")  # both phis


@pytest.mark.slurm
def test_the_literal_command_finds_the_installed_profile(runs):
    """`snakemake --profile slurm reproduce_all` from the repository root (dry run: the paper's
    analyses take longer than a test may)."""
    cmd = ["timeout", "-s", "KILL", "120", "snakemake", "--profile", "slurm", "reproduce_all", "-n"]
    env = env_for(runs.slurm.parent)
    out = subprocess.run(cmd, cwd=runs.slurm, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Using profiles slurm and workflow specific profile" in out.stderr + out.stdout


@pytest.mark.slurm
def test_every_training_job_has_a_benchmark(runs):
    summaries = list((runs.slurm / "results").rglob("summary.json"))
    assert summaries
    for summary in summaries:
        bench = pd.read_csv(summary.parent / "benchmark.tsv", sep="\t")
        assert bench["s"].iloc[0] > 0


@pytest.mark.slurm
@pytest.mark.parametrize("variant", list(SIGNALS))
def test_preempted_job_resumed_from_its_checkpoint(runs, variant):
    """Signalled either way, the run checkpoints; the retry appends to the same log and
    resumes (no retrain from epoch 1); both attempts' times are on record."""
    assert variant in runs.preempted_jobs, f"the {variant} job finished before it was signalled"
    log = (runs.slurm / train_log(variant)).read_text()
    assert "signal 15: checkpointing" in log, log[-3000:]
    assert "resumed from" in log.split("signal 15: checkpointing", 1)[1], log[-3000:]
    assert "forcing job termination" not in log
    run = runs.slurm / f"results/keskar2017/F1/{variant}/seed0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 20
    assert not (run / "state.pt").exists()
    earlier = pd.read_csv(run / "benchmark_earlier_attempts.tsv", sep="\t")
    attempts = pd.concat([earlier, pd.read_csv(run / "benchmark.tsv", sep="\t")])
    assert len(attempts) == 2 and earlier["attempt"].tolist() == [1], attempts
    assert (attempts["s"] > 0).all()


@pytest.mark.slurm
def test_job_asking_for_a_gpu_fails_with_slurms_message(cluster, runs, tmp_path):
    work = make_workdir(tmp_path / "gpu")
    shutil.copytree(runs.slurm / "data" / "prepared", work / "data" / "prepared")
    gpu = yaml.safe_dump({"device": "auto", "scales": {"quick": {"gpus": 1}}})
    (work / "gpu.yaml").write_text(gpu)
    target = "results/keskar2017/F1/SB/seed0/summary.json"
    args = ["--profile", "profiles/slurm", target, "--configfile", "gpu.yaml", *POLLING]
    proc = snakemake(work, env_for(tmp_path), *args, timeout=120)
    proc.wait()
    out = (work / "snakemake.out").read_text()
    assert proc.returncode != 0
    assert "Invalid generic resource (gres) specification" in out, out[-3000:]
    # Only the inputs written as the Snakefile is read: specs, plans, the effective config.
    read_inputs = {"spec.json", "plan.json", "config.effective.json", "index_products.json"}
    assert [p for p in result_files(work) if p.name not in read_inputs] == []


def job_script(path: Path, launch: list[str]) -> Path:
    """What the plugin does with a job that has the `mpi` resource (the train rule's on several
    nodes): the command in the batch script, SLURM_* variables cleared but the job id."""
    keep = "SLURM_JOB_ID|SLURM_JOBID|SLURM_CLUSTER_NAME|SLURM_SUBMIT_DIR|SLURM_SUBMIT_HOST"
    path.write_text(
        "#!/bin/sh\n"
        "for v in $(env | sed -n 's/^\\(SLURM_[A-Z0-9_]*\\)=.*/\\1/p'); do\n"
        f"  case $v in {keep}) ;; *) unset $v ;; esac\n"
        "done\n"
        f"exec {shlex.join(launch)}\n"
    )
    return path


def wait_for_job(job_id: str, seconds: float = 300) -> str:
    """The job's final state (the test cluster keeps finished jobs for 10 minutes)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        cmd = ["scontrol", "-o", "show", "job", job_id]
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        state = next((f.split("=")[1] for f in out.split() if f.startswith("JobState=")), "")
        if state and state not in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING"):
            return state
        time.sleep(0.5)
    return "still running after the test's wait"


def submit(script: Path, out: Path, env: dict) -> str:
    """sbatch a 2-CPU job; its job id."""
    cmd = ["sbatch", "--parsable", "-n1", "-c2", "--mem", "1000", "-o", str(out), str(script)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.strip()


def signal_when(job_id: str, out: Path, line: str, seconds: float = 300) -> bool:
    """SIGTERM the job's steps (as before a time limit) once its output shows `line`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if out.exists() and line in out.read_text():
            subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slurm
def test_two_gloo_ranks_in_a_job_preempted_equal_a_local_run(cluster, runs, tmp_path):
    """torchrun with 2 CPU processes in a SLURM job, through the multi-node path (the batch
    script's srun with one task per node, c10d rendezvous at the first node): signalled mid-run
    as before a time limit, resumed by a second job, it ends like an uninterrupted local run."""
    spec = json.loads((runs.slurm / PREEMPTED / "summary.json").read_text())["spec"]
    spec["schedule"]["epochs"] = 8
    spec["data"] = str(runs.slurm / spec["data"])
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    args = ["--nproc-per-node", "2", "--threads", "1", "--", "--spec", str(tmp_path / "spec.json")]
    launch = [sys.executable, "-m", "lbgap.training.launch", "--rendezvous", "c10d", *args]
    script = job_script(tmp_path / "job.sh", [*launch, "--out", str(tmp_path / "in_job")])
    env = env_for(tmp_path)
    local_cmd = [
        sys.executable,
        "-m",
        "lbgap.training.launch",
        *args,
        "--out",
        str(tmp_path / "local"),
    ]
    with (tmp_path / "local.out").open("w") as log:
        local = subprocess.Popen(local_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    first = submit(script, tmp_path / "first.out", env)
    assert signal_when(first, tmp_path / "first.out", "epoch 1/")
    first_state, first_out = wait_for_job(first), (tmp_path / "first.out").read_text()
    assert first_state != "COMPLETED", first_out[-3000:]
    assert "srun --overlap" in first_out and "--rdzv-backend=c10d" in first_out
    assert (tmp_path / "in_job" / "state.pt").exists()
    second = submit(script, tmp_path / "second.out", env)
    second_state, second_out = wait_for_job(second), (tmp_path / "second.out").read_text()
    assert second_state == "COMPLETED" and "resumed from" in second_out, second_out[-3000:]
    assert local.wait(timeout=300) == 0, (tmp_path / "local.out").read_text()[-3000:]
    a, b = tmp_path / "in_job", tmp_path / "local"
    assert_same_metrics(a / "metrics.csv", b / "metrics.csv")
    assert_same_weights(a / "checkpoint.pt", b / "checkpoint.pt")
    assert json.loads((a / "summary.json").read_text())["world_size"] == 2


@pytest.mark.slurm
def test_part_of_the_rehearsal_runs_through_the_shipped_profile(cluster, tmp_path):
    """The pre-flight check a user runs on a new cluster, in part: stand-ins written by a job,
    the ImageNet stream on 2 gloo ranks (AlexNet), and a convolutional network's sharpness."""
    work = copy_repo(tmp_path / "repo")
    env = env_for(tmp_path)
    install_profile(work, env)
    targets = [
        "results/hoffer2017/AlexNet_8192/LB/seed0/summary.json",
        "results/keskar2017/C1/LB/seed0/sharpness_full_eps0.001.json",
    ]
    config = ["--config", "scale=rehearsal", "device=cpu"]
    small = ["--set-resources", "prepare_data:mem_mb=1000"]
    proc = snakemake(work, env, "--profile", "slurm", *targets, *config, *POLLING, *small)
    proc.wait()
    out = (work / "snakemake.out").read_text()
    assert proc.returncode == 0, out[-5000:]
    rehearsal = work / "rehearsal"  # the rehearsal's own folder, apart from real results
    summary = json.loads((rehearsal / targets[0]).read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    assert json.loads((rehearsal / targets[1]).read_text())["phi"] >= 0
    assert not (work / "results").exists()
