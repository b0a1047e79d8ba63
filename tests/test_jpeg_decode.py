"""JPEGs decoded and augmented on the device: the CPU path's draws, its pixels, and any workers."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torchvision.transforms import v2

from lbgap.config import matrix
from lbgap.config.run_spec import RunSpec
from lbgap.data import jpeg_decode
from lbgap.data.imagefolder import (
    ImageStream,
    SeededImages,
    SeededJpegs,
    eval_transform,
    train_transform,
)
from lbgap.data.prepare import dataset_info

SIZE = 32
# Mean absolute difference, in grey levels (0-255), allowed between the device path and PIL.
# On a CPU both decode with libjpeg-turbo and resize with the same torchvision kernel, and the
# images agree exactly; the bound leaves room for a build whose decoder rounds differently.
CPU_TOLERANCE = 0.5
# nvjpeg's IDCT and chroma upsampling and the CUDA resize differ from libjpeg-turbo and the CPU
# resize by a grey level or two at some pixels.
GPU_TOLERANCE = 2.0


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    """Class folders of real files: textured RGB JPEGs of varied sizes and aspect ratios, a grey
    JPEG, and a PNG named .JPEG (ImageNet has one), which the device path decodes on the CPU."""
    from PIL import Image

    root = tmp_path_factory.mktemp("jpegs")
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 6), ("val", 2)):
        for label, cls in enumerate(("n01", "n02")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                h, w = (48 + 9 * i, 64 - 3 * i) if i % 2 else (70 - 5 * i, 40 + 6 * i)
                ramp = torch.linspace(0, 200, w).expand(h, w)
                noise = torch.randint(0, 56, (h, w, 3), generator=g).float()
                pixels = (ramp[..., None] + noise).to(torch.uint8)
                pixels[..., label] //= 2
                image = Image.fromarray(pixels.numpy())
                if (split, label, i) == ("train", 1, 2):
                    image = image.convert("L")
                fmt = "PNG" if (split, label, i) == ("train", 0, 3) else "JPEG"
                image.save(folder / f"{cls}_{i}.JPEG", format=fmt, quality=85)
    return {"train": str(root / "train"), "val": str(root / "val")}


def keys(n: int) -> list[tuple[int, int]]:
    return [(i, epoch) for epoch in (0, 3) for i in range(n)]


def test_device_path_draws_the_cpu_paths_crops_and_flips(folders, monkeypatch):
    """The worker's drawn box and flip are those the CPU path's transforms draw, recorded from
    the transforms themselves while they run on the PIL images."""
    drawn: list = []
    make_params = v2.RandomResizedCrop.make_params
    flip = v2.RandomHorizontalFlip.transform

    def record_box(self, flat_inputs):
        box = make_params(self, flat_inputs)
        drawn.append([*(box[k] for k in ("top", "left", "height", "width")), 0])
        return box

    def record_flip(self, inpt, params):
        drawn[-1][-1] = 1
        return flip(self, inpt, params)

    monkeypatch.setattr(v2.RandomResizedCrop, "make_params", record_box)
    monkeypatch.setattr(v2.RandomHorizontalFlip, "transform", record_flip)
    cpu = SeededImages(folders["train"], train_transform(SIZE), seed=5)
    device = SeededJpegs(folders["train"], train_transform(SIZE), seed=5)
    for key in keys(len(cpu)):
        cpu[key]
    expected, drawn[:] = list(drawn), []
    got = [device[key][1].tolist() for key in keys(len(device))]
    assert got == expected
    assert {box[-1] for box in got} == {0, 1}  # both flip decisions occur
    assert len({tuple(box[:4]) for box in got}) == len(got)  # every draw is its own
    other_seed = SeededJpegs(folders["train"], train_transform(SIZE), seed=6)
    assert [other_seed[key][1].tolist() for key in keys(len(device))] != got


def test_device_decoding_on_the_cpu_gives_the_pil_pixels(folders):
    """Training crops and evaluation center crops, grey and PNG files included."""
    for transform in (train_transform(SIZE), eval_transform(SIZE)):
        cpu = SeededImages(folders["train"], transform, seed=5)
        device = SeededJpegs(folders["train"], transform, seed=5)
        ks = keys(len(cpu))
        want = torch.stack([cpu[k][0].as_subclass(torch.Tensor) for k in ks])
        data, boxes, targets = jpeg_decode.collate([device[k] for k in ks])
        got = device.on_device(data, boxes, torch.device("cpu"))
        assert got.shape == want.shape == (len(ks), 3, SIZE, SIZE) and got.dtype == torch.uint8
        assert targets.tolist() == [cpu[k][1] for k in ks]
        assert (got.float() - want.float()).abs().mean() <= CPU_TOLERANCE


def stream(folders: dict[str, str], workers: int, decode: str, device: str = "cpu"):
    info = dataset_info("imagenet")
    return ImageStream(folders, info, 7, torch.device(device), SIZE, workers, decode=decode)


def grey_levels(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two normalized batches, in grey levels (0-255)."""
    std = torch.tensor(dataset_info("imagenet").std)[:, None, None]
    return float(((a - b).abs() * 255 * std).mean())


