"""One training run: a resolved run spec in, metrics, checkpoint and summary out.

Launched by torchrun (see lbgap.training.launch). The global batch is split into per-rank
micro-batches and accumulation steps; with ghost batch norm the trajectory does not depend on that
split. The run checkpoints atomically every `checkpoint_minutes` and on SIGTERM/SIGUSR1, and a rerun
in the same folder resumes exactly where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.config.schedules import noise_scale, rescale_momentum_buffers
from lbgap.data.prepare import load_prepared, random_crop_flip
from lbgap.io import DamagedFile, DiskFull, load_torch, save_torch, write_json
from lbgap.progress import Progress
from lbgap.training import distributed, lars
from lbgap.training.acceleration import Acceleration, configure_determinism
from lbgap.training.evaluation import evaluate, evaluation_sums, loss_and_accuracy
from lbgap.training.ghost_bn import has_batch_norm, merge_ranks, running_stats, sync_statistics
from lbgap.training.live import EpochLog
from lbgap.training.models import build_model, zero_init_last_bn
from lbgap.training.noise import NoiseScaleTracker, squared_grad_norm
from lbgap.words import plural

if TYPE_CHECKING:
    from lbgap.data.imagefolder import ImageStream

STATE_FILE = layout.STATE
SYNC_EVERY = 10  # with several ranks, agree on stopping/saving every this many updates
PROGRESS_SECONDS = 60.0  # a progress line within long epochs (ImageNet) this often
# A run has diverged when an epoch's training loss is not finite, or when its mean over the
# epoch's updates exceeds this many times ln(classes), the loss of a uniform guess (about a
# fresh network's loss): so far above chance a run is lost even where the loss stays finite
# (Adam at LR 1e6 reaches 1e16), while one batch's spike averages out over the epoch.
DIVERGED_LOSS_FACTOR = 100.0


def divergence(losses: list[float], classes: int) -> str | None:
    """Why an epoch's per-update training losses mean the run diverged, or None if they do not
    (the rule of DIVERGED_LOSS_FACTOR)."""
    if not all(math.isfinite(v) for v in losses):
        return "non-finite training loss"
    limit = DIVERGED_LOSS_FACTOR * math.log(classes)
    mean = sum(losses) / len(losses) if losses else 0.0
    if mean > limit:
        return (
            f"mean training loss {mean:.3g} above {DIVERGED_LOSS_FACTOR:g} x ln({classes}) = "
            f"{limit:.3g}"
        )
    return None


def best_epoch(losses: list[float]) -> int | None:
    """Index of the lowest finite loss (the first of equal ones), None if none is finite."""
    finite = [v for v in losses if math.isfinite(v)]
    return losses.index(min(finite)) if finite else None


def stalled(losses: list[float], patience: int | None) -> bool:
    """Keskar et al.'s stopping rule: the training loss (one per epoch) has not improved on its
    best for `patience` epochs. None or 0: never (the run trains its schedule's epochs)."""
    best = best_epoch(losses)
    return bool(patience) and best is not None and len(losses) - 1 - best >= patience


class Preempted(Exception):
    """Raised after a signal-triggered checkpoint so the job ends and a retry resumes."""


def make_optimizer(model: nn.Module, cfg: dict, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov, weight decay optionally off for batch norm), Adam or LARS."""
    decay = cfg.get("weight_decay", 0.0)
    groups: list[dict] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if decay and not cfg.get("bn_weight_decay", True):
        norm = [
            p
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters()
        ]
        ids = {id(p) for p in norm}
        rest = [p for p in model.parameters() if id(p) not in ids]
        groups = [{"params": rest}, {"params": norm, "weight_decay": 0.0}]
    name = cfg["name"]
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=lr,
            momentum=cfg.get("momentum", 0.0),
            nesterov=cfg.get("nesterov", False),
            weight_decay=decay,
        )
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=decay)
    if name == "lars":  # You et al. 2017; excludes biases and batch norm itself
        return lars.make(model, cfg, lr)
    raise ValueError(f"optimizer.name must be sgd, adam or lars, got {name!r}")


def missing_warm_start(path: Path) -> str:
    """Why a warm start has no weights to start from: its source run stopped early (patience)
    before the epoch it was to save, or has not finished."""
    summary = path.parent / layout.SUMMARY
    epochs = json.loads(summary.read_text()).get("epochs") if summary.exists() else None
    why = (
        f"its run stopped after {plural(epochs, 'epoch')}"
        if epochs is not None
        else "its run has not finished"
    )
    return (
        f"warm start: {path} does not exist ({why}); start from an epoch the source run "
        "reaches (warm_start.epoch) or train it without patience"
    )


def planned_train_size(spec: RunSpec, available: int) -> int:
    """Training samples of an epoch: the spec's plan, which the prepared data must hold."""
    planned = spec.n_train or available
    if planned > available:
        raise ValueError(
            f"the run was planned for {planned} training samples but {spec.data} has "
            f"{available}; prepare the data again for this scale"
        )
    return planned


def micro_batches(per_rank: int, micro: int | None) -> int:
    """How many accumulation steps one rank needs so each micro-batch fits `micro`."""
    if not micro or micro >= per_rank:
        return 1
    if per_rank % micro:
        raise ValueError(
            f"per-rank batch {per_rank} is not a multiple of micro_batch {micro}; "
            "choose a micro_batch that divides it"
        )
    return per_rank // micro


class Trainer:
    """Holds the run's state so that it can be checkpointed and resumed as a whole."""

    def __init__(
        self,
        spec: RunSpec,
        out: Path,
        ctx: distributed.Context,
        checkpoint_minutes: float = 10.0,
        tensorboard: bool = False,
    ) -> None:
        self.spec, self.out, self.ctx = spec, out, ctx
        configure_determinism(ctx.device, spec.deterministic)
        torch.manual_seed(spec.seed)
        self.data = load_prepared(spec.data, ctx.device)
        info = self.data["info"]
        self.stream: ImageStream | None = None
        if "imagefolder" in self.data:  # ImageNet: streamed from disk, not held on the device
            from lbgap.data.imagefolder import ImageStream  # torchvision: seconds, ImageNet only

            self.stream = ImageStream(
                self.data["imagefolder"],
                info,
                spec.seed,
                ctx.device,
                spec.image_size,
                spec.loader_workers,
                spec.augment,
                spec.decode,  # None: auto, JPEGs decoded on a GPU, by PIL on a CPU
            )
            self.stored = self.stream.n_train
        else:
            self.stored = len(self.data["train_y"])
        self.n_train = planned_train_size(spec, self.data.get("n_train", self.stored))
        self.schedule = spec.lr_schedule()
        self.model = build_model(spec.network, info.classes, spec.width, spec.ghost_batch).to(
            ctx.device
        )
        if spec.zero_init_residual:
            zero_init_last_bn(self.model)
        self.batch_norm = has_batch_norm(self.model)
        if ctx.world_size > 1 and not spec.ghost_batch:
            sync_statistics(self.model)  # the global batch's statistics, as on one process
        if spec.init_checkpoint:
            self.load_init(spec.init_checkpoint)
        self.accel = Acceleration.resolve(spec, ctx.device, self.model)
        self.model = self.accel.prepare_model(self.model)
        self.net: nn.Module = self.model
        if ctx.world_size > 1:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        self.net = self.accel.wrap(self.net)
        self.optimizer = make_optimizer(
            self.model, spec.optimizer_settings(), self.schedule.base_lr
        )
        self.w0 = [p.detach().clone() for p in self.model.parameters()]
        self.data_gen = torch.Generator(device=ctx.device).manual_seed(spec.seed + 1)
        self.epoch, self.iteration, self.updates, self.samples = 0, 0, 0, 0
        self.epoch_gen_state = self.data_gen.get_state()
        self.rows: list[dict] = []
        self.steps: list[dict] = []
        self.elapsed = 0.0
        self.status = "running"
        self.divergence: str | None = None  # why the run diverged (see `divergence`)
        self.stop_requested = False
        self.resume_gen_state: torch.Tensor | None = None
        self.checkpoint_s = 60 * checkpoint_minutes
        self.last_save = self.last_progress = time.monotonic()
        self.progress_samples = 0
        self.noise = NoiseScaleTracker()
        self.last_lr: float | None = None
        self.progress = Progress(self.schedule.epochs)  # for the log lines' ETA only
        self.epoch_log = EpochLog(out, tensorboard) if ctx.is_main else None

    def load_init(self, path: str) -> None:
        """Warm start (Keskar et al.): begin from another run's saved weights."""
        if not Path(path).exists():
            raise ValueError(missing_warm_start(Path(path)))
        fix = "delete the source run's summary.json and rerun: Snakemake trains it again"
        blob = load_torch(path, fix, map_location=self.ctx.device, weights_only=True)
        self.model.load_state_dict(blob["model"])

    # ------------------------------------------------------------ checkpointing
    def state(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "updates": self.updates,
            "samples": self.samples,
            "epoch_gen_state": self.epoch_gen_state,
            "data_gen_state": self.data_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "w0": self.w0,
            "rows": self.rows,
            "steps": self.steps,
            "elapsed": self.elapsed,
            "status": self.status,
            "noise": vars(self.noise).copy(),
            "last_lr": self.last_lr,
        }

    def save_state(self) -> None:
        if self.ctx.is_main:
            save_torch(self.out / STATE_FILE, self.state())
        distributed.barrier()
        self.last_save = time.monotonic()

    def try_resume(self) -> bool:
        path = self.out / STATE_FILE
        if not path.exists():
            return False
        try:
            state = load_torch(path, "", map_location=self.ctx.device, weights_only=False)
        except DamagedFile as err:  # e.g. a node lost power mid-write on a filesystem without
            aside = path.with_name(f"{STATE_FILE}.corrupt")  # atomic rename: start afresh
            path.replace(aside)
            print(
                f"{path} is damaged ({err.reason}); set aside as {aside}, starting afresh",
                flush=True,
            )
            return False
        if state["spec"] != self.spec.to_dict():
            print(f"{path} belongs to another configuration; starting afresh", flush=True)
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for key in (
            "epoch",
            "iteration",
            "updates",
            "samples",
            "epoch_gen_state",
            "w0",
            "rows",
            "steps",
            "elapsed",
        ):
            setattr(self, key, state[key])
        vars(self.noise).update(state["noise"])
        self.last_lr = state["last_lr"]
        # Generator states must be CPU tensors, whatever map_location did to them.
        self.epoch_gen_state = self.epoch_gen_state.cpu()
        if self.iteration and "data_gen_state" in state:
            self.resume_gen_state = state["data_gen_state"].cpu()
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        print(f"resumed from {path} at epoch {self.epoch} iteration {self.iteration}", flush=True)
        return True

    # ------------------------------------------------------------ one step
    def batch_indices(self, epoch_perm: torch.Tensor, it: int, batch: int) -> torch.Tensor:
        """This rank's share of global batch `it`, the same samples whatever the world size."""
        idx = epoch_perm[it * batch : (it + 1) * batch]
        if batch % self.ctx.world_size:
            raise ValueError(f"batch {batch} is not divisible by the {self.ctx.world_size} ranks")
        share = batch // self.ctx.world_size
        return idx[self.ctx.rank * share : (self.ctx.rank + 1) * share]

    def batches(self, index_lists: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        """This rank's training batches for these index lists, in order.

        Index i of the epoch reads stored sample i mod (samples stored): the identity for real
        data, and a stand-in's few samples standing for the real dataset's many. Augmentation is
        drawn for the whole global batch (of which this rank holds the equal share at `rank`),
        so that crops, flips and later epochs' orders do not depend on the number of ranks.
        """
        index_lists = [idx % self.stored for idx in index_lists]
        if self.stream is not None:
            yield from self.stream.train_batches(index_lists, self.epoch)
            return
        world, rank = self.ctx.world_size, self.ctx.rank
        for idx in index_lists:
            x = self.data["train_x"][idx]
            if self.spec.augment:
                x = random_crop_flip(x, 4, self.data_gen, len(idx) * world, len(idx) * rank)
            yield x, self.data["train_y"][idx]

    def set_lr(self, lr: float) -> None:
        """Set the LR; without momentum correction, emulate the uncorrected update of Goyal."""
        if self.last_lr is not None and lr != self.last_lr and not self.spec.momentum_correction:
            rescale_momentum_buffers(self.optimizer, self.last_lr, lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.last_lr = lr

    def step(
        self, x: torch.Tensor, y: torch.Tensor, lr: float, measure_noise: bool = False
    ) -> torch.Tensor:
        """One update on this rank's share (x, y) of the global batch; returns the mean loss."""
        self.set_lr(lr)
        accum = micro_batches(len(y), self.spec.micro_batch)
        x = self.accel.prepare_inputs(x)
        total = torch.zeros((), device=self.ctx.device)
        params = list(self.model.parameters())
        ddp = self.ddp()
        merge = self.ctx.world_size > 1 and bool(self.spec.ghost_batch)
        before = running_stats(self.model) if merge else []
        for i, (xs, ys) in enumerate(zip(x.chunk(accum), y.chunk(accum), strict=True)):
            sync = i == accum - 1 or ddp is None
            with contextlib.nullcontext() if sync else ddp.no_sync():
                self.accel.begin_step()
                with self.accel.autocast(self.ctx.device):
                    loss = F.cross_entropy(self.net(xs), ys) / accum
                loss.backward()
            total += loss.detach()
        if merge:
            merge_ranks(before, self.ctx.rank, self.ctx.world_size)
        half = self.noise_split(len(y)) if measure_noise else 0
        if half:
            g_small_sq = self.side_gradient_sq(x[:half], y[:half])
            big = len(y) * self.ctx.world_size
            self.noise.update(g_small_sq, squared_grad_norm(params), half, big)
        clip = self.spec.grad_clip
        clip_epochs = self.spec.grad_clip_epochs
        if clip and (clip_epochs is None or self.epoch < clip_epochs):
            nn.utils.clip_grad_norm_(params, clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return distributed.all_reduce_mean(total)

    def ddp(self) -> DistributedDataParallel | None:
        """The DDP wrapper, if any, also when torch.compile wraps it in turn."""
        net = getattr(self.net, "_orig_mod", self.net)
        return net if isinstance(net, DistributedDataParallel) else None

    def noise_split(self, n: int) -> int:
        """Size of the small batch of the noise estimate: half of `n`, or 0 for no estimate.

        With ghost batch norm it is a whole number of ghost batches, so that both passes
        normalize the same chunks: a smaller batch-norm batch inflates the gradient norm and
        biases |G|^2 below zero. With batch norm over the whole batch no half normalizes as the
        batch does, so there is no estimate (B_noise stays NaN rather than biased); nor for a
        batch of fewer than two ghost batches, or a half of fewer than two samples.
        """
        ghost = self.spec.ghost_batch
        if not ghost and self.batch_norm:
            return 0
        half = ghost * (n // ghost // 2) if ghost else n // 2
        return half if half >= 2 else 0  # batch norm needs two samples to normalize

    def side_gradient_sq(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Squared norm of a small batch's gradient, leaving the run itself untouched.

        The gradient noise scale (McCandlish et al. 2018) compares gradient norms at two batch
        sizes. This extra pass uses copies of the batch-norm buffers and restores the RNG, so
        measuring does not change the trajectory.
        """
        params = dict(self.model.named_parameters())
        buffers = {k: v.clone() for k, v in self.model.named_buffers()}
        gpus = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=gpus), self.accel.autocast(self.ctx.device):
            logits = torch.func.functional_call(self.model, (params, buffers), (x,))
            loss = F.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, list(params.values()))
        return float(torch.stack([g.pow(2).sum() for g in grads]).sum())

    @torch.no_grad()
    def weight_distance(self) -> torch.Tensor:
        diffs = torch._foreach_sub([p.detach() for p in self.model.parameters()], self.w0)
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs)))

    # ------------------------------------------------------------ epochs
    def agreed_flags(self) -> tuple[bool, bool]:
        """(stop, save now), the same on every rank: a signal reaches ranks at different steps."""
        flags = [self.stop_requested, time.monotonic() - self.last_save > self.checkpoint_s]
        if self.ctx.world_size == 1:
            return flags[0], flags[1]
        if self.updates % SYNC_EVERY:
            return False, False
        t = torch.tensor([float(f) for f in flags], device=self.ctx.device)
        stop, save = (distributed.all_reduce_mean(t) > 0).tolist()
        return stop, save

    def record_steps(self, pending: list[tuple], batch: int) -> None:
        """Move this epoch's pending per-update values into `steps` (one device sync)."""
        if not pending:
            return
        losses, dists, lrs = zip(*pending, strict=True)
        first = self.updates - len(pending)
        values = zip(torch.stack(losses).tolist(), torch.stack(dists).tolist(), lrs, strict=True)
        for k, (loss, dist, lr) in enumerate(values):
            self.steps.append(
                {
                    "update": first + k + 1,
                    "epoch": self.epoch,
                    "lr": lr,
                    "batch": batch,
                    "loss": loss,
                    "weight_distance": dist,
                }
            )
        pending.clear()

    def run_epoch(self) -> None:
        batch = self.schedule.batch_at(self.epoch)
        iters = self.schedule.iterations_in_epoch(self.epoch, self.n_train)
        self.data_gen.set_state(self.epoch_gen_state)
        perm = torch.randperm(self.n_train, generator=self.data_gen, device=self.ctx.device)
        if self.resume_gen_state is not None:  # resumed mid-epoch: the augmentation draws go on
            self.data_gen.set_state(self.resume_gen_state)
            self.resume_gen_state = None
        pending: list[tuple] = []
        start = time.perf_counter()
        if self.stream is not None:  # its workers read indices on the CPU: one copy an epoch
            perm = perm.cpu()
        batches = self.batches(
            [self.batch_indices(perm, it, batch) for it in range(self.iteration, iters)]
        )
        while self.iteration < iters:
            stop, save = self.agreed_flags()
            if stop or save:
                self.record_steps(pending, batch)
                self.elapsed += time.perf_counter() - start
                start = time.perf_counter()
                self.save_state()
                if stop:
                    raise Preempted
            lr = self.schedule.lr_at(self.epoch, self.iteration, iters)
            every = self.spec.noise_every
            measure = bool(every) and self.updates % every == 0
            loss = self.step(*next(batches), lr, measure)
            pending.append((loss, self.weight_distance(), lr))
            self.iteration += 1
            self.updates += 1
            self.samples += batch
            if time.monotonic() - self.last_progress > PROGRESS_SECONDS:
                self.report_progress(loss, iters, batch)
        self.record_steps(pending, batch)
        self.elapsed += time.perf_counter() - start
        this_epoch = [s for s in self.steps if s["epoch"] == self.epoch]
        self.divergence = divergence([s["loss"] for s in this_epoch], self.data["info"].classes)
        if self.divergence:
            self.status = "diverged"
        self.end_epoch(batch, lr=this_epoch[-1]["lr"] if this_epoch else float("nan"))

    def end_epoch(self, batch: int, lr: float) -> None:
        spec, d = self.spec, self.data
        row = {
            "epoch": self.epoch + 1,
            "batch": batch,
            "lr": lr,
            "updates": self.updates,
            "samples": self.samples,
            "train_time_s": self.elapsed,
            "b_noise": self.noise.b_simple,
            "noise_grad_sq": self.noise.grad_sq,
            "noise_trace_sigma": self.noise.trace_sigma,
            "noise_scale": noise_scale(
                lr, self.n_train, batch, spec.optimizer_settings()["momentum"]
            ),
        }
        if self.status != "diverged":
            chunk, mode = spec.eval_chunk, spec.bn_eval
            for split in ("train", "test"):
                if self.stream is not None:
                    loss_acc = self.evaluate_stream(split, min(chunk, self.stream.eval_chunk), mode)
                else:
                    loss_acc = evaluate(self.model, d[f"{split}_x"], d[f"{split}_y"], chunk, mode)
                row[f"{split}_loss"], row[f"{split}_acc"] = loss_acc
        self.rows.append(row)
        if self.epoch_log is not None:
            self.epoch_log.epoch(self.rows)
        if self.ctx.is_main:
            print(self.progress_line(row), flush=True)
            if self.epoch + 1 in self.spec.save_epochs:
                self.save_weights(self.out / layout.checkpoint_name(self.epoch + 1), self.epoch + 1)
        self.epoch += 1
        self.iteration = 0
        self.epoch_gen_state = self.data_gen.get_state()

    def report_progress(self, loss: torch.Tensor, iters: int, batch: int) -> None:
        """Within an epoch: where the run is, its loss and throughput (one device sync)."""
        now = time.monotonic()
        rate = (self.samples - self.progress_samples) / (now - self.last_progress)
        self.last_progress, self.progress_samples = now, self.samples
        if self.ctx.is_main:
            print(
                f"[{self.run_name()}] epoch {self.epoch + 1}/{self.schedule.epochs} "
                f"iteration {self.iteration}/{iters} batch {batch} | loss {float(loss):.4f} | "
                f"{rate:.0f} samples/s | {self.progress.line(self.epoch + self.iteration / iters)}",
                flush=True,
            )

    def run_name(self) -> str:
        return f"{self.spec.experiment}/{self.spec.variant}/seed{self.spec.seed}"

    def evaluate_stream(self, split: str, chunk: int, mode: str) -> tuple[float, float]:
        """Each rank evaluates its share of the streamed split; the sums are added up."""
        ctx = self.ctx
        batches = self.stream.eval_batches(split, chunk, ctx.rank, ctx.world_size)
        sums = evaluation_sums(self.model, batches, mode).to(ctx.device)
        return loss_and_accuracy(distributed.all_reduce_sum(sums))

    def progress_line(self, row: dict) -> str:
        metrics = (
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2f}% | "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.2f}%"
            if "train_loss" in row
            else f"DIVERGED ({self.divergence})"
        )
        return (
            f"[{self.run_name()}] epoch {row['epoch']}/{self.schedule.epochs} batch {row['batch']} "
            f"lr {row['lr']:.4g} | {metrics} | {row['train_time_s']:.1f}s | "
            f"{self.progress.line(row['epoch'])}"
        )

    def fit(self) -> None:
        """Epochs until done, diverged or, with `patience`, stalled (Keskar et al. trained until
        the loss stopped improving); `run_epoch` checkpoints every `checkpoint_minutes`."""
        self.last_progress, self.progress_samples = time.monotonic(), self.samples
        self.progress = Progress(self.schedule.epochs, done=self.epoch)
        if self.rows and self.epoch_log is not None:  # resumed: the restored epochs, live again
            self.epoch_log.epoch(self.rows)
        patience = self.spec.patience
        while self.epoch < self.schedule.epochs and self.status != "diverged":
            if patience and self.any_rank(stalled(self.train_losses(), patience)):
                break
            self.run_epoch()
        if self.status == "running":
            self.status = "completed"

    def any_rank(self, flag: bool) -> bool:
        """Whether `flag` holds on any rank: one decision for all ranks, whose own evaluations
        may differ in the last bit (non-deterministic GPU kernels)."""
        if self.ctx.world_size == 1:
            return flag
        votes = torch.tensor(float(flag), device=self.ctx.device)
        return bool(distributed.all_reduce_mean(votes) > 0)

    def train_losses(self) -> list[float]:
        """The evaluated training loss of every epoch so far (restored on resume with the rows)."""
        return [r["train_loss"] for r in self.rows if "train_loss" in r]

    def stopping(self) -> dict:
        """How the run ended, for its summary: the rule, the epoch bound, whether the training
        loss stalled before it, and the epoch of the lowest training loss."""
        patience = self.spec.patience
        best = best_epoch(self.train_losses())
        return {
            "rule": "patience" if patience else "epochs",
            "patience": patience,
            "max_epochs": self.schedule.epochs,
            "stopped_early": self.status == "completed" and self.epoch < self.schedule.epochs,
            "best_train_loss_epoch": None if best is None else best + 1,
        }

    # ------------------------------------------------------------ outputs
    def save_weights(self, path: Path, epoch: int) -> None:
        """Weights and spec only: what the analyses (sharpness, warm starts) load."""
        blob = {"model": self.model.state_dict(), "spec": self.spec.to_dict(), "epoch": epoch}
        save_torch(path, blob)

    def write_outputs(self, wall_time: float) -> None:
        if not self.ctx.is_main:
            return
        out = self.out
        pd.DataFrame(self.rows).to_csv(out / f"{layout.METRICS}.tmp", index=False)
        pd.DataFrame(self.steps).to_csv(out / f"{layout.STEPS}.tmp", index=False)
        self.save_weights(out / layout.CHECKPOINT, self.epoch)
        last = self.rows[-1] if self.rows else {}
        evaluated = [r for r in self.rows if "test_acc" in r]
        summary = {
            "status": self.status,
            "spec": self.spec.to_dict(),
            "epochs": self.epoch,
            "updates": self.updates,
            "samples": self.samples,
            "world_size": self.ctx.world_size,
            "device": str(self.ctx.device),
            "acceleration": self.accel.as_dict(),
            "wall_time_s": wall_time,
            "train_time_s": self.elapsed,
            "final": {k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
            "last_evaluated_epoch": evaluated[-1]["epoch"] if evaluated else None,
            "diverged_because": self.divergence,
            "stopping": self.stopping(),
            "torch": torch.__version__,
        }
        if self.stream is not None:  # where the JPEGs were decoded (decode: auto resolved)
            summary["decode"] = self.stream.decode
        for name in (layout.METRICS, layout.STEPS):
            (out / f"{name}.tmp").replace(out / name)
        self.epoch_log.close()
        write_json(out / layout.SUMMARY, summary)
        (out / STATE_FILE).unlink(missing_ok=True)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP)


def request_stop(trainer: Trainer) -> None:
    """SIGTERM/SIGUSR1 (SLURM's warning before a time limit or preemption), Ctrl-C (SIGINT) and
    a closed terminal (SIGHUP) -> checkpoint, exit; a rerun resumes."""

    def handler(signum: int, _frame) -> None:
        print(f"signal {signum}: checkpointing before exit", flush=True)
        trainer.stop_requested = True

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def run(
    spec: RunSpec | Mapping,
    out: Path,
    checkpoint_minutes: float = 10.0,
    tensorboard: bool = False,
) -> dict:
    """Train (or resume) the run of a spec (or of the mapping a spec file holds);
    `checkpoint_minutes` and `tensorboard` change how it is looked after, not what it computes,
    so they are not part of the spec (changing them neither reruns nor restarts it)."""
    start = time.perf_counter()
    spec = RunSpec.of(spec)
    ctx = distributed.setup(spec.device)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(spec, out, ctx, checkpoint_minutes, tensorboard)
    request_stop(trainer)
    trainer.try_resume()
    try:
        trainer.fit()
    except Preempted:  # run_epoch saved the state before raising
        distributed.teardown()
        raise
    trainer.write_outputs(time.perf_counter() - start)
    distributed.teardown()
    return {"status": trainer.status, "epochs": trainer.epoch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train one run of the experiment matrix.")
    parser.add_argument("--spec", type=Path, required=True, help="the run's spec.json")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument(
        "--checkpoint-minutes", type=float, default=10.0, help="minutes between checkpoints"
    )
    parser.add_argument(
        "--tensorboard", type=int, default=0, choices=(0, 1), help="1: TensorBoard event files"
    )
    args = parser.parse_args(argv)
    try:
        spec = RunSpec.read(args.spec)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        result = run(spec, args.out, args.checkpoint_minutes, bool(args.tensorboard))
    except Preempted:
        print("stopped by signal after checkpointing; rerun to resume", file=sys.stderr)
        return 143
    except (ValueError, distributed.DeviceUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DiskFull, DamagedFile) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except torch._dynamo.exc.BackendCompilerFailed as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: torch.compile failed ({first}); set compile: false", file=sys.stderr)
        return 2
    print(f"done: {result['status']} after {plural(result['epochs'], 'epoch')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
