"""CIFAR-10 through torchvision, for the paper-scale slice (paper Sec. 5.1, Table 1).

See docs/algorithm.md#gaussian-rate-process and docs/algorithm.md#cifar10-evaluation.

:func:`load_cifar10` returns the images as uint8 (N, 3, 32, 32) pixel levels
(S = 256: a pixel value *is* its state) and the labels. The training split is
the distillation data (the authors apply random horizontal flips per batch:
:func:`random_hflip`) and the FID / IS reference. torchvision downloads the
archive (163 MB, md5-checked) into ``root`` when missing; offline, a clear
error names the config key that points at a local copy. ``check_md5=False``
(config key ``data.check_md5``, the rehearsal's stand-in batches) reads the same
files through the same torchvision class without comparing them with the
published checksums, and never downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

CONFIG_KEY = "cifar10.paper.data.root"


class CIFAR10Unavailable(FileNotFoundError):
    """CIFAR-10 is neither in ``root`` nor downloadable."""


def _unchecked(cls):
    """torchvision's CIFAR-10 class with the published md5s dropped (existence only)."""
    return type(
        "UncheckedCIFAR10",
        (cls,),
        {
            "train_list": [[name, None] for name, _ in cls.train_list],
            "test_list": [[name, None] for name, _ in cls.test_list],
            "meta": {**cls.meta, "md5": None},
        },
    )


def load_cifar10(
    root: str | os.PathLike,
    train: bool = True,
    download: bool = True,
    check_md5: bool = True,
) -> tuple[Tensor, Tensor]:
    """CIFAR-10 ``train`` (50,000) or test (10,000) split: uint8 (N, 3, 32, 32), long labels.

    ``check_md5=False``: files that are not the published bytes (stand-ins) are read
    as they are; nothing is downloaded.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root)
    cls = CIFAR10 if check_md5 else _unchecked(CIFAR10)
    try:
        ds = cls(str(root), train=train, download=download and check_md5)
    except (
        Exception
    ) as e:  # URLError offline, RuntimeError when absent and download=False
        raise CIFAR10Unavailable(
            f"CIFAR-10 is not in {root} and could not be downloaded ({type(e).__name__}: "
            f"{e}). Download cifar-10-python.tar.gz from "
            "https://www.cs.toronto.edu/~kriz/cifar.html, extract it under a folder and "
            f"set config key '{CONFIG_KEY}' to that folder."
        ) from e
    images = (
        torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    )
    return images, torch.as_tensor(ds.targets, dtype=torch.long)


def random_hflip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image (N, C, H, W) left-right with probability 1/2 (the authors' augmentation)."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
