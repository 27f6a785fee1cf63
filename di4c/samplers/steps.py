"""One reverse step t -> s of each sampler family (shared by samplers and training).

- :func:`analytical_step`: tauLDR's analytical step (docs/algorithm.md#analytical-sampler): draw
  x0 ~ prod_d p_{0|t}, then x_s^d ~ q(x_s | x_t, x0) per dimension.
- :func:`posterior_step`: draw x_s^d from the per-dimension one-step law
  sum_v p0(v) q(x_s | x_t, v) directly (MDLM ancestral step, docs/algorithm.md#mdlm-ancestral-sampler; equal in
  distribution to the analytical step).
- :func:`maskgit_step`: MaskGIT's confidence step: sample every token, rank
  masked positions by log-prob plus annealed Gumbel noise, commit the top k
  (docs/algorithm.md#maskgit-confidence-sampler).
"""

from __future__ import annotations

import torch
from torch import Tensor

from di4c.processes.base import ForwardProcess, MatrixProcess
from di4c.samplers.noise import categorical, gumbel


def prior_draw(process: ForwardProcess, batch: int, dim: int, rng) -> Tensor:
    """x_1 from the product prior, one uniform per dimension from ``rng``."""
    return categorical(process.prior_probs().expand(batch, dim, -1), rng)


def analytical_step(
    process: MatrixProcess,
    x_t: Tensor,
    p0: Tensor,
    t: Tensor,
    s: Tensor,
    rng,
    eps: float = 1e-9,
) -> Tensor:
    """Two-stage analytical step; ``eps`` = 1e-9 reproduces the authors' regularisation."""
    x0 = categorical(p0[..., : process.num_classes], rng)
    return categorical(process.posterior_given_x0(x_t, x0, t, s, eps=eps), rng)


def posterior_step(
    process: ForwardProcess,
    x_t: Tensor,
    p0: Tensor,
    t: Tensor,
    s: Tensor,
    rng,
    method: str = "inverse_cdf",
    noise_dtype: torch.dtype = torch.float64,
) -> Tensor:
    """One draw from the per-dimension one-step law (carry-over included)."""
    return categorical(process.posterior_probs(x_t, p0, t, s), rng, method, noise_dtype)


def maskgit_step(
    logits: Tensor,
    x_t: Tensor,
    num_unmask: Tensor,
    mask_id: int,
    rng,
    anneal: Tensor,
    sm_temp: float = 1.0,
    r_temp: float = 4.5,
) -> Tensor:
    """Commit ``num_unmask[b]`` masked tokens of sample b by Gumbel-perturbed confidence.

    Args:
        logits: (B, D, C) scores (log-probs or CFG-combined logits) over C classes.
        x_t: (B, D) tokens, ``mask_id`` where masked.
        num_unmask: (B,) long, clipped to the number of masked positions.
        anneal: (B,) the factor (1 - ratio) multiplying r_temp * Gumbel noise.
    """
    B, D, C = logits.shape
    probs = torch.softmax(logits.double() * sm_temp, -1)
    pred = categorical(probs, rng)
    conf = torch.log(torch.gather(probs, 2, pred[..., None])[..., 0])
    conf = conf + r_temp * gumbel(rng, B, D) * anneal.double()[:, None]
    masked = x_t == mask_id
    conf = torch.where(masked, conf, torch.full_like(conf, -torch.inf))
    k = torch.minimum(num_unmask.long(), masked.sum(1))
    order = conf.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(D, device=x_t.device).expand(B, D))
    commit = (rank < k[:, None]) & masked
    return torch.where(commit, pred, x_t)
