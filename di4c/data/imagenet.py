"""ImageNet 256 for the paper-scale ImageNet setting (paper Sec. 5.2).

See docs/algorithm.md#vqgan-tokens-and-masking and docs/algorithm.md#imagenet-evaluation.

- :func:`imagenet_folder`: the train / val split as a torchvision ``ImageFolder``
  (``<root>/<split>/<wnid>/*.JPEG``) with the authors' transforms: train =
  Resize 256, RandomCrop 256, horizontal flip; eval = Resize 256, CenterCrop 256;
  both end in ``ToTensor`` (images in [0, 1]).
- :func:`val_labels_in_loader_order`: the class labels the 50,000 evaluation
  samples are conditioned on. The authors take them batch by batch from the
  validation loader, which shuffles (``shuffle=True`` / a shuffling
  ``DistributedSampler``), so their order is a fresh permutation of the val
  labels per run (50 per class); we fix that permutation with a seed.
- :func:`minmax_uint8`: the protocol's per-image min-max rescaling to [0, 255]
  uint8, applied to real and generated images alike before Inception
  (``remap_image_torch``; generated images are not clamped first).
- :class:`MinMaxImages`: a dataset view yielding those uint8 images, the input
  torch-fidelity takes.
- :class:`SeededItems`: a dataset view whose random transforms draw from a
  generator seeded by (seed, index), so each image gets the same crop / flip
  whatever the batch size, worker count or order.

ImageNet cannot be downloaded by code (licence); point the config key
``imagenet.paper.data.root`` at a local copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from di4c.config import ConfigError

__all__ = [
    "CONFIG_KEY_IMAGENET_DIR",
    "IMAGE_SIZE",
    "ImageNetLayoutError",
    "MinMaxImages",
    "SeededItems",
    "imagenet_folder",
    "imagenet_transform",
    "minmax_uint8",
    "val_labels_in_loader_order",
]

CONFIG_KEY_IMAGENET_DIR = "imagenet.paper.data.root"
IMAGE_SIZE = 256
NUM_VAL = 50_000
NUM_CLASSES = 1000


def imagenet_transform(split: str, size: int = IMAGE_SIZE):
    """The authors' torchvision transforms (``Trainer/trainer.py``)."""
    from torchvision import transforms as T

    registry = {
        "train": lambda: T.Compose(
            [
                T.Resize(size),
                T.RandomCrop((size, size)),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
            ]
        ),
        "val": lambda: T.Compose(
            [T.Resize(size), T.CenterCrop((size, size)), T.ToTensor()]
        ),
    }
    if split not in registry:
        raise ValueError(
            f"unknown ImageNet split {split!r}; allowed: {sorted(registry)}"
        )
    return registry[split]()


class ImageNetLayoutError(ValueError, FileNotFoundError):
    """The local ImageNet copy is missing, empty or not in ImageFolder layout."""


def _layout(d: Path, split: str) -> str:
    """What the folder should hold and which config key points at it."""
    return (
        f"ImageNet cannot be downloaded automatically: place the ILSVRC2012 {split} "
        f"set there in ImageFolder layout ({d}/<wnid>/<image>.JPEG, {NUM_CLASSES} "
        f"class folders) and set the config key {CONFIG_KEY_IMAGENET_DIR} to its "
        "parent folder"
    )


def _split_dir(root: str | os.PathLike, split: str) -> Path:
    """``<root>/<split>`` with 1000 class folders, or an error naming the layout."""
    d = Path(root) / split
    if not d.is_dir():
        raise ImageNetLayoutError(
            f"ImageNet {split} images not found at {d}. {_layout(d, split)}"
        )
    classes = [e.name for e in os.scandir(d) if e.is_dir()]
    if not classes:
        raise ImageNetLayoutError(
            f"{d}: no class folders (the ImageNet {split} folder is empty or flat). "
            + _layout(d, split)
        )
    if len(classes) != NUM_CLASSES:
        raise ImageNetLayoutError(
            f"{d}: found {len(classes)} class folders; ImageNet has {NUM_CLASSES} "
            f"(one folder per wnid). {_layout(d, split)}"
        )
    return d


def _has_image(folder: str) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    for _, _, files in os.walk(folder, followlinks=True):
        if any(f.lower().endswith(IMG_EXTENSIONS) for f in files):
            return True
    return False


def imagenet_folder(root: str | os.PathLike, split: str, transform=None):
    """``ImageFolder`` over ``<root>/<split>`` (classes = sorted wnid folders)."""
    from torchvision.datasets import ImageFolder

    d = _split_dir(root, split)
    try:
        return ImageFolder(
            d,
            transform=transform if transform is not None else imagenet_transform(split),
        )
    except FileNotFoundError as e:  # torchvision: a class folder without images
        empty = sorted(
            c.name for c in os.scandir(d) if c.is_dir() and not _has_image(c.path)
        )
        if not empty:
            raise
        raise ImageNetLayoutError(
            f"{d}: {len(empty)} of {NUM_CLASSES} class folders hold no images (e.g. "
            f"{empty[:3]}). {_layout(d, split)}"
        ) from e


def val_labels_in_loader_order(
    root: str | os.PathLike, seed: int, num: int = NUM_VAL
) -> Tensor:
    """Labels of the first ``num`` val images in a seeded shuffled-loader order."""
    ds = imagenet_folder(root, "val")
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    if num > labels.numel():
        raise ConfigError(
            f"asked for {num} labels; the val set at {root} has {labels.numel()} "
            "(lower sample.num_samples)"
        )
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))
    return labels[perm[:num]]


def minmax_uint8(images: Tensor) -> Tensor:
    """Per-image min-max rescaling of (B, C, H, W) floats to uint8 [0, 255].

    ``(x - min) / (max - min) * 255``, clipped and truncated to uint8, min and
    max over each image's C, H, W (docs/implementation-notes.md#imagenet-fid-preprocessing;
    authors' ``maskgit-pytorch/Metrics/sample_and_eval.py``). A constant
    image (max = min), for which the authors' division gives NaN, maps to 0.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W); got {tuple(images.shape)}")
    x = images.float()
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    span = hi - lo
    out = torch.where(span > 0, (x - lo) / span.clamp_min(1e-30), torch.zeros_like(x))
    return (out * 255).clamp(0, 255).to(torch.uint8)


class MinMaxImages(Dataset):
    """uint8 (C, H, W) images after :func:`minmax_uint8`, from a dataset of
    ``(float image, label)`` pairs (e.g. :func:`imagenet_folder` ``"val"``)."""

    def __init__(self, base: Dataset, limit: int | None = None):
        self.base = base
        self.n = len(base) if limit is None else min(limit, len(base))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Tensor:
        img = self.base[i][0]
        return minmax_uint8(img[None])[0]


class SeededItems(Dataset):
    """``base[i]`` with torch's global RNG seeded from ``(seed, i)`` for the call.

    torchvision's random transforms (RandomCrop, RandomHorizontalFlip) draw from
    the global generator, which a DataLoader seeds per worker, so their draws
    otherwise depend on the worker count (and, with ``num_workers=0``, on
    nothing the caller seeded). The caller's RNG state is restored afterwards.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed = base, int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + int(i))
            return self.base[i]
