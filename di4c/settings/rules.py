"""Di4C distillation rules as data: :class:`DistillRules` and the time samplers.

The paper values of each setting live in its adapter (``di4c.settings.<setting>``);
time samplers are in :data:`TIME_SAMPLERS`. Each time sampler returns a :class:`TimeDraw`
carrying the time the networks see, the forward-process times of x_t and of the
teacher's target x_u, and the distillation-region flag.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import torch
from torch import Tensor

from di4c.config import ConfigError
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
    dt = min(1/T, t/2) from there (docs/implementation-notes.md#sdtt-time-grid).
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


PRECISIONS = ("fp32", "bf16")  # fp16 needs a GradScaler, which the shared loop has not


@dataclass(frozen=True)
class DistillRules:
    """The rules of one Di4C distillation run (paper Sec. 4 and 5; Appendix hyperparameters).

    The loss rules (K, time sampler, regions, alpha, teacher one-step, target-branch
    mode), the optimiser, and the run itself (length, initialisation, augmentation).
    Each setting's paper values, with their sources, are in its adapter
    (``di4c.settings.<setting>.PAPER``); a scale changes them by overrides.
    """

    K: int = 16  # lambda samples per x_t (1 = product distillation)
    batch_x: int = 8  # conditioning states x_t per optimiser step (all devices)
    time_sampler: str = "tauldr"  # key of TIME_SAMPLERS
    time_kwargs: dict = field(default_factory=dict)
    distil_mode: str = "separate"  # "separate": own small time per copy; "region"
    distil_weight: float = 1.0
    distil_min_time: float = 0.01  # separate mode: delta = min + Bern(1/2) U max
    distil_max_time: float = 0.01
    alpha_const: float = 1.0  # alpha(t) = const * schedule(t)
    alpha_schedule: str = "sigmoid"  # key of loss.ALPHA_SCHEDULES
    teacher_step: str = "analytical"  # key of distill.TEACHER_STEPS
    teacher_step_kwargs: dict = field(default_factory=dict)
    target_train_mode: bool = True  # dropout on in the stop-grad u-branch
    use_cv: bool = True  # control variate in the correlation estimate
    loss_dim_chunk: int | None = None  # evaluate the loss over D in chunks (memory)
    optimizer: str = "adam"  # key of train.OPTIMIZERS
    lr: float = 2e-4
    betas: tuple = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    ema_decay: float | None = 0.9999
    sample_from_ema: bool = True  # the saved student samples from its EMA weights
    precision: str = "fp32"  # autocast of the loss computation: fp32 | bf16
    seed: int = 0  # training randomness (data order, loss draws, dropout)
    iters: int = 1000  # optimiser steps
    init_weights: str = (
        "raw"  # raw | ema: weights of the init file the student starts from
    )
    lambda_init_seed: int = 0  # seed of a freshly initialised lambda path
    hflip: bool = False  # random horizontal flips of training images
    label_drop: float = 0.0  # probability of the unconditional label (CFG training)
    log_every: int = 50
    ckpt_every: int = 500

    def __post_init__(self):
        problems = []
        if self.K < 1:
            problems.append(f"K must be >= 1; got {self.K}")
        if self.batch_x < 1:
            problems.append(f"batch_x must be >= 1; got {self.batch_x}")
        if self.time_sampler not in TIME_SAMPLERS:
            problems.append(
                f"time_sampler {self.time_sampler!r} unknown; allowed: {sorted(TIME_SAMPLERS)}"
            )
        if self.distil_mode not in ("region", "separate"):
            problems.append(
                f"distil_mode {self.distil_mode!r} unknown; allowed: ['region', 'separate']"
            )
        if self.precision not in PRECISIONS:
            problems.append(
                f"precision {self.precision!r} unknown; allowed: {list(PRECISIONS)} "
                "(fp16 needs a GradScaler, which the training loop has not)"
            )
        if self.init_weights not in ("raw", "ema"):
            problems.append(
                f"init_weights must be 'raw' or 'ema'; got {self.init_weights!r}"
            )
        if not 0.0 <= self.label_drop <= 1.0:
            problems.append(f"label_drop must be in [0, 1]; got {self.label_drop}")
        if self.iters < 0:
            problems.append(f"iters must be >= 0; got {self.iters}")
        if problems:
            raise ConfigError("invalid distillation rules: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, d: dict) -> DistillRules:
        """Rules from a config section; unknown keys are refused by name."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"unknown distillation rule(s) {unknown}; allowed: {sorted(names)}"
            )
        kw = dict(d)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)

    def with_overrides(self, **kw) -> DistillRules:
        return DistillRules.from_dict({**asdict(self), **kw})
