"""ImageNet's JPEGs decoded and augmented on the run's device: workers only read the files.

Decoding with PIL in DataLoader workers gives a few hundred images per second per CPU core,
while one H200 trains ResNet-50 at about 6,800 images/s (benchmarks/): a GPU would wait for its
CPUs. Here a worker reads a file's bytes, its header (for the size) and draws the image's crop
box and flip under the image's own seed, calling the very transform objects of the CPU path in
the same order, so both paths draw identical parameters. The run's process then decodes a whole
batch at once with torchvision's `decode_jpeg` (nvjpeg on a GPU; libjpeg-turbo on a CPU, where
it gives PIL's pixels) and crops and resizes each image with the same torchvision kernels. On a
CPU the result equals the CPU path's; on a GPU nvjpeg and the CUDA resize may differ from it by
a few grey levels (tests/test_jpeg_decode.py bounds the difference).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

DECODES = ("auto", "cpu", "device")
JPEG_MAGIC = b"\xff\xd8"


def resolve_decode(decode: str | None, device: torch.device) -> str:
    """auto: decode on the device when it is a GPU; on a CPU, PIL in the workers is faster."""
    decode = decode or "auto"
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {decode!r}")
    if decode == "auto":
        return "device" if device.type == "cuda" else "cpu"
    return decode


def read_bytes(path: str) -> bytearray:
    """A file's bytes, writable so that a tensor can share them without a copy."""
    with open(path, "rb") as f:
        return bytearray(f.read())


def image_size(data: bytearray) -> tuple[int, int]:
    """(height, width) from the file's header; PIL reads no pixels for it."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return height, width


def draw_crop_flip(transform: v2.Compose, height: int, width: int) -> list[int]:
    """[top, left, height, width, flip]: the draws `transform` (RandomResizedCrop, then
    RandomHorizontalFlip, as lbgap.data.imagefolder.train_transform) makes for an image of this
    size from the current torch RNG: the crop's own make_params, then the flip's torch.rand(1).
    """
    crop, flip = crop_and_flip(transform)
    stand_in = torch.empty(1).expand(height, width)  # only its size is read
    box = crop.make_params([stand_in])
    flipped = bool(torch.rand(1) < flip.p)  # v2's _RandomApplyTransform: flip unless >= p
    return [box["top"], box["left"], box["height"], box["width"], int(flipped)]


def crop_and_flip(transform: v2.Compose) -> tuple[v2.RandomResizedCrop, v2.RandomHorizontalFlip]:
    (crop,) = [t for t in transform.transforms if isinstance(t, v2.RandomResizedCrop)]
    (flip,) = [t for t in transform.transforms if isinstance(t, v2.RandomHorizontalFlip)]
    return crop, flip


def collate(samples: Sequence[tuple[Tensor, Tensor, int]]) -> tuple[list[Tensor], Tensor, Tensor]:
    """Files of different lengths stay a list; boxes and labels are stacked."""
    data, boxes, targets = zip(*samples, strict=True)
    return list(data), torch.stack(boxes), torch.tensor(targets)


def decode(data: list[Tensor], device: torch.device) -> list[Tensor]:
    """RGB uint8 images (3, H, W) on `device`, the JPEGs in one batched call.

    A file that is not a JPEG (ImageNet has a PNG named .JPEG), or a batch the device's decoder
    refuses (nvjpeg may refuse a CMYK JPEG; ImageNet has a few), is decoded on the CPU instead
    with torchvision's decode_image, file by file.
    """
    images: list[Tensor | None] = [None] * len(data)
    jpegs = [i for i, d in enumerate(data) if bytes(d[:2].tolist()) == JPEG_MAGIC]
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for TorchCodec
        warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
        if jpegs:
            try:
                decoded = decode_jpeg([data[i] for i in jpegs], ImageReadMode.RGB, device)
            except RuntimeError:
                decoded = [None] * len(jpegs)
            for i, image in zip(jpegs, decoded, strict=True):
                images[i] = image
        for i, image in enumerate(images):
            if image is None:
                images[i] = decode_image(data[i], ImageReadMode.RGB).to(device)
    return images  # type: ignore[return-value]


def augment(images: list[Tensor], boxes: Tensor, transform: v2.Compose) -> Tensor:
    """Each image cropped to its box, resized and flipped where drawn: the kernels `transform`
    dispatches to, called directly (v2's dispatch costs as much again per image)."""
    crop, _ = crop_and_flip(transform)
    out = []
    for image, (top, left, height, width, flipped) in zip(images, boxes.tolist(), strict=True):
        x = TF.resized_crop_image(
            image, top, left, height, width, crop.size, crop.interpolation, crop.antialias
        )
        out.append(TF.horizontal_flip_image(x) if flipped else x)
    return torch.stack(out)


def center(images: list[Tensor], transform: v2.Compose) -> Tensor:
    """Evaluation's resize and center crop (lbgap.data.imagefolder.eval_transform) of each image."""
    return torch.stack([transform(image).as_subclass(Tensor) for image in images])
