"""tauLDR analytical sampler and the student/teacher hybrid (paper Sec. 5.1).

See docs/algorithm.md#analytical-sampler and docs/algorithm.md#hybrid-sampler.

Time points linspace(t_max, t_min, N) (default 1 -> 0.01): N - 1 analytical
steps between consecutive points, then one final x0-prediction at t_min taken
by *argmax*. NFE = N. The hybrid gives step indices i < N - L to the student
and the rest, the final argmax included, to the teacher (``-n N -l L``).
Each network call gets a fresh lambda per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from di4c.denoiser import Denoiser
from di4c.processes.base import MatrixProcess
from di4c.samplers.steps import analytical_step, prior_draw


@dataclass
class SampleOutput:
    x: Tensor  # (B, D) final states
    nfe: int  # network evaluations per sample
    models: list[str]  # which model made each evaluation


def per_step_denoisers(denoisers, num_steps: int) -> list:
    """One denoiser per step: a single denoiser repeated, or a list of exactly N."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
    per_step = (
        list(denoisers) if isinstance(denoisers, Sequence) else [denoisers] * num_steps
    )
    if len(per_step) != num_steps:
        raise ValueError(f"got {len(per_step)} denoisers for num_steps={num_steps}")
    return per_step


def hybrid_schedule(
    student: Denoiser, teacher: Denoiser, num_steps: int, teacher_last: int
):
    """Per-step denoisers: student for i < N - L, teacher for the last L (final argmax
    included). The one hybrid rule of every sampler (sony/di4c
    tauldr/scripts/distil_sample.py ``-n N -l L``)."""
    if not 0 <= teacher_last <= num_steps:
        raise ValueError(
            f"teacher_last must be in [0, num_steps={num_steps}]; got {teacher_last}"
        )
    return [
        student if i < num_steps - teacher_last else teacher for i in range(num_steps)
    ]


def analytical_sample(
    process: MatrixProcess,
    denoisers: Denoiser | Sequence[Denoiser],
    num_steps: int,
    rng,
    dim: int,
    cond: Tensor | None = None,
    t_max: float = 1.0,
    t_min: float = 0.01,
    eps: float = 1e-9,
    names: Sequence[str] | None = None,
) -> SampleOutput:
    """Sample B = len(rng) states of dimension ``dim`` with N = ``num_steps`` NFEs."""
    per_step = per_step_denoisers(denoisers, num_steps)
    if not 0 < t_min <= t_max <= 1:
        raise ValueError(
            f"need 0 < t_min <= t_max <= 1; got t_min={t_min}, t_max={t_max}"
        )
    B = len(rng)
    ts = torch.linspace(t_max, t_min, num_steps, dtype=torch.float64)
    x = prior_draw(process, B, dim, rng)
    for i, den in enumerate(per_step):
        t = ts[i].expand(B).to(torch.float32)
        lam = rng.rand(B)
        logp = den(x, t, lam, cond)
        if i == num_steps - 1:
            x = logp[..., : process.num_classes].argmax(-1)
        else:
            s = ts[i + 1].expand(B).to(torch.float32)
            x = analytical_step(process, x, logp.exp(), t, s, rng, eps=eps)
    labels = list(names) if names else [type(d).__name__ for d in per_step]
    return SampleOutput(x=x, nfe=num_steps, models=labels)
