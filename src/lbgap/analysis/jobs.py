"""Analyses of a finished run's weights (Keskar et al. 2017), one result file per job.

    python -m lbgap.analysis.jobs sharpness --run DIR --data PREPARED --space full --eps 1e-3 ...
    python -m lbgap.analysis.jobs training-sharpness --run DIR --data PREPARED --eps 0.001 --out F
    python -m lbgap.analysis.jobs hessian --run DIR --data PREPARED --samples 100 --out F
    python -m lbgap.analysis.jobs parametric --run-a SB_DIR --run-b LB_DIR --data PREPARED --out F
    python -m lbgap.analysis.jobs reparametrization --run DIR --data PREPARED --alphas 0.1 1 10 ...

The math lives in lbgap.analysis.sharpness, lbgap.analysis.hessian and lbgap.analysis.interpolation;
this module applies it to the pipeline's runs. Every analysis uses the training loss over the whole
training set in chunks of the run's `eval_chunk`, with batch norm in the run's own evaluation mode
(its spec's `bn_eval`): `running` uses the running averages, `batch` each chunk's statistics. Each
result records that mode, the checkpoint and its epoch, so a table can say what it shows.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lbgap import progress
from lbgap.analysis import hessian, interpolation
from lbgap.analysis import reparametrization as reparam
from lbgap.analysis import sharpness as sharp
from lbgap.analysis.checkpoints import load_run
from lbgap.config import layout
from lbgap.config.run_spec import RunSpec
from lbgap.data.prepare import load_prepared
from lbgap.io import read_json, write_json, write_text
from lbgap.training import evaluation
from lbgap.training.distributed import pick_device

FINAL = layout.CHECKPOINT
log = logging.getLogger(__name__)


# ---------------------------------------------------------------- loading
def load(run_dir: str | Path, device: torch.device, epoch: int | None = None):
    """Model (eval mode), the run's spec and summary, and the epoch the weights belong to."""
    summary = read_json(layout.summary(run_dir))
    model, spec = load_run(run_dir, device, layout.checkpoint_name(epoch))
    return model, spec, summary, summary["epochs"] if epoch is None else epoch


def setup(threads: int | None, device: str | None, spec_device: str) -> torch.device:
    if threads:
        torch.set_num_threads(threads)
    return pick_device(device or spec_device, 0)


def load_data(path: str | Path, device: torch.device) -> dict:
    data = load_prepared(path, device)
    if "imagefolder" in data:
        raise ValueError("the analyses hold the training set in memory; ImageNet is not supported")
    return data


def logged(run_dir: str | Path, epoch: int) -> dict:
    """The run's own metrics after `epoch` epochs (metrics.csv), for comparison."""
    frame = pd.read_csv(layout.metrics(run_dir))
    row = frame[frame["epoch"] == epoch]
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    if row.empty:
        return dict.fromkeys(keys)
    return {k: float(row[k].iloc[0]) if k in row else None for k in keys}


def bn_context(model: nn.Module, spec: RunSpec):
    return evaluation.bn_eval_mode(model, spec.bn_eval)


def diverged(summary: dict) -> bool:
    return summary["status"] != "completed"


# ---------------------------------------------------------------- sharpness phi
def phi(
    model: nn.Module,
    spec: RunSpec,
    data: dict,
    eps: float,
    subspace_dim: int | None,
    max_iter: int,
    converge: sharp.Convergence | None = None,
    optimizer: str = "scipy",
) -> dict:
    """Keskar's phi on the whole training loss, in the run's batch-norm mode.

    `optimizer` is sharp.sharpness's ("scipy", the reference, or "device").

    The random subspace's matrix A is seeded with the run's seed, so the SB and LB runs of one
    seed are probed in the same subspace; so are the random starts of the converged estimate.
    """
    with bn_context(model, spec):
        return sharp.sharpness(
            model,
            data["train_x"],
            data["train_y"],
            eps=eps,
            subspace_dim=subspace_dim,
            max_iter=max_iter,
            seed=spec.seed,
            chunk_size=spec.eval_chunk,
            converge=converge,
            optimizer=optimizer,
        )


