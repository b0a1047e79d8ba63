"""Sharpness cost: one Keskar sharpness measurement against its own loss-and-gradient evaluations.

`lbgap.analysis.sharpness.sharpness` returns the wall time of the whole measurement (setup,
L-BFGS-B, restoring the weights) and the time spent inside the loss-and-gradient evaluations; their
ratio is the overhead that is not the unavoidable full-training-set passes. Target (issue 7): <=
1.2. The process CPU time of both is recorded too; as in the other benchmarks, the verdict uses the
CPU-time ratio when the process got less than 90% of a core (a shared machine), else the wall
ratio (numpy's BLAS threads can push CPU time above wall time on an idle machine).
Scales as config.yaml has them for Keskar et al.'s F1 rows: 60,000 training samples at the
scale's network width (quick: Fashion-MNIST at 3/8 width; small: MNIST at full width). The
samples are synthetic, MNIST-shaped (random pixels: the cost of a pass does not depend on them).
`--n-train 4000 --width 1` measures the 4,000-digit setting the quick scale had before. The
network is first trained for one epoch so that L-BFGS-B starts near a minimum, as it does in
the pipeline.

Both maximizations (`--optimizers`, default both) are measured side by side on the same network:
scipy's L-BFGS-B (the pipeline's default and reference) and `device`, the same algorithm in torch
on the model's device (lbgap.analysis.lbfgsb); per optimizer the same ratio, and how far the
device's phi is from scipy's (relative difference, per repeat).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common
import torch
import torch.nn.functional as F
import yaml

from lbgap.analysis.sharpness import OPTIMIZERS, sharpness
from lbgap.data.prepare import load_prepared
from lbgap.training.models import build_model

SCALES = {"quick": 60000, "small": 60000}  # Keskar's F1 rows: 60,000 training samples
TARGET = 1.2


def scale_width(scale: str) -> float:
    """The scale's network width, as the pipeline trains it (config.yaml)."""
    return float(
        yaml.safe_load((_common.ROOT / "config.yaml").read_text())["scales"][scale]["width"]
    )


def scale_data(scale: str, folder: Path, n_train: int | None) -> tuple[dict, str]:
    """(prepared data on the CPU, where it came from)."""
    n = n_train or SCALES[scale]
    out = folder / f"mnist_{scale}.pt"
    _common.synthetic_prepared(out, "mnist", n, 100)
    return load_prepared(out), f"{n} synthetic MNIST-shaped samples"


def train_one_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Adam, batch 256, one epoch: a point near a minimum rather than the random init."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for idx in torch.randperm(len(y), generator=gen).split(256):
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        opt.zero_grad()


def bench_scale(
    scale: str,
    subspace: int | None,
    repeats: int,
    width: float | None,
    n_train: int | None,
    eps: float,
    optimizers: tuple[str, ...] = OPTIMIZERS,
    device: str = "cpu",
) -> dict:
    width = scale_width(scale) if width is None else width
    with tempfile.TemporaryDirectory() as tmp:
        data, source = scale_data(scale, Path(tmp), n_train)
    x, y = data["train_x"], data["train_y"]
    torch.manual_seed(0)
    model = build_model("F1", 10, width)
    train_one_epoch(model, x, y)
    model.eval()
    model, x, y = model.to(device), x.to(device), y.to(device)  # trained on the CPU, measured here
    keys = ("wall_time_s", "eval_time_s", "cpu_time_s", "eval_cpu_s", "n_evals", "iterations",
            "phi", "n_params", "optimizer")  # fmt: skip
    runs: dict[str, list[dict]] = {opt: [] for opt in optimizers}
    for _ in range(repeats):  # interleaved, so a change in the machine's load hits both alike
        for opt in optimizers:
            r = sharpness(model, x, y, eps=eps, subspace_dim=subspace, max_iter=10, optimizer=opt)
            runs[opt].append({k: r[k] for k in keys})
    per_optimizer = {opt: summarize(rs) for opt, rs in runs.items()}
    first = per_optimizer[optimizers[0]]
    result = {
        "data": source,
        "n_train": len(y),
        "network": "F1",
        "width": width,
        "subspace_dim": subspace,
        "eps": eps,
        "max_iter": 10,
        "device": device,
        "optimizers": per_optimizer,
        **{
            k: first[k]
            for k in (
                "runs",
                "seconds_per_evaluation",
                "seconds_per_sharpness",
                "wall_over_eval",
                "cpu_over_eval_cpu",
                "basis",
            )
        },
        "target": TARGET,
        "met": all(o["met"] for o in per_optimizer.values()),
    }
    if {"scipy", "device"} <= set(runs):
        result["phi_rel_diff_device_vs_scipy"] = [
            abs(d["phi"] - s["phi"]) / abs(s["phi"]) if s["phi"] else abs(d["phi"])
            for d, s in zip(runs["device"], runs["scipy"], strict=True)
        ]
    space = "full space" if subspace is None else f"subspace {subspace}"
    for opt, o in per_optimizer.items():
        ratio = o["ratio"]
        print(
            f"{scale:6s} {space:13s} {opt:6s} {o['seconds_per_evaluation']['median']:.3f} "
            f"s/evaluation, {o['seconds_per_sharpness']['median']:.1f} s/sharpness "
            f"({o['runs'][0]['n_evals']} evaluations), {o['basis']}/eval {ratio['median']:.3f} "
            f"[{ratio['min']:.3f}, {ratio['max']:.3f}] (CPU share {o['cpu_share']['median']:.2f})"
            f"  {'met' if o['met'] else 'MISSED'}",
            flush=True,
        )
    if "phi_rel_diff_device_vs_scipy" in result:
        diffs = ", ".join(f"{v:.2e}" for v in result["phi_rel_diff_device_vs_scipy"])
        print(f"{scale:6s} {space:13s} |phi_device - phi_scipy| / phi_scipy: {diffs}", flush=True)
    return result


