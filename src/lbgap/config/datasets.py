"""The datasets the pipeline knows and where their files live, without reading them.

Torch-free (and numpy-free), so that planning the workflow (reading the Snakefile, the matrix,
the tables) never imports torch: the sizes, shapes, classes and folders of each dataset, the
system packages that install some, whether a dataset's files are present, and the checksum of a
prepared file. Reading and preparing the files is lbgap.data.prepare's job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path


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
        "put MNIST's idx files (plain or .gz) in {root}/MNIST/raw/ or set download: true",
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
        "put Fashion-MNIST's idx files (plain or .gz) in {root}/FashionMNIST/raw/, install "
        "Debian's dataset-fashion-mnist (make setup does so as root), or set download: true",
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
        721520,  # training and test frames, Keskar et al. 2017, Table 1
        310920,
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


class _Missing(DataUnavailable):
    """A file is absent (rather than present but unreadable), so the next source may be tried."""


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


# How tables and labels name each dataset ("F1 ({dataset})" in config.yaml).
DATASET_TITLES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "timit": "TIMIT",
    "imagenet": "ImageNet",
}


# Each dataset's folder under the data root, laid out as distributed (and as torchvision
# downloads it). STANDIN.json, when present, sits here; idx files sit in its raw/ subfolder.
FOLDERS = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "timit": "timit",
    "imagenet": "imagenet",
}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}
CIFAR_META = {"cifar10": "batches.meta", "cifar100": "meta"}
FORMATS = {"mnist": "idx", "fashion_mnist": "idx", "cifar10": "pickle", "cifar100": "pickle"}
STANDIN_FILE = "STANDIN.json"
# Where a system package installs a dataset's files as shipped (idx files side by side), searched
# after the user's data_root and before any download: Debian's dataset-fashion-mnist.
SYSTEM_FOLDERS: dict[str, tuple[Path, ...]] = {
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
SYSTEM_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}


def system_folders(name: str, system: bool = True) -> list[Path]:
    """The system package's folders that hold the dataset's training images (plain or .gz)."""
    if not system:
        return []
    first = IDX_FILES["train"][0]
    return [
        folder
        for folder in SYSTEM_FOLDERS.get(name, ())
        if (folder / first).is_file() or (folder / f"{first}.gz").is_file()
    ]


def present(name: str, root: Path, system: bool = True) -> bool:
    """Whether the dataset's files can be read without a download (a cheap look, no reading).

    Where the workflow is planned: a dataset that is absent may fall back to another one at
    a scale that says so (scales.<scale>.fallback), before any run is planned on it.
    """
    if name == "imagenet":
        return (root / FOLDERS[name] / "train").is_dir()
    if FORMATS.get(name) == "idx":
        first = root / FOLDERS[name] / "raw" / IDX_FILES["train"][0]
        local = first.is_file() or first.with_name(first.name + ".gz").is_file()
        return local or bool(system_folders(name, system))
    if FORMATS.get(name) == "pickle":
        return (root / FOLDERS[name] / CIFAR_FILES[name]["test"][0]).is_file()
    return (root / FOLDERS[name] / "timit.npz").is_file()


def _digests(path: Path) -> tuple[str, str]:
    """sha256 (the manifest's identity of a file) and md5 (what torchvision publishes)."""
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _sha256(path: Path) -> str:
    return _digests(path)[0]


def prepared_mismatch(path: str | Path) -> str | None:
    """Why the prepared file is not the one its manifest recorded (SHA-256), or None."""
    manifest = Path(path).with_suffix(".json")
    if not manifest.exists():
        return None
    recorded = json.loads(manifest.read_text()).get("prepared_sha256")
    if recorded and _sha256(Path(path)) != recorded:
        return f"{path} does not match the SHA-256 its manifest {manifest} recorded"
    return None
