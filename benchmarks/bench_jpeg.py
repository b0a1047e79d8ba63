"""ImageNet's JPEG input path: images per CPU core, and on a GPU, training fed by real files.

Writes an ImageNet-like folder of JPEGs itself (shorter side 300-500 px, mostly 4:3 and 3:4,
some 3:2, square and wider; multi-scale textured content so that files average about 110 KB,
like ImageNet's; the JSON reports the actual mean), then measures:

- per CPU core (process CPU time, so that other processes on a shared machine do not skew it;
  wall-clock rates beside): the current path, PIL decoding + RandomResizedCrop(224) + flip as a
  DataLoader worker does it (lbgap.data.imagefolder.SeededImages), against torchvision's decode_jpeg
  on the CPU with the same crops (lbgap.data.imagefolder.SeededJpegs + lbgap.data.jpeg_decode, the
  device path run on a CPU), and the device path's worker share alone (read, header, draws);
- on a GPU (or with --train-device): the training images/s of ResNet-50 (bf16, channels_last,
  compile reduce-overhead, autotuned: the fastest step of results/gpu.json) fed by the device
  path and by the PIL path, against the same step on synthetic data (target: device path >= 0.9
  of synthetic);
- the projected time to train 90 epochs of ImageNet (1,281,167 images) on 8 and 256 GPUs from
  the per-GPU rate (measured here, or without a GPU the synthetic rate in results/gpu.json,
  labelled so) and a stated DDP efficiency, beside Goyal et al.'s one hour on 256 GPUs, and the
  CPU cores per GPU that each path needs to feed that rate.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import _common
import torch
import torch.nn.functional as F
from PIL import Image

from lbgap.data.imagefolder import ImageStream, SeededImages, SeededJpegs, train_transform
from lbgap.data.jpeg_decode import collate
from lbgap.data.prepare import dataset_info, normalize
from lbgap.training.acceleration import Acceleration, configure_determinism
from lbgap.training.models import build_model

IMAGENET_TRAIN = 1_281_167
EPOCHS = 90
GOYAL = {"gpus": 256, "hours": 1.0, "note": "Goyal et al. 2017: ResNet-50, batch 8k, 256 P100"}
TARGET = 0.9  # real-data training images/s over synthetic, on one GPU
# (width / height, share): ImageNet is mostly 500x375 and 375x500, with 3:2, square and panoramas.
ASPECTS = ((4 / 3, 0.55), (3 / 4, 0.17), (3 / 2, 0.12), (1.0, 0.08), (16 / 9, 0.05), (2.0, 0.03))
QUALITY = 90
FINE_NOISE = 14.0  # per-pixel noise amplitude: sets the files' entropy, so their size and cost
FASTEST = {"amp": "bf16", "channels_last": True, "compile": "reduce-overhead"}


# ---------------------------------------------------------------- the folder
def texture(height: int, width: int, g: torch.Generator) -> torch.Tensor:
    """HWC uint8: noise at four scales (smooth shapes to fine detail) plus per-pixel grain."""
    img = torch.zeros(1, 3, height, width)
    for cells, amp in ((3, 50.0), (12, 35.0), (48, 25.0), (160, 15.0)):
        noise = torch.randn(1, 3, cells, max(1, round(cells * width / height)), generator=g)
        img += amp * F.interpolate(noise, size=(height, width), mode="bicubic")
    img += FINE_NOISE * torch.randn(1, 3, height, width, generator=g)
    return (img[0] + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()


def image_shape(rng: random.Random) -> tuple[int, int]:
    """(height, width): shorter side 300-500 px, aspect ratio drawn from ASPECTS."""
    aspect = rng.choices([a for a, _ in ASPECTS], weights=[w for _, w in ASPECTS])[0]
    short = rng.randint(300, 500)
    long = round(short * max(aspect, 1 / aspect))
    return (short, long) if aspect >= 1 else (long, short)


def write_folder(root: Path, images: int, classes: int, seed: int = 0) -> dict:
    """train/ and val/ class folders of JPEGs (val: one per class), unless already written."""
    marker = root / "folder.json"
    want = {"images": images, "classes": classes, "seed": seed, "quality": QUALITY}
    if marker.exists() and json.loads(marker.read_text())["made"] == want:
        return json.loads(marker.read_text())
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    sizes, pixels = [], []
    for split, n in (("train", images), ("val", classes)):
        for i in range(n):
            folder = root / split / f"n{i % classes:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            h, w = image_shape(rng)
            buf = io.BytesIO()
            Image.fromarray(texture(h, w, g).numpy()).save(buf, "JPEG", quality=QUALITY)
            (folder / f"{split}_{i}.JPEG").write_bytes(buf.getvalue())
            if split == "train":
                sizes.append(len(buf.getvalue()))
                pixels.append(h * w)
    stats = {
        "made": want,
        "train_images": images,
        "mean_file_kb": sum(sizes) / len(sizes) / 1000,
        "mean_megapixels": sum(pixels) / len(pixels) / 1e6,
        "total_mb": sum(sizes) / 1e6,
    }
    marker.write_text(json.dumps(stats))
    return stats


# ---------------------------------------------------------------- per CPU core
def cpu_sides(train: str, size: int, batch: int) -> dict[str, Callable[[list], None]]:
    """Per batch of keys, what each path spends CPU on for a training batch of that size."""
    pil = SeededImages(train, train_transform(size), seed=0)
    jpegs = SeededJpegs(train, train_transform(size), seed=0)
    cpu = torch.device("cpu")

    def pil_batch(keys: list) -> None:  # a DataLoader worker: load, augment, collate
        torch.stack([pil[k][0].as_subclass(torch.Tensor) for k in keys])

    def decode_jpeg_batch(keys: list) -> None:  # the device path, all of it on this CPU
        jpegs.on_device(*collate([jpegs[k] for k in keys])[:2], cpu)

    def worker_share(keys: list) -> None:  # what the device path leaves to the workers
        collate([jpegs[k] for k in keys])

    return {"pil": pil_batch, "decode_jpeg_cpu": decode_jpeg_batch, "worker_share": worker_share}


def per_core(train: str, n: int, size: int, batch: int, rounds: int) -> dict:
    """Images per process CPU-second and per wall second, each side over all n images a round."""
    sides = cpu_sides(train, size, batch)
    keys = [(i, 0) for i in range(n)]
    chunks = [keys[i : i + batch] for i in range(0, n, batch)]
    for work in sides.values():  # warm: page cache, allocator
        work(chunks[0])
    cpu: dict[str, list[float]] = {k: [] for k in sides}
    wall: dict[str, list[float]] = {k: [] for k in sides}

    def measure(name: str) -> Callable[[], float]:
        def run() -> float:
            with _common.Timer() as t:
                for chunk in chunks:
                    sides[name](chunk)
            cpu[name].append(n / t.cpu)
            wall[name].append(n / t.wall)
            return t.cpu_share

        return run

    shares = _common.alternate({k: measure(k) for k in sides}, rounds)
    out = {
        k: {
            "images_per_cpu_s": _common.spread(cpu[k]),
            "images_per_wall_s": _common.spread(wall[k]),
            "cpu_share": _common.spread(shares[k]),
        }
        for k in sides
    }
    out["decode_jpeg_cpu_over_pil"] = _common.ratios(cpu["decode_jpeg_cpu"], cpu["pil"])
    return out


# ---------------------------------------------------------------- training on the device
def training_step(network: str, device: torch.device, settings: dict) -> Callable:
    info = dataset_info("imagenet")
    torch.manual_seed(0)
    model = build_model(network, info.classes).to(device)
    accel = Acceleration.resolve(
        _common.speed_settings(**{**settings, "deterministic": False}), device, model
    )
    configure_determinism(device, accel.deterministic)
    model = accel.prepare_model(model)
    net = accel.wrap(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        accel.begin_step()
        with accel.autocast(device):
            loss = F.cross_entropy(net(accel.prepare_inputs(x)), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def train_rates(folders: dict[str, str], n: int, args, device: torch.device) -> dict:
    """Training images/s fed by each path and on synthetic data, alternating rounds."""
    info = dataset_info("imagenet")
    settings = FASTEST if device.type == "cuda" else {}
    step = training_step(args.network, device, settings)
    g = torch.Generator().manual_seed(0)
    shape = (args.train_batch, 3, args.size, args.size)
    x8 = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    synthetic = (
        normalize(x8.to(device), info),
        torch.randint(0, info.classes, (args.train_batch,), device=device),
    )
    for _ in range(args.warmup):  # compilation and CUDA graphs happen here
        step(*synthetic)
    streams = {
        decode: ImageStream(
            folders, info, 0, device, args.size, args.workers, augment=True, decode=decode
        )
        for decode in ("device", "cpu")
    }
    rounds = itertools.count()

    def real(decode: str) -> Callable[[], float]:
        def run() -> float:
            r = next(rounds)
            order = torch.randint(
                n, (args.warmup + args.train_steps, args.train_batch), generator=g
            )
            batches: Iterator = streams[decode].train_batches(list(order), epoch=r)
            for _ in range(args.warmup):  # workers start and fill their queues
                step(*next(batches))
            return timed(lambda: step(*next(batches)))

        return run

    def timed(work: Callable[[], None]) -> float:
        _common.sync(device)
        with _common.Timer() as t:
            for _ in range(args.train_steps):
                work()
            _common.sync(device)
        return args.train_steps * args.train_batch / t.wall

    sides = {
        "synthetic": lambda: timed(lambda: step(*synthetic)),
        "device_decode": real("device"),
        "pil_workers": real("cpu"),
    }
    values = _common.alternate(sides, args.rounds)
    out = {k: _common.spread(v) for k, v in values.items()}
    ratio = _common.ratios(values["device_decode"], values["synthetic"])
    return {
        "images_per_s": out,
        "device_decode_over_synthetic": ratio,
        "pil_workers_over_synthetic": _common.ratios(values["pil_workers"], values["synthetic"]),
        "target": TARGET,
        "met": ratio["median"] >= TARGET if device.type == "cuda" else None,
        "settings": settings,
        "network": args.network,
        "batch": args.train_batch,
        "steps_per_round": args.train_steps,
        "workers": streams["device"].workers,
    }


# ---------------------------------------------------------------- projection
def projection(per_gpu: float, source: str, efficiency: float, per_core_rates: dict) -> dict:
    """90 epochs of ImageNet on 8 and 256 GPUs at per_gpu images/s each, DDP at `efficiency`."""
    images = EPOCHS * IMAGENET_TRAIN
    hours = {
        str(gpus): images / (per_gpu * gpus * (efficiency if gpus > 1 else 1.0)) / 3600
        for gpus in (1, 8, 256)
    }
    return {
        "per_gpu_images_per_s": per_gpu,
        "per_gpu_source": source,
        "ddp_efficiency": efficiency,
        "epochs": EPOCHS,
        "imagenet_train_images": IMAGENET_TRAIN,
        "hours_by_gpus": hours,
        "goyal2017": GOYAL,
        "cpu_cores_per_gpu": {
            path: per_gpu / rate for path, rate in per_core_rates.items() if rate > 0
        },
    }


def synthetic_gpu_rate() -> tuple[float, str]:
    """ResNet-50's fastest step on synthetic data in results/gpu.json, without a GPU run."""
    gpu = _common.load_json(_common.RESULTS / "gpu.json")
    variants = gpu["configs"]["resnet50:imagenet:256"]["variants"]
    rate = variants["bf16+channels_last+compile(reduce-overhead)"]["images_per_s"]
    when = f"{gpu['device_name']}, {gpu['machine']['date'][:10]}"
    return rate, f"results/gpu.json: ResNet-50 b256, synthetic data, {when} (no GPU in this run)"


