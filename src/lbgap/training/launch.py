"""Start a training job under torchrun: standalone on one machine, c10d rendezvous across nodes.

One process per GPU (NCCL) or `--nproc-per-node` processes on CPU (gloo). A job on several
nodes of a SLURM allocation starts one torchrun per node with `srun` (one task per node); the
torchruns meet at the allocation's first node (c10d rendezvous) and the world size is
nodes x processes per node. The launcher replaces itself with torchrun (exec), so the signals
SLURM sends before a time limit reach torchrun, which passes them on to the training
processes; those checkpoint and exit, and a rerun resumes.

No srun may stand between SLURM's SIGTERM and the training processes: srun answers SIGTERM
(which preemption and `scancel --full` send to every process of the job) by killing its tasks at
once, before they can checkpoint. So every training job carries the `mpi` resource, with which
the SLURM plugin runs the job's command in the batch script instead of in an `srun` step. On one
node the launcher then starts a relay in a job step of its own (`--relay-to`): signals sent to
job steps only (`--signal=TERM@180` before a time limit, `scancel --signal=TERM`) reach it and it
passes them on to the training process.

Environment read: SLURM_JOB_ID, SLURM_JOB_NODELIST, SLURM_JOB_NUM_NODES (set by SLURM; the
plugin removes the last two, then they come from squeue), SLURM_STEP_ID (a warning if set on
several nodes), LBGAP_RDZV_PORT (the rendezvous port, default 29500 + job id mod 1000). Set:
OMP_NUM_THREADS (--threads) and TORCHELASTIC_SIGNALS_TO_HANDLE (SIGUSR1 added to the default
SIGTERM, SIGINT, SIGHUP, SIGQUIT). torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT for lbgap.training.train.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


def allocation(env: Mapping[str, str]) -> tuple[str, int]:
    """The job's node list and node count, from the environment or else from squeue."""
    if env.get("SLURM_JOB_NODELIST") and env.get("SLURM_JOB_NUM_NODES"):
        return env["SLURM_JOB_NODELIST"], int(env["SLURM_JOB_NUM_NODES"])
    cmd = ["squeue", "-h", "-j", env["SLURM_JOB_ID"], "-o", "%N %D"]
    nodelist, count = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return nodelist, int(count)


def first_node(nodelist: str) -> str:
    """The rendezvous host: the first node of the allocation."""
    cmd = ["scontrol", "show", "hostnames", nodelist]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[0]


def rdzv_port(env: Mapping[str, str]) -> int:
    """A port per job, so two jobs sharing a first node do not meet each other."""
    if env.get("LBGAP_RDZV_PORT"):
        return int(env["LBGAP_RDZV_PORT"])
    return 29500 + int(env.get("SLURM_JOB_ID", "0")) % 1000


def check_nodes(requested: int, allocated: int) -> None:
    """The job must have the nodes the run was planned for (the world size depends on it)."""
    if allocated != requested:
        raise SystemExit(
            f"launch: the allocation has {allocated} node(s) but the run asks for {requested}; "
            "check the job's `nodes` resource"
        )


def torchrun_command(
    nproc: int, nnodes: int, train_args: list[str], endpoint: str | None, run_id: str
) -> list[str]:
    """torchrun's command line: standalone without an endpoint, else c10d at `endpoint`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if endpoint is None:
        cmd += ["--standalone"]
    else:
        cmd += [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={run_id}",
        ]
    return cmd + ["-m", "lbgap.training.train", *train_args]


def srun_command(nnodes: int, cpus_per_node: int) -> list[str]:
    """One torchrun per node; `--overlap` lets it share a step's resources when run from one."""
    return [
        "srun",
        "--overlap",
        f"--nodes={nnodes}",
        f"--ntasks={nnodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={cpus_per_node}",
        "--kill-on-bad-exit=1",
    ]


def command(args: argparse.Namespace, env: Mapping[str, str]) -> list[str]:
    """The full command: torchrun alone, or srun starting one torchrun per node."""
    rendezvous = args.rendezvous
    if rendezvous == "auto":
        rendezvous = "c10d" if args.nodes > 1 else "standalone"
    if rendezvous == "standalone":
        if args.nodes > 1:
            raise SystemExit("launch: several nodes need the c10d rendezvous")
        if args.nproc_per_node == 1:
            # One process needs no rendezvous: skip torchrun's agent (one torch import less per
            # job, seconds that add up over a matrix of short runs). Same code path, world 1.
            return [sys.executable, "-m", "lbgap.training.train", *args.train_args]
        return torchrun_command(args.nproc_per_node, 1, args.train_args, None, "")
    if "SLURM_JOB_ID" not in env:
        raise SystemExit(
            "launch: several nodes are started with srun inside a SLURM job; "
            "outside SLURM, run torchrun on each node yourself"
        )
    nodelist, nnodes = allocation(env)
    check_nodes(args.nodes, nnodes)
    if "SLURM_STEP_ID" in env and nnodes > 1:
        print("launch: warning: inside a job step a SIGTERM ends the run unsaved", flush=True)
    endpoint = f"{first_node(nodelist)}:{rdzv_port(env)}"
    torchrun = torchrun_command(
        args.nproc_per_node, nnodes, args.train_args, endpoint, f"lbgap{env['SLURM_JOB_ID']}"
    )
    return srun_command(nnodes, args.threads * args.nproc_per_node) + torchrun


