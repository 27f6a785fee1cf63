"""Absorbing-mask process (MDLM / SDTT, MaskGIT; paper Secs. 5.2-5.3).

Each dimension is replaced by the mask id S independently with probability
m(t), where m is the schedule ("move chance"). States: 0..S-1 data, S = mask.

Schedules (registry :data:`SCHEDULES`):

- ``loglinear``: sigma(t) = -log(1 - (1 - eps) t), m(t) = (1 - eps) t, eps = 1e-3
  (MDLM/SDTT, docs/algorithm.md#log-linear-masking-process);
- ``linear``: m(t) = t (the log-linear schedule with eps = 0; the theory table);
- ``arccos``: with progress r = 1 - t, m = arccos(r) / (pi / 2)
  (MaskGIT, docs/algorithm.md#vqgan-tokens-and-masking).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from di4c.processes.base import ForwardProcess, check_states, check_time


@dataclass(frozen=True)
class LogLinearSchedule:
    eps: float = 1e-3

    def mask_prob(self, t: Tensor) -> Tensor:
        return (1 - self.eps) * t

    def sigma(self, t: Tensor) -> Tensor:
        """MDLM's total noise sigma(t) = -log(1 - (1 - eps) t)."""
        return -torch.log1p(-(1 - self.eps) * t)


@dataclass(frozen=True)
class LinearSchedule:
    def mask_prob(self, t: Tensor) -> Tensor:
        return t


@dataclass(frozen=True)
class ArccosSchedule:
    def mask_prob(self, t: Tensor) -> Tensor:
        r = (1 - t).clamp(0, 1)
        return torch.arccos(r) / (math.pi / 2)


SCHEDULES = {
    "loglinear": LogLinearSchedule,
    "linear": LinearSchedule,
    "arccos": ArccosSchedule,
}


class MaskedProcess(ForwardProcess):
    """Absorbing mask over S data classes; the mask id is S."""

    def __init__(
        self,
        S: int,
        schedule: str = "loglinear",
        dtype: torch.dtype = torch.float32,
        **schedule_kwargs,
    ):
        if not isinstance(S, int) or S < 1:
            raise ValueError(f"S must be a positive integer; got {S!r}")
        if schedule not in SCHEDULES:
            raise ValueError(
                f"unknown schedule {schedule!r}; allowed: {sorted(SCHEDULES)}"
            )
        self.num_classes = S
        self.num_states = S + 1
        self.mask_id = S
        self.schedule_name = schedule
        self.schedule = SCHEDULES[schedule](**schedule_kwargs)
        self.dtype = dtype

    def mask_prob(self, t: Tensor) -> Tensor:
        return self.schedule.mask_prob(t.to(self.dtype))

    def forward_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        check_states("x0", x0, self.num_classes)
        check_time("t", t, x0.shape[0])
        m = self.mask_prob(t)[:, None, None]
        onehot = torch.nn.functional.one_hot(x0, self.num_states).to(self.dtype)
        probs = onehot * (1 - m)
        probs[..., self.mask_id] += m[..., 0]
        return probs

    def sample_forward_u(self, x0: Tensor, t: Tensor, u: Tensor) -> Tensor:
        check_states("x0", x0, self.num_classes)
        check_time("t", t, x0.shape[0])
        return torch.where(u < self.mask_prob(t)[:, None].to(u.dtype), self.mask_id, x0)

    def prior_probs(self) -> Tensor:
        p = torch.zeros(self.num_states, dtype=self.dtype)
        p[self.mask_id] = 1.0
        return p

    def sample_prior(self, batch: int, dim: int, generator=None) -> Tensor:
        return torch.full((batch, dim), self.mask_id, dtype=torch.long)

    def stay_masked_prob(self, t: Tensor, s: Tensor) -> Tensor:
        """P(x_s masked | x_t masked) = m(s) / m(t), per sample (B,)."""
        mt = self.mask_prob(t)
        if (mt <= 0).any():
            raise ValueError(
                "t must have a positive mask probability for a reverse step"
            )
        return self.mask_prob(s) / mt

    def posterior_given_x0(self, x_t, x0, t, s):
        self.check_step(x_t, t, s)
        keep = self.stay_masked_prob(t, s)[:, None, None]
        onehot0 = torch.nn.functional.one_hot(x0, self.num_states).to(self.dtype)
        masked_law = onehot0 * (1 - keep)
        masked_law[..., self.mask_id] = keep[..., 0]
        carry = torch.nn.functional.one_hot(x_t, self.num_states).to(self.dtype)
        return torch.where((x_t == self.mask_id)[..., None], masked_law, carry)

    def posterior_probs(self, x_t, p0, t, s):
        """Masked d: mask w.p. m(s)/m(t), value v w.p. (1 - m(s)/m(t)) p0(v); else carry.

        A mask column in ``p0`` (networks scoring S + 1 classes) is dropped and
        the rest renormalised; this is MDLM's ancestral update
        (docs/algorithm.md#mdlm-ancestral-sampler).
        """
        self.check_step(x_t, t, s)
        p0 = p0[..., : self.num_classes].to(self.dtype)
        p0 = p0 / p0.sum(-1, keepdim=True)
        keep = self.stay_masked_prob(t, s)[:, None, None]
        law = torch.cat([p0 * (1 - keep), keep.expand(*p0.shape[:2], 1)], dim=-1)
        carry = torch.nn.functional.one_hot(x_t, self.num_states).to(self.dtype)
        return torch.where((x_t == self.mask_id)[..., None], law, carry)
