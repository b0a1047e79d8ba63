"""ImageNet-style data streamed from class folders: decoding and augmentation in worker processes.

ImageNet does not fit on the device, so unlike the small datasets it is read the way
torchvision's classification reference reads it: ImageFolder, RandomResizedCrop and a flip for
training, resize and center crop for evaluation, DataLoader workers. Two things differ so that
a run stays exact: batches follow the run's own seeded permutation (the trainer hands over the
index lists), and each image's augmentation draws come from a seed made of (run seed, epoch,
image index). A run therefore repeats bit for bit whatever the number of workers, and a resumed
run continues mid-epoch exactly. Workers send uint8 images; normalization happens on the device.
With `decode="device"` (the default on a GPU) workers send the JPEG files' bytes and each image's
drawn crop box and flip instead, and the device decodes and augments them (lbgap.data.jpeg_decode).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from lbgap.data import jpeg_decode
from lbgap.data.prepare import DatasetInfo, normalize

TRAIN_EVAL_IMAGES = 10000  # fixed subset of the training set for the per-epoch train accuracy
EVAL_CHUNK = 256  # images per evaluation forward pass: 224-px activations, not MNIST's


def image_seed(seed: int, epoch: int, index: int) -> int:
    """An independent, reproducible seed per (run, epoch, image)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SeededImages(Dataset):
    """ImageFolder whose keys are (index, epoch) and whose random transforms are seeded by them."""

    def __init__(self, folder: str, transform: v2.Transform, seed: int) -> None:
        self.folder = ImageFolder(folder)
        self.transform, self.seed = transform, seed

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, int]:
        index, epoch = key
        path, target = self.folder.samples[index]
        image = self.folder.loader(path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(image_seed(self.seed, epoch, index))
            return self.transform(image), target


class SeededJpegs(SeededImages):
    """The same keys and seeds, but a worker sends the file's bytes and, where `transform`
    augments, the crop box and flip drawn for the image; the device decodes and augments."""

    def __init__(self, folder: str, transform: v2.Compose, seed: int) -> None:
        super().__init__(folder, transform, seed)
        kinds = {type(t) for t in transform.transforms}
        self.augments = v2.RandomResizedCrop in kinds

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor, int]:  # type: ignore[override]
        index, epoch = key
        path, target = self.folder.samples[index]
        data = jpeg_decode.read_bytes(path)
        box = [0] * 5
        if self.augments:
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only, as torch.manual_seed seeds it, without its ~0.1 ms
                # of seeding other devices' generators: the same draws.
                torch.default_generator.manual_seed(image_seed(self.seed, epoch, index))
                box = jpeg_decode.draw_crop_flip(self.transform, *jpeg_decode.image_size(data))
        return torch.frombuffer(data, dtype=torch.uint8), torch.tensor(box), target

    def on_device(self, data: list[Tensor], boxes: Tensor, device: torch.device) -> Tensor:
        """The batch's uint8 images, decoded and augmented (or center-cropped) on `device`."""
        images = jpeg_decode.decode(data, device)
        if self.augments:
            return jpeg_decode.augment(images, boxes, self.transform)
        return jpeg_decode.center(images, self.transform)


def train_transform(size: int) -> v2.Transform:
    return v2.Compose([v2.ToImage(), v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()])


def eval_transform(size: int) -> v2.Transform:
    return v2.Compose([v2.ToImage(), v2.Resize(round(size * 256 / 224)), v2.CenterCrop(size)])


def default_workers() -> int:
    """The CPUs this process may use, shared by the ranks on this node; at most 16."""
    ranks = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    return max(1, min(16, len(os.sched_getaffinity(0)) // ranks))


class ImageStream:
    """Batches of one run: training batches in the run's order, evaluation over whole splits."""

    def __init__(
        self,
        folders: dict[str, str],
        info: DatasetInfo,
        seed: int,
        device: torch.device,
        image_size: int | None = None,
        workers: int | None = None,
        augment: bool = True,
        decode: str | None = None,
    ) -> None:
        """`decode`: cpu (PIL in the workers), device (lbgap.data.jpeg_decode) or auto (None):
        device on a GPU, cpu otherwise."""
        size = image_size or info.shape[-1]
        self.info, self.device, self.seed = info, device, seed
        self.workers = default_workers() if workers is None else workers
        self.decode = jpeg_decode.resolve_decode(decode, device)
        images = SeededJpegs if self.decode == "device" else SeededImages
        crop = train_transform(size) if augment else eval_transform(size)
        self.train = images(folders["train"], crop, seed)
        self.train_eval = images(folders["train"], eval_transform(size), seed)
        self.test = images(folders["val"], eval_transform(size), seed)
        self.n_train = len(self.train)
        self.eval_chunk = EVAL_CHUNK
        if not self.n_train or not len(self.test):
            raise ValueError(f"no images under {folders['train']} or {folders['val']}")

    def _load(self, dataset: Dataset, keys: Sequence[list]) -> Iterator[tuple[Tensor, Tensor]]:
        if isinstance(dataset, SeededJpegs):
            yield from self._load_jpegs(dataset, keys)
            return
        loader = DataLoader(
            dataset,
            batch_sampler=keys,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            x = x.as_subclass(Tensor).to(self.device, non_blocking=True)
            yield normalize(x, self.info), y.to(self.device, non_blocking=True)

    def _load_jpegs(
        self, dataset: SeededJpegs, keys: Sequence[list]
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Bytes from the workers (nothing to pin: the decoder reads them from the host)."""
        loader = DataLoader(
            dataset, batch_sampler=keys, num_workers=self.workers, collate_fn=jpeg_decode.collate
        )
        for data, boxes, y in loader:
            x = dataset.on_device(data, boxes, self.device)
            yield normalize(x, self.info), y.to(self.device, non_blocking=True)

    def train_batches(
        self, batches: Sequence[Tensor], epoch: int
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The training batches with these image indices, in this order, augmented for `epoch`."""
        keys = [[(i, epoch) for i in idx.tolist()] for idx in batches]
        return self._load(self.train, keys)

    def eval_batches(
        self, split: str, chunk: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's share of the validation set, or of a fixed training subset, center-cropped.

        The shares of all ranks cover the split once, so evaluation is split across the GPUs.
        """
        if split == "test":
            dataset, order = self.test, torch.arange(len(self.test))
        else:
            dataset, n = self.train_eval, min(TRAIN_EVAL_IMAGES, self.n_train)
            order = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(0))[:n]
        share = order[rank::world_size]
        keys = [[(i, 0) for i in part.tolist()] for part in share.split(chunk)]
        return self._load(dataset, keys)