def batches(s: ImageStream) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = [torch.tensor([4, 0, 9, 2]), torch.tensor([11, 7, 3, 1]), torch.tensor([5, 6])]
    return [*s.train_batches(order, epoch=2), *s.eval_batches("test", chunk=3)]


def test_same_batches_with_0_1_and_2_workers_and_as_on_the_cpu_path(folders):
    inline = batches(stream(folders, 0, "device"))
    assert [x.shape[0] for x, _ in inline] == [4, 4, 2, 3, 1]
    for workers in (1, 2):
        for (x, y), (x0, y0) in zip(
            batches(stream(folders, workers, "device")), inline, strict=True
        ):
            assert torch.equal(x, x0) and torch.equal(y, y0)
    for (x, y), (xc, yc) in zip(batches(stream(folders, 0, "cpu")), inline, strict=True):
        assert torch.equal(y, yc) and grey_levels(x, xc) <= CPU_TOLERANCE


def test_auto_decodes_on_a_gpu_and_with_pil_on_a_cpu(folders):
    assert jpeg_decode.resolve_decode(None, torch.device("cpu")) == "cpu"
    assert jpeg_decode.resolve_decode("auto", torch.device("cuda")) == "device"
    assert jpeg_decode.resolve_decode("device", torch.device("cpu")) == "device"
    assert jpeg_decode.resolve_decode("cpu", torch.device("cuda")) == "cpu"
    with pytest.raises(ValueError, match="decode must be one of"):
        jpeg_decode.resolve_decode("gpu", torch.device("cpu"))
    assert isinstance(stream(folders, 0, "auto").train, SeededImages)
    assert not isinstance(stream(folders, 0, "auto").train, SeededJpegs)
    assert isinstance(stream(folders, 0, "device").test, SeededJpegs)


def test_decode_reaches_imagenet_specs_only_when_set(repo_config):
    """auto (the default) leaves every spec as it was; cpu or device is part of ImageNet runs'
    specs (a GPU's decoder changes pixels), and of no other dataset's."""
    imagenet = matrix.Run("goyal2017", "ResNet50_ImageNet", "baseline", 0)
    mnist = matrix.Run("keskar2017", "F1", "LB", 0)

    def specs(**edit) -> tuple[RunSpec, RunSpec]:
        cfg = matrix.prepare_config(copy.deepcopy({**repo_config, "scale": "paper", **edit}))
        return matrix.spec(cfg, imagenet), matrix.spec(cfg, mnist)

    plain = specs()
    assert plain[0].dataset == "imagenet" and "decode" not in plain[0].to_dict()
    assert specs(decode="auto") == plain
    on_device = specs(decode="device")
    assert on_device == (dataclasses.replace(plain[0], decode="device"), plain[1])
    with pytest.raises(matrix.ConfigError, match="decode"):
        specs(decode="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_decoding_matches_the_cpu_within_tolerance(folders):
    cpu, cuda = stream(folders, 0, "device"), stream(folders, 2, "auto", "cuda")
    assert cuda.decode == "device"
    for (x, y), (xg, yg) in zip(batches(cpu), batches(cuda), strict=True):
        assert xg.device.type == "cuda" and xg.dtype == torch.float32
        assert torch.equal(y, yg.cpu())
        assert grey_levels(xg.cpu(), x) <= GPU_TOLERANCE