def summarize(runs: list[dict]) -> dict:
    """One optimizer's repeats: time ratios, seconds per evaluation and per measurement."""
    wall_ratio = _common.spread([r["wall_time_s"] / r["eval_time_s"] for r in runs])
    cpu_ratio = _common.spread([r["cpu_time_s"] / r["eval_cpu_s"] for r in runs])
    cpu_share = _common.spread([r["cpu_time_s"] / r["wall_time_s"] for r in runs])
    basis = "cpu" if cpu_share["median"] < 0.9 else "wall"
    ratio = cpu_ratio if basis == "cpu" else wall_ratio
    return {
        "runs": runs,
        "seconds_per_evaluation": _common.spread([r["eval_time_s"] / r["n_evals"] for r in runs]),
        "cpu_seconds_per_evaluation": _common.spread(
            [r["eval_cpu_s"] / r["n_evals"] for r in runs]
        ),
        "seconds_per_sharpness": _common.spread([r["wall_time_s"] for r in runs]),
        "wall_over_eval": wall_ratio,
        "cpu_over_eval_cpu": cpu_ratio,
        "cpu_share": cpu_share,
        "basis": basis,
        "ratio": ratio,
        "met": ratio["median"] <= TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], "sharpness")
    p.add_argument("--scales", nargs="+", choices=sorted(SCALES), default=["quick"])
    p.add_argument(
        "--subspace",
        nargs="+",
        type=int,
        default=[0],
        help="random-subspace dimensions p to measure; 0 is the full space (A = I)",
    )
    p.add_argument("--repeats", type=int, default=2, help="sharpness measurements per setting")
    p.add_argument("--width", type=float, default=None, help="default: the scale's width")
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--n-train", type=int, default=None, help="override the scale's sample count")
    p.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    p.add_argument("--device", default="cpu", help="where the network and its data are (cuda)")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    machine = _common.machine_info()
    # Results for scales not run now are kept (the small scale takes minutes, `make bench` runs
    # the quick one); each entry carries its own date and load.
    old = _common.load_json(args.out).get("results", {}) if args.out.exists() else {}
    results = dict(old)
    for scale in args.scales:
        for p_dim in args.subspace:
            key = f"{scale}/{'full' if not p_dim else f'subspace{p_dim}'}"
            key += "" if args.device == "cpu" else f"/{args.device}"
            entry = bench_scale(
                scale, p_dim or None, args.repeats, args.width, args.n_train, args.eps,
                tuple(args.optimizers), args.device,
            )  # fmt: skip
            results[key] = {**entry, "threads": args.threads, "measured": _common.machine_info()}
    _common.write_result(
        args.out,
        "sharpness",
        {
            "what": "one full Keskar sharpness measurement (10 L-BFGS-B iterations): wall time "
            "over the time inside its loss-and-gradient evaluations, and seconds per evaluation, "
            "per optimizer (scipy's L-BFGS-B, the same on the device), and the relative "
            "difference of their phi",
            "results": results,
            "all_met": all(r["met"] for r in results.values()),
        },
        machine,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