RELAYED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP)


def relay_command(pid: int) -> list[str]:
    """A one-task step beside the batch script, sharing its CPU: the relay to `pid`."""
    step = ["srun", "--overlap", "--quiet", "--nodes=1", "--ntasks=1", "--cpus-per-task=1"]
    return [*step, "--mem=0", sys.executable, "-m", "lbgap.training.launch", "--relay-to", str(pid)]


def relay(pid: int, poll_s: float = 0.5) -> int:
    """Pass the signals this job step gets on to `pid` (on this node) until it ends."""

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in RELAYED:
        signal.signal(sig, forward)
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(poll_s)


def start_relay(args: argparse.Namespace, env: Mapping[str, str], cmd: list[str]) -> None:
    """In a one-node SLURM job, outside any step: start the relay to this process (which is
    about to become the training process). Not when it is about to become srun: srun already
    passes step signals on, and a second TERM makes it force the job's end before the
    checkpoint is written."""
    if args.nodes != 1 or "SLURM_JOB_ID" not in env or "SLURM_STEP_ID" in env:
        return
    if cmd[0] == "srun":
        return
    try:
        subprocess.Popen(relay_command(os.getpid()), env=dict(env), stdin=subprocess.DEVNULL)
    except OSError as err:  # no srun here: only a time limit's warning is lost
        print(f"launch: no signal relay ({err})", flush=True)


# Snakemake writes a job's benchmark file only when the job succeeds: a preempted or failed
# attempt leaves no row, and the file holds the last attempt alone. The launcher, about
# to become the training process, notes each attempt's start in the job's log (kept across
# attempts by the train rule); the next attempt turns the last one into a row (start to the
# log's last write) in a file beside the benchmark: every attempt's time is on record.
BENCHMARK_COLUMNS = ["s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out",
                     "mean_load", "cpu_time", "attempt"]  # fmt: skip
STARTED = re.compile(r"^launch: attempt (\d+) started at \S+ \(unix ([0-9.]+)\)$", re.MULTILINE)


def attempt_row(attempt: int, seconds: float) -> str:
    """A row in Snakemake's benchmark columns; what only Snakemake measures is NA."""
    hms = str(datetime.timedelta(seconds=round(seconds)))
    return "\t".join([f"{seconds:.4f}", hms, *["NA"] * 8, str(attempt)])


def record_attempt(log: Path, earlier: Path, now: float) -> str:
    """Add the previous attempt (if the log shows one) to `earlier`, or start `earlier` afresh
    with a fresh log; returns this attempt's start line, for the log."""
    starts = STARTED.findall(log.read_text(errors="replace")) if log.exists() else []
    if not starts:
        earlier.unlink(missing_ok=True)  # a fresh run: no earlier attempt
    else:
        attempt, started = int(starts[-1][0]), float(starts[-1][1])
        ended = max(log.stat().st_mtime, started)
        new = not earlier.exists() or earlier.stat().st_size == 0
        with earlier.open("a") as out:
            if new:
                out.write("\t".join(BENCHMARK_COLUMNS) + "\n")
            out.write(attempt_row(attempt, ended - started) + "\n")
    at = datetime.datetime.fromtimestamp(now, datetime.UTC).isoformat(timespec="seconds")
    return f"launch: attempt {len(starts) + 1} started at {at} (unix {now:.3f})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Launch lbgap.training.train under torchrun.")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument(
        "--rendezvous",
        choices=("auto", "standalone", "c10d"),
        default="auto",
        help="auto: c10d with srun on several nodes, standalone on one",
    )
    parser.add_argument("--relay-to", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--log", type=Path, help="this job's log, kept across attempts (earlier attempts' starts)"
    )
    parser.add_argument(
        "--earlier-attempts",
        type=Path,
        help="benchmark rows of the attempts before this one (needs --log)",
    )
    parser.add_argument(
        "train_args", nargs=argparse.REMAINDER, help="-- then lbgap.training.train's"
    )
    args = parser.parse_args(argv)
    if args.train_args[:1] == ["--"]:
        args.train_args = args.train_args[1:]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.relay_to:
        return relay(args.relay_to)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TORCHELASTIC_SIGNALS_TO_HANDLE": SIGNALS,
    }
    cmd = command(args, env)
    if args.earlier_attempts and args.log:
        print(record_attempt(args.log, args.earlier_attempts, time.time()), flush=True)
    print("launch:", " ".join(cmd[: cmd.index("lbgap.training.train") + 1]), "...", flush=True)
    start_relay(args, env, cmd)
    os.execvpe(cmd[0], cmd, env)  # no return: torchrun (or srun) takes this process over


if __name__ == "__main__":
    sys.exit(main())
