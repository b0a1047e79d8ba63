"""Small, seeded stand-ins for the datasets, written in each real dataset's exact on-disk layout.

The pipeline can then be run end to end, and its loaders tested, without the real data (TIMIT
and ImageNet are licensed; none can be downloaded offline). The stand-ins go through the very
readers the real files go through, and each folder's STANDIN.json records the real sizes the
files stand for, so that batch sizes given as shares of the training set resolve as on the
real data. Same seed, same bytes: gzip without timestamps, fixed zip dates, fixed JPEG quality.

    python -m lbgap.data.standins --root DIR [--datasets mnist cifar10 ...] [--seed N]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pickle
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lbgap.data.prepare import (
    CIFAR_FILES,
    CIFAR_META,
    DATASETS,
    FOLDERS,
    IDX_FILES,
    STANDIN_FILE,
)
from lbgap.words import plural

N_TRAIN, N_TEST = 256, 128  # MNIST-style and CIFAR stand-ins
TIMIT_TRAIN, TIMIT_TEST = 512, 128
IMAGENET_CLASSES, IMAGENET_TRAIN, IMAGENET_VAL = 8, 12, 4  # images per class
JPEG_QUALITY = 90
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _class_images(rng: np.random.Generator, y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 noise plus a bright class-specific square, so that a network can learn a little."""
    c, h, w = shape
    x = rng.integers(0, 96, (len(y), c, h, w), dtype=np.uint8)
    size = h // 4
    for i, label in enumerate(y):
        row, col = divmod(int(label) % 16, 4)
        x[i, int(label) % c, row * size : (row + 1) * size, col * size : (col + 1) * size] = 255
    return x


def _idx(array: np.ndarray) -> bytes:
    """The idx format, gzipped as shipped: magic (0, 0, 0x08, ndim), big-endian sizes, bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _write_idx(rng: np.random.Generator, classes: int) -> dict:
    files = {}
    for (images, labels), n in zip(IDX_FILES.values(), (N_TRAIN, N_TEST), strict=True):
        y = rng.integers(0, classes, n).astype(np.uint8)
        x = _class_images(rng, y, (1, 28, 28))[:, 0]
        files[f"raw/{images}.gz"] = _idx(x)
        files[f"raw/{labels}.gz"] = _idx(y)
    return files


def _pickle(entry: dict) -> bytes:
    return pickle.dumps(entry, protocol=2)


def _write_cifar(name: str, rng: np.random.Generator) -> dict:
    """Pickled dicts with bytes keys, as the Python-2 originals read with encoding="bytes"."""
    classes = DATASETS[name].classes
    files = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        names = CIFAR_FILES[name][split]
        for part, count in zip(names, np.array_split(np.arange(n), len(names)), strict=True):
            y = rng.integers(0, classes, len(count))
            x = _class_images(rng, y, (3, 32, 32)).reshape(len(y), 3072)
            entry = {b"batch_label": f"stand-in {part}".encode(), b"data": x,
                     b"filenames": [f"{part}_{i}.png".encode() for i in range(len(y))]}  # fmt: skip
            if name == "cifar10":
                entry[b"labels"] = y.tolist()
            else:
                entry[b"fine_labels"], entry[b"coarse_labels"] = y.tolist(), (y // 5).tolist()
            files[part] = _pickle(entry)
    if name == "cifar10":
        meta = {b"label_names": [f"class{i}".encode() for i in range(10)],
                b"num_cases_per_batch": N_TRAIN // 5, b"num_vis": 3072}  # fmt: skip
    else:
        meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}  # fmt: skip
    files[CIFAR_META[name]] = _pickle(meta)
    return files


def _write_timit(rng: np.random.Generator) -> dict:
    """timit.npz with fixed zip dates (np.savez stamps the current time)."""
    classes = DATASETS["timit"].classes
    centres = rng.normal(size=(classes, 360)).astype(np.float32)
    arrays = {}
    for split, n in (("train", TIMIT_TRAIN), ("test", TIMIT_TEST)):
        y = rng.integers(0, classes, n)
        arrays[f"x_{split}"] = centres[y] + rng.normal(size=(n, 360)).astype(np.float32)
        arrays[f"y_{split}"] = y.astype(np.int64)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{key}.npy", ZIP_DATE), npy.getvalue())
    return {"timit.npz": buffer.getvalue()}


def _write_imagenet(rng: np.random.Generator) -> dict:
    """JPEGs in class folders, 40-120 px, aspect ratios 0.5-2, and some grayscale like ImageNet."""
    from PIL import Image

    files = {}
    for split, n in (("train", IMAGENET_TRAIN), ("val", IMAGENET_VAL)):
        for label in range(IMAGENET_CLASSES):
            wnid = f"n{label:08d}"
            for i in range(n):
                side = int(rng.integers(40, 121))
                ratio = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
                h, w = side, int(np.clip(round(side * ratio), 20, 240))
                pixels = rng.integers(0, 160, (h, w, 3), dtype=np.uint8)
                pixels[..., label % 3] = 64 + 24 * label  # a colour cue per class
                image = Image.fromarray(pixels)
                if i == 0 and label % 4 == 0:
                    image = image.convert("L")
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=JPEG_QUALITY)
                files[f"{split}/{wnid}/{wnid}_{split}_{i}.JPEG"] = buffer.getvalue()
    return files


WRITERS: dict[str, Callable[[np.random.Generator], dict]] = {
    "mnist": lambda rng: _write_idx(rng, 10),
    "fashion_mnist": lambda rng: _write_idx(rng, 10),
    "cifar10": lambda rng: _write_cifar("cifar10", rng),
    "cifar100": lambda rng: _write_cifar("cifar100", rng),
    "timit": _write_timit,
    "imagenet": _write_imagenet,
}


def write_standins(root: Path, datasets: list[str] | None = None, seed: int = 0) -> dict:
    """Write stand-ins under `root`; returns {dataset: {"folder", "files", "stands_for"}}.

    Each dataset draws from its own stream of `seed`, so writing one dataset alone gives the
    same bytes as writing all of them. A folder holding files but no STANDIN.json is refused:
    it may be the real data.
    """
    root = Path(root)
    names = list(WRITERS) if datasets is None else datasets
    unknown = sorted(set(names) - set(WRITERS))
    if unknown:
        raise ValueError(f"unknown datasets {unknown}; choose from {sorted(WRITERS)}")
    written = {}
    for name in names:
        folder = root / FOLDERS[name]
        if folder.is_dir() and any(folder.iterdir()) and not (folder / STANDIN_FILE).is_file():
            raise FileExistsError(f"{folder} holds files that are not stand-ins; not overwriting")
        rng = np.random.default_rng([seed, list(WRITERS).index(name)])
        files = WRITERS[name](rng)
        info = DATASETS[name]
        stands_for = {"n_train": info.n_train, "n_test": info.n_test}
        record = {"dataset": name, "seed": seed, "standin": True, "stands_for": stands_for}
        files[STANDIN_FILE] = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        for relative, content in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        written[name] = {"folder": str(folder), "files": sorted(files), "stands_for": stands_for}
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write seeded stand-ins in the real layouts.")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--datasets", nargs="+", choices=sorted(WRITERS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        written = write_standins(args.root, args.datasets, args.seed)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, entry in written.items():
        sizes = entry["stands_for"]
        print(
            f"{name}: {plural(len(entry['files']), 'file')} in {entry['folder']} "
            f"(stands for {sizes['n_train']} train / {sizes['n_test']} test)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
