"""Worker of bench_ddp.py, one per rank under torchrun: time lbgap's DDP training step.

Each rank builds lbgap.training.train.Trainer (which wraps the model in DistributedDataParallel when
there are several ranks: gloo on CPU, NCCL on GPUs) and runs the per-update body of
`Trainer.run_epoch` on its share of each global batch. Rank 0 writes the timing as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common  # noqa: F401  (puts the checkout's src/ on the path)
import torch

from lbgap.config.run_spec import RunSpec
from lbgap.io import write_json
from lbgap.training import distributed
from lbgap.training.train import Trainer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", required=True, help="run spec as JSON text")
    p.add_argument("--steps", type=int, required=True, help="timed updates")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--result", type=Path, required=True, help="JSON written by rank 0")
    args = p.parse_args(argv)
    spec = RunSpec.of(json.loads(args.spec))
    ctx = distributed.setup(spec.device)
    trainer = Trainer(spec, args.result.parent / f"run{ctx.world_size}", ctx, 1e9)
    batch = spec.batch_size
    iters = trainer.schedule.iterations_in_epoch(0, trainer.n_train)
    gen = torch.Generator(device=ctx.device).manual_seed(1)
    perm = torch.randperm(trainer.n_train, generator=gen, device=ctx.device)

    def updates(n: int) -> None:
        pending = []
        for k in range(n):
            it = k % iters
            trainer.agreed_flags()
            lr = trainer.schedule.lr_at(0, it, iters)
            ((x, y),) = trainer.batches([trainer.batch_indices(perm, it, batch)])
            loss = trainer.step(x, y, lr)
            pending.append((loss, trainer.weight_distance(), lr))
            trainer.updates += 1
        trainer.record_steps(pending, batch)
        trainer.steps.clear()

    updates(args.warmup)
    distributed.barrier()
    _common.sync(ctx.device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    updates(args.steps)
    _common.sync(ctx.device)
    distributed.barrier()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if ctx.is_main:
        write_json(
            args.result,
            {
                "world_size": ctx.world_size,
                "device": str(ctx.device),
                "backend": torch.distributed.get_backend() if ctx.world_size > 1 else None,
                "global_batch": batch,
                "per_rank_batch": batch // ctx.world_size,
                "steps": args.steps,
                "seconds": seconds,
                "steps_per_s": args.steps / seconds,
                "samples_per_s": args.steps * batch / seconds,
                # rank 0's CPU seconds per wall second and thread: well below 1 on a CPU means
                # the ranks waited for each other or for cores taken by other processes
                "rank0_cpu_share": cpu / seconds / torch.get_num_threads(),
            },
        )
    distributed.teardown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
