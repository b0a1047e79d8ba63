"""ImageNet-style training streamed from class folders: real JPEG files, exact and repeatable."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from test_resume import assert_same_run, stop_after
from test_train import make_spec, run_torchrun

from lbgap.data import jpeg_decode
from lbgap.data.imagefolder import ImageStream
from lbgap.data.prepare import dataset_info, prepare
from lbgap.training import train

CLASSES = ("n01440764", "n01443537", "n01484850")


@pytest.fixture(scope="module")
def prepared_imagenet(tmp_path_factory):
    """ImageNet's on-disk layout: JPEGs of varied sizes in class folders, 8/2 per class."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet_root")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 8), ("val", 2)):
        for label, cls in enumerate(CLASSES):
            folder = root / "imagenet" / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = 40 + 4 * i, 48 + 2 * i
                pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
                pixels[..., label] = 255  # a learnable colour cue per class
                Image.fromarray(pixels.numpy()).save(folder / f"{cls}_{i}.JPEG")
    out = root / "prepared" / "imagenet_paper.pt"
    prepare("imagenet", root, out, out.with_suffix(".json"))
    return out


def imagenet_spec(data, **overrides) -> dict:
    """resnet20 on 32-px crops; RandomResizedCrop and flips, as the ImageNet experiments train."""
    settings = {"network": "resnet20", "dataset": "imagenet", "image_size": 32, "augment": True}
    return make_spec(data, **{"epochs": 2, "batch_size": 8, "loader_workers": 0, **settings,
                              **overrides})  # fmt: skip


def stream(data, workers: int = 0) -> ImageStream:
    folders = torch.load(data, weights_only=True)["imagefolder"]
    return ImageStream(folders, dataset_info("imagenet"), 7, torch.device("cpu"), 32, workers)


def test_batches_follow_the_given_order_and_seeded_augmentation(prepared_imagenet):
    s = stream(prepared_imagenet)
    order = [torch.tensor([5, 0, 17]), torch.tensor([9, 2, 11])]
    first = list(s.train_batches(order, epoch=0))
    again = list(s.train_batches(order[::-1], epoch=0))
    later = list(s.train_batches(order, epoch=1))
    assert first[0][0].shape == (3, 3, 32, 32) and first[0][0].dtype == torch.float32
    assert first[0][1].tolist() == [0, 0, 2]  # labels of images 5, 0, 17 (8 per class)
    assert torch.equal(first[0][0], again[1][0])  # same image and epoch: the same crop
    assert not torch.equal(first[0][0], later[0][0])  # another epoch: other crops


def test_evaluation_covers_the_validation_set_once_across_ranks(prepared_imagenet):
    s = stream(prepared_imagenet)
    labels = torch.cat([y for _, y in s.eval_batches("test", chunk=4)])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert sum(len(y) for _, y in s.eval_batches("train", chunk=5)) == 24
    shares = [torch.cat([y for _, y in s.eval_batches("test", 4, r, 2)]) for r in (0, 1)]
    assert [len(sh) for sh in shares] == [3, 3]
    assert sorted(torch.cat(shares).tolist()) == [0, 0, 1, 1, 2, 2]


def test_run_is_the_same_with_and_without_workers(tmp_path, prepared_imagenet):
    train.run(imagenet_spec(prepared_imagenet), tmp_path / "inline")
    train.run(imagenet_spec(prepared_imagenet, loader_workers=2), tmp_path / "workers")
    a = pd.read_csv(tmp_path / "inline" / "steps.csv")
    b = pd.read_csv(tmp_path / "workers" / "steps.csv")
    pd.testing.assert_frame_equal(a, b)
    summary = json.loads((tmp_path / "workers" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["updates"] == 2 * (24 // 8)
    assert 0 <= summary["final"]["test_acc"] <= 100


def test_one_and_two_ranks_stream_the_same_batches(tmp_path, prepared_imagenet):
    """Each rank decodes its half of every global batch; with ghost batch norm the run agrees."""
    spec = imagenet_spec(prepared_imagenet, ghost_batch=4, epochs=1)
    for ranks in (1, 2):
        proc = run_torchrun(spec, tmp_path / str(ranks), ranks)
        assert proc.returncode == 0, proc.stderr[-2000:]
    a = pd.read_csv(tmp_path / "1" / "steps.csv")["loss"]
    b = pd.read_csv(tmp_path / "2" / "steps.csv")["loss"]
    assert len(a) == len(b) == 24 // 8
    assert (a - b).abs().max() < 1e-4
    # Each rank evaluates half of each split; the added-up metrics are those of one rank.
    one, two = (pd.read_csv(tmp_path / r / "metrics.csv").iloc[-1] for r in ("1", "2"))
    for column in ("train_loss", "train_acc", "test_loss", "test_acc"):
        assert two[column] == pytest.approx(one[column], rel=1e-4, abs=1e-4), column


def test_stop_then_resume_is_exact(tmp_path, prepared_imagenet, monkeypatch):
    spec = imagenet_spec(prepared_imagenet)
    train.run(spec, tmp_path / "whole")
    with monkeypatch.context() as m:
        stop_after(m, 5)  # epoch 2, iteration 2 of 3
        with pytest.raises(train.Preempted):
            train.run(spec, tmp_path / "cut")
    train.run(spec, tmp_path / "cut")
    assert_same_run(tmp_path / "cut", tmp_path / "whole")


def test_device_decoding_is_the_cpu_run_on_a_cpu_and_resumes_exactly(
    tmp_path, prepared_imagenet, monkeypatch
):
    """decode: device (a GPU's default) on a CPU decodes with the same libjpeg-turbo as PIL and
    draws the same crops, so the run is the PIL run bit for bit; stopped mid-epoch, it resumes
    exactly, with workers."""
    real = jpeg_decode.decode
    decoded = []
    monkeypatch.setattr(jpeg_decode, "decode", lambda data, *a: decoded.append(1) or real(data, *a))
    train.run(imagenet_spec(prepared_imagenet, decode="cpu"), tmp_path / "pil")
    assert not decoded
    spec = imagenet_spec(prepared_imagenet, decode="device", loader_workers=2)
    with monkeypatch.context() as m:
        stop_after(m, 4)  # epoch 2, iteration 1 of 3
        with pytest.raises(train.Preempted):
            train.run(spec, tmp_path / "device")
    train.run(spec, tmp_path / "device")
    assert decoded  # the device path ran
    assert_same_run(tmp_path / "device", tmp_path / "pil")
    for run, where in (("pil", "cpu"), ("device", "device")):  # the summary says which ran
        assert json.loads((tmp_path / run / "summary.json").read_text())["decode"] == where


def test_empty_folders_are_a_clear_error(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "n01").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="Found no valid file"):
        ImageStream(
            {"train": str(tmp_path / "train"), "val": str(tmp_path / "val")},
            dataset_info("imagenet"),
            0,
            torch.device("cpu"),
        )
