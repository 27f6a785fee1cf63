"""Per-setting Di4C training rules as data (method.md §3.3, §4.3, §5.3 and table §6).

One :class:`DistillRules` entry per paper setting in :data:`SETTINGS`; time
samplers in :data:`TIME_SAMPLERS`. Each time sampler returns a :class:`TimeDraw`
carrying the time the networks see, the forward-process times of x_t and of the
teacher's target x_u, and the distillation-region flag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from di4c.samplers.noise import as_rng


@dataclass
class TimeDraw:
    t: Tensor  # (B,) time given to networks, alpha(t) and region rules
    t_mask: Tensor  # (B,) forward-process time used to draw x_t
    u: Tensor  # (B,) time given to the student at x_u
    u_mask: Tensor  # (B,) forward-process time the teacher steps to
    distil: Tensor  # (B,) bool: sample lies in the distillation region

    def repeat(self, k: int) -> TimeDraw:
        return TimeDraw(*(v.repeat_interleave(k, 0) for v in vars(self).values()))


def tauldr_times(B, rng, min_time=0.01, min_step=1e-3, max_step=1e-2) -> TimeDraw:
    """CIFAR: Delta log-uniform on [min_step, max_step], t ~ U(min_time + Delta, 1), u = t - Delta."""
    rng = as_rng(rng)
    delta = min_step * torch.exp(rng.rand(B) * math.log(max_step / min_step))
    t = rng.rand(B) * (1.0 - min_time - delta) + min_time + delta
    u = t - delta
    return TimeDraw(t, t, u, u, torch.zeros(B, dtype=torch.bool))


def maskgit_times(B, rng, r_delta=0.05) -> TimeDraw:
    """ImageNet: progress r ~ U(0, 1), t = 1 - r; distillation region r >= 1 - r_delta."""
    r = as_rng(rng).rand(B)
    t = 1 - r
    u = (t - r_delta).clamp(min=0)
    return TimeDraw(t, t, u, u, r >= 1 - r_delta)


def _sdtt_grid(t: Tensor, T: int) -> Tensor:
    return (t * T).to(torch.int32).to(t.dtype) / T + 1.0 / T


def sdtt_times(B, rng, T=1024, distil_prob=0.3, distil_delta=0.02) -> TimeDraw:
    """OWT: with prob 0.3 t ~ U(0, delta) else U(delta, 1); grid 1/T.

    The authors draw one t per device batch of B = 1 sequence; we draw one per
    sequence, which is the same rule at their batch size. Reproduces their
    double discretisation: the network/region time is floor(T t)/T + 1/T, the
    masking time discretises it once more, and the teacher steps
    dt = min(1/T, t/2) from there (method.md pitfall 9).
    """
    rng = as_rng(rng)
    base = rng.rand(B)
    in_distil = rng.rand(B) < distil_prob
    t = torch.where(
        in_distil, base * distil_delta, distil_delta + (1 - distil_delta) * base
    )
    t = _sdtt_grid(t, T)
    dt = torch.minimum(torch.full_like(t, 1.0 / T), t / 2)
    t_mask = _sdtt_grid(t, T).clamp(max=1.0)
    u_mask = _sdtt_grid(t - dt, T).clamp(max=1.0)
    return TimeDraw(t, t_mask, t - dt, u_mask, t < distil_delta)


TIME_SAMPLERS = {"tauldr": tauldr_times, "maskgit": maskgit_times, "sdtt": sdtt_times}


@dataclass(frozen=True)
class DistillRules:
    """Everything that differs between the three paper settings (table §6)."""

    name: str
    K: int  # lambda samples per x_t
    time_sampler: str  # key of TIME_SAMPLERS
    time_kwargs: dict = field(default_factory=dict)
    distil_mode: str = (
        "separate"  # "separate": fresh x_delta per copy, always on; "region"
    )
    distil_weight: float = 1.0
    distil_min_time: float = 0.01  # separate mode: delta = min + Bern(1/2) U max
    distil_max_time: float = 0.01
    alpha_const: float = 1.0  # alpha(t) = const * sigmoid(20 (t - 1/2))
    alpha_schedule: str = (
        "sigmoid"  # key of loss.ALPHA_SCHEDULES (all paper settings: sigmoid)
    )
    teacher_step: str = "analytical"  # key of distill.TEACHER_STEPS
    teacher_step_kwargs: dict = field(default_factory=dict)
    target_train_mode: bool = True  # dropout on in the stop-grad u-branch (CIFAR)
    use_cv: bool = True
    optimizer: str = "adam"
    lr: float = 2e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    ema_decay: float | None = 0.9999
    sample_from_ema: bool = True
    precision: str = "fp32"
    batch_x: int = 8  # conditioning states x_t per optimiser step (over all devices)
    seed: int = 0
    loss_dim_chunk: int | None = None  # evaluate the loss over D in chunks (memory)

    def with_overrides(self, **kw) -> DistillRules:
        unknown = set(kw) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown distillation rule(s) {sorted(unknown)}; allowed: {sorted(self.__dataclass_fields__)}"
            )
        return replace(self, **kw)


SETTINGS: dict[str, DistillRules] = {
    "cifar10": DistillRules(
        name="cifar10",
        K=16,
        time_sampler="tauldr",
        time_kwargs=dict(min_time=0.01, min_step=1e-3, max_step=1e-2),
        distil_mode="separate",
        distil_weight=1.0,
        distil_min_time=0.01,
        distil_max_time=0.01,
        alpha_const=1.0,
        teacher_step="analytical",
        target_train_mode=True,
        optimizer="adam",
        lr=2e-4,
        ema_decay=0.9999,
        sample_from_ema=True,
        precision="fp32",
        batch_x=8,
        seed=431354,
    ),
    "imagenet": DistillRules(
        name="imagenet",
        K=32,
        time_sampler="maskgit",
        time_kwargs=dict(r_delta=0.05),
        distil_mode="region",
        distil_weight=20.0,
        alpha_const=0.1,
        teacher_step="maskgit",
        teacher_step_kwargs=dict(
            r_delta=0.05, teacher_steps=8, r_temp=4.5, sm_temp=1.0
        ),
        target_train_mode=False,
        optimizer="adamw",
        lr=1e-5,
        betas=(0.9, 0.96),
        weight_decay=1e-5,
        ema_decay=None,
        sample_from_ema=False,
        precision="fp16",
        batch_x=4,
        seed=42,
    ),
    "openwebtext": DistillRules(
        name="openwebtext",
        K=16,
        time_sampler="sdtt",
        time_kwargs=dict(T=1024, distil_prob=0.3, distil_delta=0.02),
        distil_mode="region",
        distil_weight=1.0,
        alpha_const=0.1,
        teacher_step="ancestral",
        target_train_mode=False,
        optimizer="adamw",
        lr=3e-5,
        weight_decay=0.0,
        warmup_steps=2500,
        ema_decay=0.9999,
        sample_from_ema=False,
        precision="bf16",
        batch_x=2,
        seed=0,
    ),
}


def get_rules(name: str, **overrides) -> DistillRules:
    """Rules of a paper setting, with optional field overrides (validated)."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; allowed: {sorted(SETTINGS)}")
    return SETTINGS[name].with_overrides(**overrides) if overrides else SETTINGS[name]