def record_head(run_dir: str, spec: RunSpec, summary: dict, epoch: int, **settings) -> dict:
    """What every analysis of a run's final weights records first: which run and weights, its
    status and batch-norm mode, then the analysis's own settings."""
    return {
        "run_dir": str(run_dir),
        "checkpoint": FINAL,
        "epoch": epoch,
        "status": summary["status"],
        "bn_eval": spec.bn_eval,
        **settings,
    }


def sharpness_record(
    run_dir: str,
    space: str,
    eps: float,
    max_iter: int,
    data,
    device,
    converge: sharp.Convergence | None = None,
    optimizer: str = "scipy",
) -> dict:
    """One phi result with what it was computed on (a diverged run gives phi None).

    The paper's measurement and the converged estimate beside it share one job: the estimate
    continues the paper's L-BFGS-B run rather than repeating its evaluations.
    """
    model, spec, summary, epoch = load(run_dir, device)
    record = record_head(
        run_dir,
        spec,
        summary,
        epoch,
        space=space,
        eps=eps,
        subspace_dim=layout.subspace_dim(space),
        max_iter=max_iter,
        **(converge.settings() if converge else {}),
    ) | {
        "n_train": int(data["train_y"].numel()),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "logged": logged(run_dir, epoch),
    }
    if diverged(summary):
        return {**record, "phi": None, "phi_converged": None, "f_x": None, "f_max": None}
    dim = layout.subspace_dim(space)
    result = phi(model, spec, data, eps, dim, max_iter, converge, optimizer)
    result["subspace_seed"] = result.pop("seed")
    return {**record, **result}


def bn_modes_record(
    run_dir: str, eps: float, max_iter: int, final: str, data, device, optimizer: str = "scipy"
) -> dict:
    """Test and train accuracy and phi (full space, the paper's iterations) of the final weights
    in both batch-norm evaluation modes, to choose `bn_eval` by evidence.

    The run's own mode's phi is Table 3's measurement (`final`), reused; the other mode's is
    measured here the same way. A diverged run gets None everywhere.
    """
    model, spec, summary, epoch = load(run_dir, device)
    record = {
        "run_dir": str(run_dir),
        "epoch": epoch,
        "eps": eps,
        "max_iter": max_iter,
        "status": summary["status"],
        "run_bn_eval": spec.bn_eval,
    }
    modes: dict[str, dict] = {}
    for mode in layout.BN_MODES:
        if diverged(summary):
            modes[mode] = dict.fromkeys(("train_acc", "test_acc", "phi"))
            continue
        chunk = spec.eval_chunk
        out = {}
        for split in ("train", "test"):
            x, y = data[f"{split}_x"], data[f"{split}_y"]
            out[f"{split}_loss"], out[f"{split}_acc"] = evaluation.evaluate(
                model, x, y, chunk, mode
            )
        if mode == record["run_bn_eval"]:
            out["phi"] = read_json(final)["phi"]
        else:
            other = dataclasses.replace(spec, bn_eval=mode)
            out["phi"] = phi(model, other, data, eps, None, max_iter, optimizer=optimizer)["phi"]
        modes[mode] = out
        log.info(f"bn_eval {mode}: test accuracy {out['test_acc']:.2f}%, phi {out['phi']:.4g}")
    return {**record, "modes": modes}


def training_sharpness(
    run_dir: str,
    eps_list: list[float],
    max_iter: int,
    finals: list[str],
    data,
    device,
    optimizer: str = "scipy",
) -> pd.DataFrame:
    """phi (full space) after every saved epoch of a run; the final epoch from `finals`.

    `finals` are the run's sharpness files of its final weights (Table 3's), reused rather than
    computed twice.
    """
    summary = read_json(layout.summary(run_dir))
    run_spec = RunSpec.from_summary(summary, layout.summary(run_dir))
    rows = []
    saved = [e for e in run_spec.save_epochs if e < summary["epochs"]]
    epochs = [] if diverged(summary) else saved
    done = progress.Progress(len(epochs) * len(eps_list))
    for epoch in epochs:
        model, spec, _, _ = load(run_dir, device, epoch)
        for eps in eps_list:
            result = phi(model, spec, data, eps, None, max_iter, optimizer=optimizer)
            rows.append({"epoch": epoch, "checkpoint": layout.checkpoint_name(epoch), **result})
            log.info(
                f"phi of epoch {epoch}, eps {eps:g}: {result['phi']:.4g}, {done.line(len(rows))}"
            )
    for path in finals:
        result = read_json(path)
        if result.get("phi") is not None:
            rows.append({**result, "epoch": summary["epochs"], "checkpoint": FINAL})
    keep = ["epoch", "checkpoint", "eps", "phi", "f_x", "f_max", "iterations", "n_evals"]
    frame = pd.DataFrame(rows, columns=keep + ["wall_time_s"])
    frame["bn_eval"] = run_spec.bn_eval
    metrics = pd.read_csv(layout.metrics(run_dir))
    cols = [
        c for c in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc") if c in metrics
    ]
    frame = frame.merge(metrics[cols], on="epoch", how="left")
    return frame.sort_values(["eps", "epoch"], ascending=[False, True], ignore_index=True)


