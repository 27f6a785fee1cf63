"""MDLM ancestral sampler for the absorbing-mask process (paper Sec. 5.3).

See docs/algorithm.md#mdlm-ancestral-sampler.

Grid linspace(1, t_end, N + 1), N ancestral steps: each masked dimension stays
masked with probability m(s)/m(t), else takes a value drawn from the
x0-prediction; unmasked dimensions are carried over. If t_end > 0 and masks
remain, one final denoise at t_end takes the argmax over data classes (MDLM's
``noise_removal``); NFE = N (+1 for samples that need it). With t_end = 0 the
last step unmasks everything (the theory table's product sampler).

Draws use the Gumbel race with float64 noise by default (``noise_dtype``;
float32 reproduces the lower-entropy behaviour of 32-bit sampling;
docs/implementation-notes.md#low-precision-sampling).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from di4c.denoiser import Denoiser
from di4c.processes.masked import MaskedProcess
from di4c.samplers.analytical import SampleOutput, per_step_denoisers
from di4c.samplers.steps import posterior_step


def ancestral_sample(
    process: MaskedProcess,
    denoisers: Denoiser | Sequence[Denoiser],
    num_steps: int,
    rng,
    dim: int,
    cond: Tensor | None = None,
    t_end: float = 1e-5,
    method: str = "gumbel",
    noise_dtype: torch.dtype = torch.float64,
) -> SampleOutput:
    """Sample B = len(rng) sequences of length ``dim`` in ``num_steps`` ancestral steps."""
    per_step = per_step_denoisers(denoisers, num_steps)
    if not 0 <= t_end < 1:
        raise ValueError(f"t_end must be in [0, 1); got {t_end}")
    B = len(rng)
    ts = torch.linspace(1.0, t_end, num_steps + 1, dtype=torch.float64)
    x = torch.full((B, dim), process.mask_id, dtype=torch.long, device=rng.device)
    nfe = 0
    for i, den in enumerate(per_step):
        t = ts[i].expand(B).to(torch.float32)
        s = ts[i + 1].expand(B).to(torch.float32)
        lam = rng.rand(B)
        if (x == process.mask_id).any():
            logp = den(x, t, lam, cond)
            nfe += 1
            x = posterior_step(process, x, logp.exp(), t, s, rng, method, noise_dtype)
        else:  # nothing left to denoise; keep the per-sample streams aligned
            rng.rand(
                B,
                dim,
                process.num_states if method == "gumbel" else 1,
                dtype=noise_dtype,
            )
    lam = rng.rand(B)
    still = x == process.mask_id
    if still.any():
        den = per_step[-1]
        logp = den(x, torch.full((B,), t_end, dtype=torch.float32), lam, cond)
        nfe += 1
        x = torch.where(still, logp[..., : process.num_classes].argmax(-1), x)
    return SampleOutput(x=x, nfe=nfe, models=[type(d).__name__ for d in per_step])
