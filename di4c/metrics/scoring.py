"""One record per sample cell: the metrics and their noise, for images and for text.

The noise of every metric is estimated the same way (the one noise rule of
:mod:`di4c.analysis`): the bootstrap standard deviation over the generated samples,
the reference held fixed, ``bootstrap`` resamples drawn with a fixed seed. For
images the metric is recomputed from resampled features (FID, IS); for text from
resampled per-sample values (generative perplexity = exp of the mean per-sample NLL,
sony/di4c sdtt/src/sdtt/run_eval.py; unigram entropy = mean per-sample entropy).
Precision and recall carry no sd (they decide no verdict).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from di4c.metrics.counts import require_samples
from di4c.metrics.image_quality import extract_features, metrics_from_features

BOOTSTRAP_SEED = 2020
_METRIC_NAME = {"fid": "fid", "isc": "is", "kid": "kid"}
# The entry of a features dict (and of the reference's features.pt) holding the
# (C, H, W) of the images the features were made from.
SAMPLE_SHAPE_KEY = "sample_shape"


class SampleShapeError(ValueError):
    """Generated images of another shape than the reference's were to be scored."""


def shape_checked(chunks: Iterable[Tensor], want: tuple | None, seen: list) -> Iterable:
    """Yield the image chunks (N, C, H, W), refusing any whose (C, H, W) differs from
    ``want`` (None: from the first chunk); the shape met is appended to ``seen``.

    A feature extractor takes images of any channel count or size (the digit
    classifier averages RGB, Inception resizes), so without this check samples of
    the wrong shape would be scored against the reference without a word.
    """
    for chunk in chunks:
        shape = tuple(int(v) for v in chunk.shape[1:])
        ref = want if want is not None else (seen[0] if seen else None)
        if ref is not None and shape != tuple(ref):
            c, h, w = (*ref, None, None, None)[:3]
            raise SampleShapeError(
                f"the images to score are {'x'.join(map(str, shape))} (C x H x W) but "
                f"the reference features were made from {c}x{h}x{w} images; sample "
                "with this setting's models, or rebuild the reference (rule reference)"
            )
        if not seen:
            seen.append(shape)
        yield chunk


def bootstrap_sd(
    stat: Callable[[Tensor], dict[str, float]], n: int, resamples: int, seed: int
) -> dict[str, float]:
    """``{key_sd}``: the sd of ``stat(idx)`` over ``resamples`` index resamples of n items."""
    if resamples < 2 or n < 2:
        return {}
    gen = torch.Generator().manual_seed(seed)
    vals: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = torch.randint(0, n, (n,), generator=gen)
        for k, v in stat(idx).items():
            vals.setdefault(k, []).append(v)
    return {
        f"{k}_sd": float(torch.tensor(v, dtype=torch.float64).std())
        for k, v in vals.items()
    }


def features_of_chunks(
    chunks: Iterable[Tensor],
    feature_extractor: str,
    metrics,
    weights_path=None,
    batch_size: int = 256,
) -> dict[str, Tensor]:
    """Concatenated features ``{layer: (N, dim)}`` of uint8 image chunks (N, C, H, W)."""
    parts: dict[str, list[Tensor]] = {}
    for chunk in chunks:
        feats = extract_features(
            chunk,
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


def chunked_prc(fake, real, feature_extractor: str, chunks: int) -> dict:
    """Precision / recall (k = 3) averaged over ``chunks`` aligned chunks of both sets.

    The ImageNet protocol scores 5 chunks of 10,000 (sony/di4c
    maskgit-pytorch/Metrics/inception_metrics.py, manifold metrics); 1 scores the
    full sets at once.
    """
    if chunks < 1:
        raise ValueError(f"prc_chunks must be >= 1; got {chunks}")
    n_fake = len(next(iter(fake.values())))
    n_real = len(next(iter(real.values())))
    if min(n_fake, n_real) < 4 * chunks:
        raise ValueError(
            f"{chunks} precision/recall chunks need >= {4 * chunks} generated and "
            f"reference images; got {n_fake} and {n_real} (lower metrics.prc_chunks)"
        )
    parts = [
        metrics_from_features(
            dict(zip(fake, fc)), dict(zip(real, rc)), feature_extractor, ("prc",)
        )
        for fc, rc in zip(
            zip(*(v.chunk(chunks) for v in fake.values())),
            zip(*(v.chunk(chunks) for v in real.values())),
        )
    ]
    return {
        key: sum(p[key] for p in parts) / len(parts) for key in ("precision", "recall")
    }


def image_record(
    fake: dict[str, Tensor],
    real: dict[str, Tensor],
    feature_extractor: str,
    metrics,
    bootstrap: int,
    prc_chunks: int = 1,
) -> dict:
    """FID / IS / KID / precision / recall of generated features against the reference,
    with ``<metric>_sd`` (bootstrap) for FID, IS and KID."""
    out = metrics_from_features(fake, real, feature_extractor, metrics)
    record = {
        k: out[k] for k in ("fid", "is", "kid", "precision", "recall") if k in out
    }
    if "prc" in metrics and prc_chunks > 1:
        record.update(chunked_prc(fake, real, feature_extractor, prc_chunks))
    sub = tuple(m for m in metrics if m in _METRIC_NAME)
    n = len(next(iter(fake.values())))

    def stat(idx):
        r = metrics_from_features(
            {k: v[idx] for k, v in fake.items()}, real, feature_extractor, sub
        )
        return {_METRIC_NAME[m]: r[_METRIC_NAME[m]] for m in sub}

    if sub:
        record.update(bootstrap_sd(stat, n, bootstrap, BOOTSTRAP_SEED))
    record["num_samples"] = n
    return record


def text_record(
    nll: Tensor,
    entropy: Tensor,
    bootstrap: int,
    min_samples: int | None = None,
    protocol: str | None = None,
) -> dict:
    """Gen PPL (exp of the mean per-sample NLL) and mean unigram entropy, with bootstrap
    sds, of at least ``min_samples`` (>= 2) sequences (the ``protocol``'s minimum)."""
    n = nll.numel()
    if n != entropy.numel():
        raise ValueError("one NLL and one entropy per sample are needed")
    require_samples(n, min_samples, unit="sequences", protocol=protocol)

    def stat(idx):
        return {
            "gen_ppl": math.exp(float(nll[idx].double().mean())),
            "entropy": float(entropy[idx].double().mean()),
        }

    record = stat(torch.arange(n))
    record.update(bootstrap_sd(stat, n, bootstrap, BOOTSTRAP_SEED))
    record["nll"] = float(nll.double().mean())
    record["num_samples"] = n
    return record