# ---------------------------------------------------------------- Hessian
def hessian_record(run_dir: str, samples: int, ncv: int | None, tol: float, data, device) -> dict:
    """Top eigenvalue (Lanczos) and trace (Hutchinson) of the training-loss Hessian."""
    model, spec, summary, epoch = load(run_dir, device)
    record = record_head(
        run_dir, spec, summary, epoch, lanczos_vectors=ncv, lanczos_tol=tol, device=str(device)
    )
    if diverged(summary):
        return {**record, "top_eigenvalue": None, "trace": None}
    x, y, chunk = data["train_x"], data["train_y"], spec.eval_chunk
    loss, acc = evaluation.evaluate(model, x, y, chunk, spec.bn_eval)
    with bn_context(model, spec):
        t0 = time.perf_counter()
        top = hessian.top_eigenvalue(
            model, x, y, tol=tol, seed=spec.seed, chunk_size=chunk, ncv=ncv
        )
        t1 = time.perf_counter()
        trace = hessian.hutchinson_trace(model, x, y, samples, spec.seed, chunk)
        t2 = time.perf_counter()
    return {
        **record,
        "train_loss": loss,
        "train_acc": acc,
        "top_eigenvalue": top,
        **trace,
        "n_params": sum(p.numel() for p in model.parameters()),
        "eigen_time_s": t1 - t0,
        "trace_time_s": t2 - t1,
    }


# ---------------------------------------------------------------- parametric line
def parametric(run_a: str, run_b: str, points: int, data, device) -> pd.DataFrame:
    """Loss and accuracy of (1 - alpha) x_a + alpha x_b on alpha in [-1, 2] (Keskar's Figure 3).

    With bn_eval running, the batch-norm running statistics are recomputed on the training data
    at every alpha (the end points' statistics do not interpolate); with bn_eval batch each
    evaluation chunk normalizes itself, so there is nothing to recompute.
    """
    model_a, spec, sum_a, _ = load(run_a, device)
    model_b, _, sum_b, _ = load(run_b, device)
    mode, chunk = spec.bn_eval, spec.eval_chunk
    alphas = interpolation.default_alphas(points)
    bn_stats = "recomputed on the training set" if mode == "running" else "each chunk's (batch)"
    if diverged(sum_a) or diverged(sum_b):
        frame = pd.DataFrame({"alpha": alphas})
        for col in ("train_loss", "train_acc", "test_loss", "test_acc"):
            frame[col] = np.nan
        return frame.assign(bn_eval=mode, bn_stats="diverged run")
    # Copies: a state_dict shares storage with the model, which each alpha overwrites.
    sa = {k: v.detach().clone() for k, v in model_a.state_dict().items()}
    sb = {k: v.detach().clone() for k, v in model_b.state_dict().items()}
    names = {k for k, _ in model_a.named_parameters()}
    work = model_a
    rows = []
    done = progress.Progress(len(alphas))
    for alpha in alphas:
        work.load_state_dict(interpolation.interpolated_state(sa, sb, alpha, names))
        if mode == "running":
            interpolation.recompute_bn_stats(work, data["train_x"], chunk)
        row = {"alpha": float(alpha)}
        for split in ("train", "test"):
            loss, acc = evaluation.evaluate(
                work, data[f"{split}_x"], data[f"{split}_y"], chunk, mode
            )
            row |= {f"{split}_loss": loss, f"{split}_acc": acc}
        rows.append(row)
        log.info(f"alpha {alpha:.3g}: train loss {row['train_loss']:.4g}, {done.line(len(rows))}")
    return pd.DataFrame(rows).assign(bn_eval=mode, bn_stats=bn_stats)


