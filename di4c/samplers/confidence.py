"""MaskGIT confidence sampler with the Di4C unmask schedule and CFG (paper Sec. 5.2).

See docs/algorithm.md#maskgit-confidence-sampler and docs/algorithm.md#classifier-free-guidance.

- Unmask schedule (the authors' modified ``adap_sche``): m_i = round(gamma(i/N) D)
  for i = 0..N with gamma(r) = arccos(r) / (pi/2); n_i = m_i - m_{i+1}; zeros
  become 1; the last step absorbs the remainder. N = 4, D = 256 gives 41, 44, 53, 118.
- Classifier-free guidance with a linear ramp w_i = w i / (N - 1) (first step
  unguided), logits (1 + w_i) l_cond - w_i l_uncond, the same lambda in both halves.
- Tokens sampled from softmax(logits * sm_temp); confidence log p + r_temp *
  Gumbel * (1 - i/(N-1)) on masked positions; the top n_i are committed.

``cond`` holds class labels; label ``-1`` is the unconditional (dropped) label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from di4c.denoiser import Denoiser
from di4c.samplers.analytical import SampleOutput, per_step_denoisers
from di4c.samplers.steps import maskgit_step

UNCOND = -1


def _gamma(mode: str, r: Tensor) -> Tensor:
    fns = {
        "arccos": lambda r: torch.arccos(r) / (math.pi * 0.5),
        "linear": lambda r: 1 - r,
        "cosine": lambda r: torch.cos(r * math.pi * 0.5),
        "square": lambda r: 1 - r**2,
        "root": lambda r: 1 - r**0.5,
    }
    if mode not in fns:
        raise ValueError(f"unknown unmask schedule {mode!r}; allowed: {sorted(fns)}")
    return fns[mode](r)


def unmask_schedule(
    num_steps: int, num_tokens: int = 256, mode: str = "arccos"
) -> list[int]:
    """Tokens committed at each of ``num_steps`` steps (sums to ``num_tokens``)."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    r = torch.linspace(0, 1, num_steps + 1, dtype=torch.float32)
    m = (_gamma(mode, r) * num_tokens).round()
    n = m[:-1] - m[1:]
    n[n == 0] = 1
    n[-1] += num_tokens - n.sum()
    return [int(v) for v in n]


def cfg_ramp(step: int, num_steps: int, w: float) -> float:
    """Linear CFG ramp w * i / (N - 1); 0 for a single-step sampler."""
    return 0.0 if num_steps == 1 else w * step / (num_steps - 1)


def guided_logits(
    den: Denoiser, x: Tensor, t: Tensor, lam: Tensor, labels: Tensor, w: float
) -> Tensor:
    """(1 + w) l(x | y) - w l(x | uncond) from one batched pass, same lambda in both halves."""
    if w == 0:
        return den(x, t, lam, labels)
    both = den(
        torch.cat([x, x]),
        torch.cat([t, t]),
        torch.cat([lam, lam]),
        torch.cat([labels, torch.full_like(labels, UNCOND)]),
    )
    lc, lu = both.chunk(2)
    return (1 + w) * lc - w * lu


def confidence_sample(
    process,
    denoisers: Denoiser | Sequence[Denoiser],
    num_steps: int,
    rng,
    dim: int,
    cond: Tensor | None = None,
    guidance: float = 3.0,
    sm_temp: float = 1.0,
    r_temp: float = 4.5,
    schedule: str = "arccos",
    num_classes: int | None = None,
) -> SampleOutput:
    """Sample B = len(rng) token grids of ``dim`` tokens in ``num_steps`` steps.

    ``process`` supplies the mask id; ``denoisers`` is one denoiser or one per step
    (the hybrid rule, :func:`di4c.samplers.hybrid_schedule`); ``cond`` holds the
    class labels (None: unconditional). Final tokens are clamped to
    [0, num_classes - 1] as the authors do before decoding (``num_classes``
    defaults to the mask id).
    """
    per_step = per_step_denoisers(denoisers, num_steps)
    mask_id = process.mask_id
    B = len(rng)
    labels = cond if cond is not None else torch.full((B,), UNCOND, device=rng.device)
    if labels.shape != (B,):
        raise ValueError(f"labels must have shape ({B},); got {tuple(labels.shape)}")
    sched = unmask_schedule(num_steps, dim, schedule)
    x = torch.full((B, dim), mask_id, dtype=torch.long, device=rng.device)
    for i, (n_i, den) in enumerate(zip(sched, per_step)):
        t = (x == mask_id).float().mean(1)
        lam = rng.rand(B)
        w = cfg_ramp(i, num_steps, guidance)
        logits = guided_logits(den, x, t, lam, labels, w)
        anneal = torch.full(
            (B,), 1 - (i / (num_steps - 1) if num_steps > 1 else 0.0), device=x.device
        )
        x = maskgit_step(
            logits,
            x,
            torch.full((B,), n_i, device=x.device),
            mask_id,
            rng,
            anneal,
            sm_temp,
            r_temp,
        )
    x = x.clamp(0, (num_classes or mask_id) - 1)
    return SampleOutput(x=x, nfe=num_steps, models=[type(d).__name__ for d in per_step])
