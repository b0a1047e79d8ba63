"""Stand-ins: written in the real layouts, read by the same loaders, same bytes every time."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from lbgap.data import prepare as data
from lbgap.data import standins
from lbgap.data.imagefolder import ImageStream

SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          "cifar100": (3, 32, 32), "timit": (360,)}  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    standins.write_standins(root)
    return root


def digests(folder) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_tensor_standins_round_trip(root, tmp_path, name):
    info = data.dataset_info(name)
    out = tmp_path / f"{name}.pt"
    record = data.prepare(name, root, out, tmp_path / f"{name}.json")
    assert record["source"].startswith("user folder")
    assert (record["n_train"], record["n_test"]) == (info.n_train, info.n_test)
    assert record["standin"] is True and record["official_files"] == "differ"
    assert data.STANDIN_FILE in record["source_files"]
    assert json.loads((tmp_path / f"{name}.json").read_text()) == record
    loaded = data.load_prepared(out)
    assert loaded["n_train"] == info.n_train and loaded["standin"] is True
    for split in ("train", "test"):
        x, y = loaded[f"{split}_x"], loaded[f"{split}_y"]
        assert x.shape == (record[f"stored_{split}"], *SHAPES[name])
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(y) == len(x)
        assert 0 <= y.min() and y.max() < info.classes
    assert len(torch.unique(loaded["train_y"])) > 1


def test_subset_of_a_standin_caps_stored_and_stood_for_sizes(root, tmp_path):
    record = data.prepare("cifar10", root, tmp_path / "c.pt", tmp_path / "c.json", 100, 50)
    assert (record["stored_train"], record["stored_test"]) == (100, 50)
    assert (record["n_train"], record["n_test"]) == (100, 50)
    big = data.prepare("cifar10", root, tmp_path / "b.pt", tmp_path / "b.json", 1000)
    assert (big["stored_train"], big["n_train"]) == (256, 1000)
    assert data.load_prepared(tmp_path / "b.pt")["n_train"] == 1000


def test_imagenet_standin_streams_through_imagefolder(root, tmp_path):
    out = tmp_path / "in.pt"
    record = data.prepare("imagenet", root, out, tmp_path / "in.json")
    assert (record["n_train"], record["n_test"]) == (1281167, 50000)
    assert (record["stored_train"], record["stored_test"]) == (96, 32)
    assert record["standin"] is True and record["official_files"] == "differ"
    loaded = data.load_prepared(out)
    assert loaded["n_train"] == 1281167
    stream = ImageStream(loaded["imagefolder"], loaded["info"], 0, torch.device("cpu"), 32, 0)
    assert stream.n_train == 96
    grey = [i for i, (path, _) in enumerate(stream.train.folder.samples) if "_train_0." in path]
    x, y = next(stream.train_batches([torch.tensor(grey)], epoch=0))
    assert x.shape == (len(grey), 3, 32, 32) and y.tolist() == list(range(0, 8))
    evaluated = sum(len(y) for _, y in stream.eval_batches("test", 10))
    assert evaluated == 32


def test_imagenet_standin_has_grayscale_and_varied_shapes(root):
    from PIL import Image

    sizes, modes = set(), set()
    for path in (root / "imagenet").rglob("*.JPEG"):
        with Image.open(path) as image:
            sizes.add(image.size)
            modes.add(image.mode)
    ratios = [w / h for w, h in sizes]
    assert modes == {"RGB", "L"} and len(sizes) > 20
    assert min(ratios) < 0.8 and max(ratios) > 1.25


def test_standin_record(root):
    record = json.loads((root / "cifar-100-python" / data.STANDIN_FILE).read_text())
    assert record == {"dataset": "cifar100", "seed": 0, "standin": True,
                      "stands_for": {"n_train": 50000, "n_test": 10000}}  # fmt: skip


def test_same_seed_same_bytes(root, tmp_path):
    again = tmp_path / "again"
    standins.write_standins(again)
    assert digests(again) == digests(root)
    alone = tmp_path / "alone"
    standins.write_standins(alone, ["timit"])
    assert digests(alone / "timit") == digests(root / "timit")
    other = tmp_path / "other"
    standins.write_standins(other, ["mnist"], seed=1)
    assert digests(other / "MNIST") != digests(root / "MNIST")


def test_real_data_is_never_overwritten(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="cifar-10-batches-py"):
        standins.write_standins(tmp_path, ["cifar10"])
    assert standins.main(["--root", str(tmp_path), "--datasets", "cifar10"]) == 1


def test_cli(tmp_path, capsys):
    code = standins.main(["--root", str(tmp_path), "--datasets", "mnist", "timit", "--seed", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2 and "721520" in lines[1]
    assert json.loads((tmp_path / "MNIST" / data.STANDIN_FILE).read_text())["seed"] == 3
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(
        f"{name}.gz" for names in data.IDX_FILES.values() for name in names
    )