# ---------------------------------------------------------------- reparametrization
def reparametrization_record(
    run_dir: str,
    alphas: list[float],
    eps: float,
    adaptive_eps: float,
    max_iter: int,
    data,
    device,
    eigen: dict | None = None,
    optimizer: str = "scipy",
) -> dict:
    """Loss, accuracy, phi, adaptive sharpness and (with `eigen`, Lanczos's `ncv` and `tol`)
    the Hessian's top eigenvalue of the final weights rescaled by each alpha (Dinh et al.'s
    function-preserving move).

    alpha = 1 is the checkpoint itself: its phi and top eigenvalue are Table 3's and the
    Hessian table's, which the tables read from those jobs' files (None here), so this job
    need not wait for them. A diverged run gets None everywhere.
    """
    model, spec, summary, epoch = load(run_dir, device)
    mode, chunk = spec.bn_eval, spec.eval_chunk
    record = record_head(
        run_dir,
        spec,
        summary,
        epoch,
        eps=eps,
        adaptive_eps=adaptive_eps,
        max_iter=max_iter,
        eigenvalue=eigen is not None,
        n_train=int(data["train_y"].numel()),
        device=str(device),
    )
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "phi", "adaptive", "lambda_max")
    if diverged(summary):
        return {**record, "alphas": [{"alpha": a, **dict.fromkeys(keys)} for a in alphas]}
    x, y = data["train_x"], data["train_y"]
    rows = []
    done = progress.Progress(len(alphas))
    for alpha in alphas:
        net, row = (model, {"alpha": 1.0}) if alpha == 1 else reparam.rescaled(model, alpha)
        t0 = time.perf_counter()
        for split in ("train", "test"):
            row[f"{split}_loss"], row[f"{split}_acc"] = evaluation.evaluate(
                net, data[f"{split}_x"], data[f"{split}_y"], chunk, mode
            )
        row["phi"] = (
            None
            if alpha == 1
            else phi(net, spec, data, eps, None, max_iter, optimizer=optimizer)["phi"]
        )
        with bn_context(net, spec):
            adaptive = reparam.adaptive_sharpness(
                net, x, y, adaptive_eps, max_iter, spec.seed, chunk, optimizer
            )
        row |= {"adaptive": adaptive["phi"], "adaptive_f_max": adaptive["f_max"],
                "adaptive_zero_params": adaptive["zero_params"]}  # fmt: skip
        row["lambda_max"] = None
        if eigen is not None and alpha != 1:
            with bn_context(net, spec):
                row["lambda_max"] = hessian.top_eigenvalue(
                    net, x, y, tol=eigen["tol"], seed=spec.seed, chunk_size=chunk,
                    ncv=eigen["ncv"],
                )  # fmt: skip
        row["time_s"] = time.perf_counter() - t0
        rows.append(row)
        log.info(
            f"alpha {alpha:g}: train loss {row['train_loss']:.6g}, phi {row['phi']}, "
            f"adaptive {row['adaptive']:.4g}, {done.line(len(rows))}"
        )
    return {**record, "alphas": rows}


