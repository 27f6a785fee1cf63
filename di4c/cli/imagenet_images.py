"""Codes -> judged images for the ImageNet slice (method.md §4.5), both scales.

Generated code grids are decoded with the tokenizer (the VQGAN, or the mini
VQ of the same family) in batches, then every image goes through the
protocol's per-image min-max rescaling to uint8 (no clamping first). At mini
scale the result is re-quantised to the data's grey levels, so generated and
real digits reach the digit classifier in the representation it was trained on
(:func:`to_judge`). Features come from :mod:`di4c.metrics.image_quality`,
chunk by chunk, so 50,000 256 x 256 images never sit in memory at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from di4c.data.imagenet import minmax_uint8
from di4c.data.images import levels_to_uint8, quantize
from di4c.metrics.image_quality import (
    extract_features,
    metrics_from_features,
    split_half_spread,
)
from di4c.teachers.maskgit import vqgan_from_files

__all__ = [
    "bootstrap_sd",
    "chunked_prc",
    "decoded_chunks",
    "features_of_chunks",
    "load_tokenizer",
    "score_features",
    "to_judge",
]


def load_tokenizer(ckpt: str | os.PathLike, yaml: str | os.PathLike, device=None):
    """VQGAN-family tokenizer from the Lightning ``last.ckpt`` + ``model.yaml``."""
    return vqgan_from_files(ckpt, yaml, device=device).requires_grad_(False)


def to_judge(images: Tensor, levels: int | None = None) -> Tensor:
    """Float images (B, C, H, W) -> per-image min-max uint8, re-quantised to ``levels``."""
    out = minmax_uint8(images)
    if levels:
        out = levels_to_uint8(quantize(out.float() / 255.0, levels), levels)
    return out


@torch.no_grad()
def decoded_chunks(
    tokenizer,
    tokens: Tensor,
    batch_size: int,
    levels: int | None = None,
    device=None,
    label: str = "decode",
) -> Iterator[Tensor]:
    """Yield uint8 judged images for consecutive chunks of ``tokens`` (N, D)."""
    grid = int(round(tokens.shape[1] ** 0.5))
    if grid * grid != tokens.shape[1]:
        raise ValueError(
            f"tokens must hold a square grid per sample; got {tokens.shape}"
        )
    n_codes = tokenizer.config.n_embed
    if int(tokens.max()) >= n_codes or int(tokens.min()) < 0:
        raise ValueError(
            f"codes must lie in [0, {n_codes}); got [{int(tokens.min())}, "
            f"{int(tokens.max())}] (a sample file from a different tokenizer?)"
        )
    t0 = time.time()
    n = tokens.shape[0]
    for start in range(0, n, batch_size):
        codes = tokens[start : start + batch_size].long().view(-1, grid, grid)
        imgs = tokenizer.decode_code(codes.to(device) if device else codes)
        yield to_judge(imgs.float().cpu(), levels)
        done = min(n, start + batch_size)
        if done == n or (start // batch_size) % 20 == 0:
            rate = done / max(time.time() - t0, 1e-9)
            print(f"[{label}] {done}/{n} images ({rate:.1f}/s)", flush=True)


def features_of_chunks(
    chunks: Iterator[Tensor] | list[Tensor],
    feature_extractor: str,
    metrics,
    weights_path=None,
    batch_size: int = 256,
    transform: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Concatenated features ``{layer: (N, dim)}`` of uint8 image chunks."""
    parts: dict[str, list[Tensor]] = {}
    for chunk in chunks:
        x = transform(chunk) if transform else chunk
        feats = extract_features(
            x,
            feature_extractor,
            metrics,
            weights_path=weights_path,
            batch_size=batch_size,
        )
        for k, v in feats.items():
            parts.setdefault(k, []).append(v.cpu())
    if not parts:
        raise ValueError("no images to extract features from")
    return {k: torch.cat(v) for k, v in parts.items()}


def bootstrap_sd(
    fake: dict[str, Tensor],
    real: dict[str, Tensor],
    feature_extractor: str,
    metrics,
    n: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Bootstrap standard deviation of FID / IS over the generated set.

    The generated features are resampled with replacement ``n`` times (the
    reference is fixed); a per-cell noise estimate steadier than one split-half
    difference. Keys ``fid_sd`` and ``is_sd`` (for the metrics asked).
    """
    gen = torch.Generator().manual_seed(seed)
    keys = [k for k in ("fid", "is") if {"fid": "fid", "is": "isc"}[k] in metrics]
    if n < 2 or not keys:
        return {}
    size = len(next(iter(fake.values())))
    vals: dict[str, list[float]] = {k: [] for k in keys}
    sub = tuple(m for m in metrics if m in ("fid", "isc"))
    for _ in range(n):
        idx = torch.randint(0, size, (size,), generator=gen)
        res = metrics_from_features(
            {k: v[idx] for k, v in fake.items()}, real, feature_extractor, sub
        )
        for k in keys:
            vals[k].append(res[k])
    return {f"{k}_sd": float(torch.tensor(v).std()) for k, v in vals.items()}


def chunked_prc(fake, real, feature_extractor: str, chunks: int) -> dict:
    """Precision / recall (k = 3) averaged over ``chunks`` aligned chunks.

    The protocol's ``manifold_metrics`` (method.md §4.5): generated and
    reference features are each cut into ``chunks`` consecutive pieces
    (``torch.chunk``), piece i is scored against piece i, and the values are
    averaged (the authors: 5 chunks of 10,000). Also returns the per-chunk values.
    """
    if chunks < 1:
        raise ValueError(f"prc_chunks must be >= 1; got {chunks}")
    n_fake = len(next(iter(fake.values())))
    n_real = len(next(iter(real.values())))
    if min(n_fake, n_real) < 4 * chunks:
        raise ValueError(
            f"{chunks} precision/recall chunks need >= {4 * chunks} generated and "
            f"reference images; got {n_fake} and {n_real} (lower prc_chunks)"
        )
    parts = [
        metrics_from_features(
            {k: v for k, v in zip(fake, fc)},
            {k: v for k, v in zip(real, rc)},
            feature_extractor,
            ("prc",),
        )
        for fc, rc in zip(
            zip(*(v.chunk(chunks) for v in fake.values())),
            zip(*(v.chunk(chunks) for v in real.values())),
        )
    ]
    out = {}
    for key in ("precision", "recall"):
        vals = [p[key] for p in parts]
        out[key] = sum(vals) / len(vals)
        out[f"{key}_chunks"] = vals
    p, r = out["precision"], out["recall"]
    out["f_score"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


def score_features(
    fake, real, feature_extractor: str, metrics, prc_chunks: int = 1
) -> dict:
    """Metrics of generated features against the reference, with their noise:
    ``*_spread`` (split-half difference) and ``fid_sd`` / ``is_sd`` (bootstrap).

    With ``prc_chunks`` > 1 precision and recall are the chunk averages of
    :func:`chunked_prc` (their ``*_spread`` stays the split-half difference of
    full-reference values); 1 scores the full sets at once.
    """
    out = metrics_from_features(fake, real, feature_extractor, metrics)
    if "prc" in metrics and prc_chunks > 1:
        out.update(chunked_prc(fake, real, feature_extractor, prc_chunks))
    spread = split_half_spread(fake, real, feature_extractor, metrics)
    out.update({f"{k}_spread": v for k, v in spread.items()})
    out.update(bootstrap_sd(fake, real, feature_extractor, metrics))
    return out
