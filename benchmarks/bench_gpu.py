"""GPU throughput: images/s and model FLOPs utilization (MFU) with bf16, channels_last, compile.

For ResNet-20 on CIFAR-shaped input (batch 512 and 8192) and ResNet-50 on ImageNet-shaped
input (batch 256), synthetic data on the device, one SGD training step (forward, backward,
update) is timed with the pipeline's own speed settings (lbgap.training.acceleration, the config
keys amp, channels_last, compile, deterministic): fp32, bf16 autocast, bf16 + channels_last,
bf16 + channels_last + torch.compile (default mode, and reduce-overhead: CUDA graphs), all
with cuDNN autotuning, and bf16 + channels_last with deterministic kernels (the pipeline's
default on a GPU). FLOPs per step are counted once with torch.utils.flop_counter.FlopCounterMode;
MFU = FLOPs/s over the GPU's dense bf16 peak (null for a GPU not in the table; --peak-tflops
sets it). Without a GPU it prints "skipped: no GPU" and writes a JSON saying so, unless the
file already holds a GPU's measurements, which it keeps; `--device cpu` with tiny sizes only
checks that the code runs.
"""

from __future__ import annotations

import json
import time
import traceback

import _common
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lbgap.data.prepare import dataset_info
from lbgap.training.acceleration import Acceleration, configure_determinism
from lbgap.training.models import build_model

# Dense (no sparsity) bf16 tensor-core peaks in FLOP/s, matched in order against the device name.
PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("GH200", 989e12),
    ("H100", 989e12),  # SXM
    ("H200", 989e12),
    ("A100", 312e12),
)
CONFIGS = ("resnet20:cifar10:512", "resnet20:cifar10:8192", "resnet50:imagenet:256")
VARIANTS = {  # name: the run-spec keys of lbgap.training.acceleration
    "fp32": {"amp": "fp32", "channels_last": False, "deterministic": False},
    "bf16": {"amp": "bf16", "channels_last": False, "deterministic": False},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True, "deterministic": False},
    "bf16+channels_last+compile": {
        "amp": "bf16",
        "channels_last": True,
        "compile": True,
        "deterministic": False,
    },
    "bf16+channels_last+compile(reduce-overhead)": {
        "amp": "bf16",
        "channels_last": True,
        "compile": "reduce-overhead",
        "deterministic": False,
    },
    "bf16+channels_last deterministic": {"amp": "bf16", "channels_last": True},
}


def peak_flops(name: str) -> float | None:
    for key, peak in PEAK_BF16:
        if key in name:
            return peak
    return None


def make_step(network: str, dataset: str, batch: int, variant: str, device: torch.device):
    """A closure running one training step of a fresh model on fixed synthetic inputs."""
    info = dataset_info(dataset)
    torch.manual_seed(0)
    model = build_model(network, info.classes).to(device)
    accel = Acceleration.resolve(_common.speed_settings(**VARIANTS[variant]), device, model)
    configure_determinism(device, accel.deterministic)
    model = accel.prepare_model(model)
    x = accel.prepare_inputs(torch.randn(batch, *info.shape, device=device))
    y = torch.randint(0, info.classes, (batch,), device=device)
    net = accel.wrap(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step() -> None:
        accel.begin_step()
        with accel.autocast(device):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def count_flops(network: str, dataset: str, batch: int, device: torch.device) -> int:
    """FLOPs of one eager fp32 training step (forward and backward; the update is negligible)."""
    step = make_step(network, dataset, batch, "fp32", device)
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def time_variant(step, steps: int, warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Seconds per step, `repeats` times, after `warmup` steps (compilation happens there)."""
    for _ in range(warmup):
        step()
    _common.sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        _common.sync(device)
        out.append((time.perf_counter() - t0) / steps)
    return out


def bench_config(config: str, args, device: torch.device, peak: float | None) -> dict:
    network, dataset, batch = config.split(":")
    batch = int(batch)
    flops = count_flops(network, dataset, batch, device)
    rows = {}
    for variant in args.variants:
        compiled = VARIANTS[variant].get("compile", False)
        if compiled and args.no_compile:
            continue
        try:
            step = make_step(network, dataset, batch, variant, device)
            warmup = args.warmup + (3 if compiled else 0)
            times = time_variant(step, args.steps, warmup, args.repeats, device)
        except Exception as err:  # e.g. compile unavailable: report it, measure the rest
            rows[variant] = {"error": f"{type(err).__name__}: {err}"}
            traceback.print_exc()
            continue
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        s = _common.spread(times)["median"]
        rows[variant] = {
            "seconds_per_step": _common.spread(times),
            "images_per_s": batch / s,
            "tflops_per_s": flops / s / 1e12,
            "mfu": None if peak is None else flops / s / peak,
        }
        mfu = rows[variant]["mfu"]
        print(
            f"{network:9s} b{batch:<5d} {variant:44s} {batch / s:9.0f} img/s  "
            f"{flops / s / 1e12:7.1f} TFLOP/s  MFU {'n/a' if mfu is None else f'{mfu:.1%}'}",
            flush=True,
        )
    return {
        "network": network,
        "input": dataset,
        "batch": batch,
        "flops_per_step": flops,
        "variants": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0], "gpu")
    p.add_argument("--device", default="cuda", help="cuda; cpu only checks the code path")
    p.add_argument(
        "--configs", nargs="+", default=list(CONFIGS), help="network:input:batch entries"
    )
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peak-tflops", type=float, default=None, help="override the peak table")
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    device = torch.device(args.device)
    machine = _common.machine_info()
    if device.type == "cuda" and not torch.cuda.is_available():
        if args.out.exists() and not json.loads(args.out.read_text()).get("skipped", True):
            print(f"skipped: no GPU (the GPU measurements in {args.out} are kept)")
            return 0
        print("skipped: no GPU")
        _common.write_result(
            args.out, "gpu", {"skipped": True, "reason": "no GPU visible"}, machine
        )
        return 0
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(name)
    configs = {c: bench_config(c, args, device, peak) for c in args.configs}
    _common.write_result(
        args.out,
        "gpu",
        {
            "skipped": False,
            "device_name": name,
            "peak_bf16_flops": peak,
            "what": "one SGD training step on synthetic data; MFU = counted FLOPs / time / "
            "dense bf16 peak",
            "configs": configs,
        },
        machine,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