# ---------------------------------------------------------------- command line
OPTIMIZER_HELP = "phi's maximization: scipy's L-BFGS-B (the reference) or the same on the device"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Analyses of finished runs (Keskar et al.)")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", required=True, help="prepared data set (.pt)")
    common.add_argument("--out", required=True)
    common.add_argument("--threads", type=int, default=None)
    common.add_argument("--device", default=None, help="default: the run's device setting")
    p = sub.add_parser("sharpness", parents=[common], help="phi of the final weights")
    p.add_argument("--run", required=True)
    p.add_argument("--space", default="full", help="full or sub<p>")
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--optimizer", choices=sharp.OPTIMIZERS, default="scipy", help=OPTIMIZER_HELP)
    p.add_argument("--converge-iter", type=int, default=0,
                   help="iteration cap of the converged estimate; 0: none")  # fmt: skip
    p.add_argument("--random-starts", type=int, default=0)
    p.add_argument("--converge-tol", type=float, default=1e-3)
    p.add_argument("--converge-patience", type=int, default=3)
    p = sub.add_parser("training-sharpness", parents=[common], help="phi at the saved epochs")
    p.add_argument("--run", required=True)
    p.add_argument("--eps", type=float, nargs="+", required=True)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--optimizer", choices=sharp.OPTIMIZERS, default="scipy", help=OPTIMIZER_HELP)
    p.add_argument("--finals", nargs="*", default=[], help="the final weights' phi files")
    p = sub.add_parser("bn-modes", parents=[common], help="accuracy and phi in both BN modes")
    p.add_argument("--run", required=True)
    p.add_argument("--eps", type=float, required=True)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--optimizer", choices=sharp.OPTIMIZERS, default="scipy", help=OPTIMIZER_HELP)
    p.add_argument("--final", required=True, help="Table 3's phi file of the run's own mode")
    p = sub.add_parser("hessian", parents=[common], help="top eigenvalue and trace")
    p.add_argument("--run", required=True)
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--lanczos-vectors", type=int, default=None)
    p.add_argument("--tol", type=float, default=1e-3)
    p = sub.add_parser("parametric", parents=[common], help="the SB-to-LB line")
    p.add_argument("--run-a", required=True, help="alpha = 0 (SB)")
    p.add_argument("--run-b", required=True, help="alpha = 1 (LB)")
    p.add_argument("--points", type=int, default=25)
    p = sub.add_parser("reparametrization", parents=[common], help="Dinh et al.'s rescaling")
    p.add_argument("--run", required=True)
    p.add_argument("--alphas", type=float, nargs="+", required=True)
    p.add_argument("--eps", type=float, required=True, help="phi's eps")
    p.add_argument("--adaptive-eps", type=float, required=True)
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--optimizer", choices=sharp.OPTIMIZERS, default="scipy", help=OPTIMIZER_HELP)
    p.add_argument("--eigenvalue", action="store_true", help="top Hessian eigenvalues too")
    p.add_argument("--lanczos-vectors", type=int, default=None)
    p.add_argument("--tol", type=float, default=1e-3)
    args = parser.parse_args(argv)
    progress.log_to_stderr()

    run = getattr(args, "run", None) or args.run_a
    spec = RunSpec.from_summary(read_json(layout.summary(run)), layout.summary(run))
    device = setup(args.threads, args.device, spec.device)
    data = load_data(args.data, device)
    t0 = time.perf_counter()
    if args.command == "sharpness":
        converge = (
            sharp.Convergence(
                args.converge_iter, args.random_starts, args.converge_tol, args.converge_patience
            )
            if args.converge_iter
            else None
        )
        result = sharpness_record(
            args.run, args.space, args.eps, args.max_iter, data, device, converge, args.optimizer
        )
        write_json(args.out, {**result, "job_time_s": time.perf_counter() - t0})
    elif args.command == "training-sharpness":
        frame = training_sharpness(
            args.run, args.eps, args.max_iter, args.finals, data, device, args.optimizer
        )
        write_text(args.out, frame.to_csv(index=False))
    elif args.command == "bn-modes":
        result = bn_modes_record(
            args.run, args.eps, args.max_iter, args.final, data, device, args.optimizer
        )
        write_json(args.out, {**result, "job_time_s": time.perf_counter() - t0})
    elif args.command == "hessian":
        ncv = args.lanczos_vectors
        result = hessian_record(args.run, args.samples, ncv, args.tol, data, device)
        write_json(args.out, {**result, "job_time_s": time.perf_counter() - t0})
    elif args.command == "reparametrization":
        eigen = {"ncv": args.lanczos_vectors, "tol": args.tol} if args.eigenvalue else None
        result = reparametrization_record(
            args.run, args.alphas, args.eps, args.adaptive_eps, args.max_iter, data, device,
            eigen, args.optimizer,
        )  # fmt: skip
        write_json(args.out, {**result, "job_time_s": time.perf_counter() - t0})
    else:
        frame = parametric(args.run_a, args.run_b, args.points, data, device)
        write_text(args.out, frame.to_csv(index=False))
    print(json.dumps({"command": args.command, "out": args.out, "s": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
