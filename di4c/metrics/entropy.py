"""Unigram entropy of generated token sequences (diversity beside Gen PPL; paper Fig. 4).

The authors' code does not compute it (docs/implementation-notes.md#unigram-entropy);
this is the standard
definition of the MDLM / SDTT / DUO line of work (Zheng et al. 2024; ``duo``'s
``record_entropy``): for each sample of L tokens, p_v = count_v / L and
H = -sum_v p_v ln p_v (nats); the reported value is the mean over samples.
Low entropy flags repetitive samples, which also lower Gen PPL
(docs/implementation-notes.md#low-precision-sampling).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from di4c.metrics.counts import require_samples


def unigram_entropy(ids: Tensor) -> Tensor:
    """Per-sample unigram entropy in nats of ``ids`` (n, L) -> (n,) float64."""
    if ids.dim() != 2 or ids.dtype.is_floating_point:
        raise ValueError(
            f"ids must be an integer tensor (n, L); got {ids.dtype} {tuple(ids.shape)}"
        )
    n, L = ids.shape
    if L == 0:
        raise ValueError("ids must hold at least one token per sample")
    out = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        _, counts = torch.unique(ids[i], return_counts=True)
        p = counts.double() / L
        out[i] = -(p * p.log()).sum()
    return out


def entropy_summary(ids: Tensor, min_samples: int | None = None) -> dict:
    """Mean entropy, its standard error and the two split-half means, of at least
    ``min_samples`` (>= 2) sequences (:func:`~di4c.metrics.counts.require_samples`)."""
    require_samples(ids.shape[0] if ids.dim() else 0, min_samples, unit="sequences")
    h = unigram_entropy(ids)
    n = h.numel()
    half = n // 2
    return {
        "entropy": float(h.mean()),
        "entropy_se": float(h.std() / math.sqrt(n)),
        "entropy_half_a": float(h[:half].mean()),
        "entropy_half_b": float(h[half:].mean()),
    }
