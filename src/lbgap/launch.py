"""Start a training job under torchrun: standalone on one machine, c10d rendezvous under SLURM.

One process per GPU (NCCL) or `--nproc-per-node` processes on CPU (gloo). In a multi-node SLURM
allocation this is run once per node (`srun --ntasks-per-node=1`) and every node's torchrun
meets at the first node of the allocation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def first_slurm_node() -> str:
    nodes = os.environ.get("SLURM_JOB_NODELIST", "")
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[0]


def torchrun_command(nproc: int, nnodes: int, train_args: list[str], port: int = 29500) -> list:
    """The torchrun command line for this job."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes > 1:
        cmd += [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={first_slurm_node()}:{port}",
            f"--rdzv-id={os.environ.get('SLURM_JOB_ID', 'lbgap')}",
        ]
    else:
        cmd += ["--standalone"]
    return cmd + ["-m", "lbgap.train", *train_args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Launch lbgap.train under torchrun.")
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then lbgap.train's")
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = torchrun_command(args.nproc_per_node, args.nodes, train_args)
    if args.nodes > 1:
        cmd = ["srun", f"--nodes={args.nodes}", "--ntasks-per-node=1", *cmd]
    print("launch:", " ".join(cmd[:8]), "...", flush=True)
    return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
