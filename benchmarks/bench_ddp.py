"""DDP scaling: lbgap's training step with 1 and N processes under torchrun, and the efficiency.

Strong scaling by default: the global batch is fixed and split over the ranks (the question a
reproduction asks: how much faster does the same run go on N devices); efficiency =
(steps/s with N ranks) / (N x steps/s with 1 rank). `--mode weak` keeps the per-rank batch
(global batch = N x batch); efficiency = samples/s with N / (N x samples/s with 1). On CPU each
rank gets --threads threads and gloo; with `--device cuda` each rank takes one GPU and NCCL, so
the same script measures a multi-GPU node (e.g. --nprocs 1 2 4 8). The process counts are run
in alternating order over several rounds; the efficiency is the median over rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _common

from lbgap.config.run_spec import RunSpec

HERE = Path(__file__).resolve().parent
DATASET_OF = {"F1": "mnist", "C1": "cifar10", "resnet20": "cifar10"}
OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.9}


def launch(nproc: int, spec: RunSpec, steps: int, warmup: int, threads: int, folder: Path) -> dict:
    """One torchrun job of `nproc` ranks; returns rank 0's timing."""
    result = folder / f"ddp{nproc}.json"
    result.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        str(HERE / "ddp_step.py"),
        "--spec",
        json.dumps(spec.to_dict()),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--result",
        str(result),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"torchrun with {nproc} processes failed:\n{proc.stderr[-3000:]}")
    return _common.load_json(result)


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], "ddp")
    p.add_argument("--nprocs", nargs="+", type=int, default=[1, 2], help="process counts")
    p.add_argument("--mode", choices=("strong", "weak"), default="strong")
    p.add_argument("--network", choices=sorted(DATASET_OF), default="F1")
    p.add_argument("--batch", type=int, default=512, help="global (strong) or per-rank (weak)")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU a rank)")
    p.add_argument("--steps", type=int, default=40, help="timed updates per run")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds over --nprocs")
    p.add_argument("--n-train", type=int, default=8192)
    args = p.parse_args(argv)
    if 1 not in args.nprocs:
        p.error("--nprocs must include 1, the baseline of the efficiency")
    machine = _common.machine_info()
    runs: dict[int, list[dict]] = {n: [] for n in args.nprocs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        n_max = max(args.nprocs)
        top_batch = args.batch * (n_max if args.mode == "weak" else 1)
        data = _common.synthetic_prepared(
            folder / "data.pt", DATASET_OF[args.network], max(args.n_train, 2 * top_batch), 256
        )
        for r in range(args.rounds):
            for n in args.nprocs if r % 2 == 0 else args.nprocs[::-1]:
                batch = args.batch * (n if args.mode == "weak" else 1)
                spec = _common.run_spec(
                    args.network,
                    DATASET_OF[args.network],
                    batch,
                    data,
                    OPTIMIZER,
                    device=args.device,
                )
                runs[n].append(launch(n, spec, args.steps, args.warmup, args.threads, folder))
                print(
                    f"round {r + 1}: {n} process(es) {runs[n][-1]['samples_per_s']:9.0f} samples/s",
                    flush=True,
                )
    efficiency = {}
    for n in args.nprocs:
        per_round = [
            x["samples_per_s"] / (n * one["samples_per_s"])
            for x, one in zip(runs[n], runs[1], strict=True)
        ]
        efficiency[str(n)] = {
            **_common.spread(per_round),
            "per_round": per_round,
            "samples_per_s": _common.spread([x["samples_per_s"] for x in runs[n]]),
        }
        print(
            f"{n} process(es): efficiency {efficiency[str(n)]['median']:.2f} "
            f"[{min(per_round):.2f}, {max(per_round):.2f}]",
            flush=True,
        )
    _common.write_result(
        args.out,
        "ddp",
        {
            "what": f"{args.mode} scaling of lbgap's DDP training step ({args.network}); "
            "efficiency = samples/s with N ranks / (N x samples/s with 1 rank), per round",
            "mode": args.mode,
            "network": args.network,
            "batch": args.batch,
            "device": args.device,
            "threads_per_rank": args.threads,
            "backend": "nccl" if args.device == "cuda" else "gloo",
            "efficiency": efficiency,
            "runs": {str(k): v for k, v in runs.items()},
        },
        machine,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