def main(argv: list[str] | None = None) -> int:
    gpu = torch.cuda.is_available()
    p = _common.parser(__doc__.splitlines()[0], "jpeg")
    p.add_argument("--images", type=int, default=512, help="training JPEGs to write")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where to write them (reused if written with the same options); default: a "
        "temporary folder",
    )
    p.add_argument("--size", type=int, default=224, help="RandomResizedCrop output side")
    p.add_argument("--batch", type=int, default=64, help="images per batch, CPU measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--train-device",
        default="cuda" if gpu else None,
        help="device of the training comparison (default: cuda when present, else skipped); "
        "cpu with a small --network only checks the code path",
    )
    p.add_argument("--network", default="resnet50")
    p.add_argument("--train-batch", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=30, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=40, help="untimed steps before each round")
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: the pipeline's)"
    )
    p.add_argument("--ddp-efficiency", type=float, default=0.9)
    args = p.parse_args(argv)
    _common.set_threads(args.threads)
    machine = _common.machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.folder or Path(tmp)
        folder = write_folder(root, args.images, args.classes)
        folders = {s: str(root / s) for s in ("train", "val")}
        print(
            f"{args.images} JPEGs, mean {folder['mean_file_kb']:.0f} KB, "
            f"{folder['mean_megapixels']:.3f} MP",
            flush=True,
        )
        cores = per_core(folders["train"], args.images, args.size, args.batch, args.rounds)
        for k in ("pil", "decode_jpeg_cpu", "worker_share"):
            print(
                f"{k:16s} {cores[k]['images_per_cpu_s']['median']:8.0f} images/CPU-s  "
                f"{cores[k]['images_per_wall_s']['median']:8.0f} images/s wall",
                flush=True,
            )
        train = None
        if args.train_device:
            train = train_rates(folders, args.images, args, torch.device(args.train_device))
            for k, v in train["images_per_s"].items():
                print(f"train {k:14s} {v['median']:8.0f} images/s", flush=True)
    if train and args.train_device == "cuda":
        per_gpu, source = train["images_per_s"]["device_decode"]["median"], "measured here"
    else:
        per_gpu, source = synthetic_gpu_rate()
    rates = {k: cores[k]["images_per_cpu_s"]["median"] for k in ("pil", "worker_share")}
    plan = projection(per_gpu, source, args.ddp_efficiency, rates)
    print(
        f"90 epochs at {per_gpu:.0f} images/s per GPU ({source}): "
        + ", ".join(f"{g} GPUs {h:.2f} h" for g, h in plan["hours_by_gpus"].items())
        + f"; Goyal et al.: {GOYAL['hours']} h on {GOYAL['gpus']}. CPU cores per GPU: "
        + ", ".join(f"{k} {v:.1f}" for k, v in plan["cpu_cores_per_gpu"].items()),
        flush=True,
    )
    _common.write_result(
        args.out,
        "jpeg",
        {
            "what": "ImageNet-like JPEGs: images per CPU-second of PIL decoding + "
            "RandomResizedCrop + flip against decode_jpeg on the CPU; training images/s with "
            "real decoding against synthetic data; 90-epoch projection",
            "folder": {k: v for k, v in folder.items() if k != "made"},
            "crop_size": args.size,
            "cpu_batch": args.batch,
            "rounds": args.rounds,
            "per_core": cores,
            "training": train,
            "projection": plan,
            "cpu_affinity": len(os.sched_getaffinity(0)),
            "cores_needed_note": "pil: cores of PIL workers per GPU; worker_share: cores of the "
            "device path's workers (reading and drawing only), the decoding being on the GPU",
        },
        machine,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
