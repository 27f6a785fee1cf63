"""One evaluation of the Di4C objective on a batch of clean data.

See docs/algorithm.md#loss-terms, docs/algorithm.md#training-inputs and
docs/algorithm.md#time-sampling-and-regions.

Wires a teacher and a student denoiser, a forward process and the setting's
:class:`~di4c.settings.rules.DistillRules` into the pure loss functions of
:mod:`di4c.loss`:

1. draw times (setting rule) and x_t ~ q_t(. | x0) from *real* data;
2. teacher marginals at x_t (K-averaged for a mixture teacher, i.e. di4c^2);
3. student at x_t with K fresh lambdas -> (B, K, D, S), the only branch with grad;
4. data term alpha(t) C(x0) + KL(teacher || m);
5. distillation: per-component KL at a separate small time (CIFAR) or at x_t in
   the distillation region (MaskGIT x20, SDTT x1);
6. consistency: K independent teacher one-steps t -> u, the student at each x_u
   with its own lambda under stop-grad (train or eval mode per setting), one
   sample y_i per copy, then M(P) + mean_i C(y_i).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from di4c.loss import (
    ALPHA_SCHEDULES,
    consistency_loss,
    data_loss,
    distillation_loss,
    log_marginals,
)
from di4c.processes.base import ForwardProcess
from di4c.samplers.noise import as_rng, categorical
from di4c.samplers.steps import analytical_step, maskgit_step, posterior_step
from di4c.settings.rules import TIME_SAMPLERS, DistillRules, TimeDraw
from di4c.train import TrainConfig


def _analytical(process, x_t, logp, times: TimeDraw, rng, eps: float = 1e-9):
    return analytical_step(
        process, x_t, logp.exp(), times.t_mask, times.u_mask, rng, eps=eps
    )


def _ancestral(process, x_t, logp, times: TimeDraw, rng):
    return posterior_step(process, x_t, logp.exp(), times.t_mask, times.u_mask, rng)


def _maskgit(
    process,
    x_t,
    logp,
    times: TimeDraw,
    rng,
    r_delta=0.05,
    teacher_steps=8,
    r_temp=4.5,
    sm_temp=1.0,
):
    """MaskGIT one-step of an N-step teacher at progress r (authors' ``MaskGIT.one_step_denoise``).

    See docs/algorithm.md#imagenet-times.
    """
    r = 1 - times.t
    gamma_next = torch.arccos((r + r_delta).clamp(max=1)) / (math.pi / 2)
    D = x_t.shape[1]
    masked = (x_t == process.mask_id).sum(1)
    k = ((1 - gamma_next) * D - (D - masked)).long().clamp(min=0)
    k = torch.minimum(k, masked)
    anneal = 1 - r * teacher_steps / (teacher_steps - 1)
    return maskgit_step(logp, x_t, k, process.mask_id, rng, anneal, sm_temp, r_temp)


TEACHER_AT_T = "the teacher's log-probabilities at x_t"

TEACHER_STEPS = {
    "analytical": _analytical,
    "ancestral": _ancestral,
    "maskgit": _maskgit,
}


@dataclass
class LossParts:
    total: Tensor
    distil: float
    data: float
    consis: float
    consis_active: float  # mean consistency over the samples where it is on
    frac_distil_region: float


def _rep(x: Tensor | None, k: int) -> Tensor | None:
    return None if x is None else x.repeat_interleave(k, 0)


@contextlib.contextmanager
def _mode(module, train: bool):
    """Temporarily set train/eval mode of a module-like denoiser."""
    if not hasattr(module, "training"):
        yield
        return
    was = module.training
    module.train(train)
    try:
        yield
    finally:
        module.train(was)


def _finite(logp: Tensor, what: str) -> Tensor:
    """``logp`` unchanged; refused if any entry is NaN or +inf (-inf is a zero
    probability), so a broken teacher stops the step before its gradient exists."""
    if not bool(logp.amax() < math.inf):  # amax is NaN if any entry is (no big mask)
        bad = int((~(logp < math.inf)).sum())
        raise FloatingPointError(
            f"{what} hold {bad} NaN/+inf entries of {logp.numel()}"
        )
    return logp


def teacher_logp_at(
    teacher, x: Tensor, t: Tensor, K: int, rng, cond=None
) -> tuple[Tensor, Tensor]:
    """Teacher log-probs at x for each of K copies (B, K, D, S) and their marginals (B, D, S).

    A product teacher is evaluated once and broadcast; a mixture teacher (the
    round-1 student of di4c^2, docs/algorithm.md#iterated-distillation-di4c2) gets K rows with fresh lambdas
    (``rng`` covers the B * K rows).
    """
    B = x.shape[0]
    with torch.no_grad():
        if getattr(teacher, "is_mixture", False):
            out = teacher(_rep(x, K), _rep(t, K), rng.rand(B * K), _rep(cond, K))
            per_copy = _finite(out.view(B, K, *out.shape[1:]), TEACHER_AT_T)
            return per_copy, log_marginals(per_copy)
        marg = _finite(teacher(x, t, None, cond), TEACHER_AT_T)
        return marg[:, None].expand(B, K, *marg.shape[1:]), marg


def di4c_loss(
    student,
    teacher,
    process: ForwardProcess,
    x0: Tensor,
    rules: DistillRules,
    generator: torch.Generator | None = None,
    cond: Tensor | None = None,
    rng=None,
) -> LossParts:
    """The Di4C objective averaged over the batch ``x0`` (B, D); gradients reach only the student at t.

    Randomness comes from ``rng`` when given (e.g. a per-example
    :class:`~di4c.samplers.noise.ExampleRNG`, which makes the result independent
    of how a batch is split over processes), else from ``generator``.
    """
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape (B, D); got {tuple(x0.shape)}")
    B, D = x0.shape
    K = rules.K
    if K < 1:
        raise ValueError(f"K must be >= 1; got {K}")
    rng = as_rng(rng if rng is not None else generator)
    rng_k = rng.repeat(K)
    dev = x0.device
    times = TIME_SAMPLERS[rules.time_sampler](B, rng, **rules.time_kwargs)
    times = TimeDraw(*(v.to(dev) for v in vars(times).values()))
    x_t = process.sample_forward_u(x0, times.t_mask, rng.rand(B, D).to(dev))

    teacher_rep, teacher_marg = teacher_logp_at(teacher, x_t, times.t, K, rng_k, cond)
    logp = student(
        _rep(x_t, K), _rep(times.t, K), rng_k.rand(B * K).to(dev), _rep(cond, K)
    )
    logp = logp.view(B, K, *logp.shape[1:])

    alpha = ALPHA_SCHEDULES[rules.alpha_schedule](times.t, rules.alpha_const)
    chunk = rules.loss_dim_chunk
    data = data_loss(logp, x0, teacher_marg, alpha, rules.use_cv, dim_chunk=chunk)

    zeros = torch.zeros(B, device=dev)
    if rules.distil_mode == "separate":
        u = rng_k.rand(B * K).to(dev)
        coin = (rng_k.rand(B * K) < 0.5).to(dev)
        delta = rules.distil_min_time + coin * u * rules.distil_max_time
        x_d = process.sample_forward_u(_rep(x0, K), delta, rng_k.rand(B * K, D).to(dev))
        with torch.no_grad():
            lam_t = (
                rng_k.rand(B * K).to(dev)
                if getattr(teacher, "is_mixture", False)
                else None
            )
            t_d = _finite(
                teacher(x_d, delta, lam_t, _rep(cond, K)),
                "the teacher's log-probabilities at the distillation time",
            )
        s_d = student(x_d, delta, rng_k.rand(B * K).to(dev), _rep(cond, K))
        distil = distillation_loss(
            t_d.view(B, K, *t_d.shape[1:]),
            s_d.view(B, K, *s_d.shape[1:]),
            dim_chunk=chunk,
        )
        distil_on = torch.ones(B, dtype=torch.bool, device=dev)
        consis_on = distil_on
    elif rules.distil_mode == "region":
        distil_on = times.distil
        consis_on = ~distil_on
        distil = (
            distillation_loss(teacher_marg, logp, dim_chunk=chunk)
            if distil_on.any()
            else zeros
        )
    else:
        raise ValueError(
            f"unknown distil_mode {rules.distil_mode!r}; allowed: ['region', 'separate']"
        )

    consis = zeros.clone()
    consis_active = 0.0
    idx = consis_on.nonzero().squeeze(1)
    if idx.numel():
        b = idx.numel()
        sub_rng = rng.subset(idx.cpu()).repeat(K)
        sub_times = TimeDraw(*(v[idx] for v in vars(times).values())).repeat(K)
        x_t_rep = _rep(x_t[idx], K)
        t_logp = teacher_rep[idx].reshape(b * K, *teacher_rep.shape[2:])
        sub_cond = _rep(cond[idx], K) if cond is not None else None
        step = TEACHER_STEPS[rules.teacher_step]
        with torch.no_grad():
            x_u = step(
                process,
                x_t_rep,
                t_logp,
                sub_times,
                sub_rng,
                **rules.teacher_step_kwargs,
            )
            with _mode(student, rules.target_train_mode):
                target = student(
                    x_u, sub_times.u, sub_rng.rand(b * K).to(dev), sub_cond
                )
            pi = target.exp().view(b, K, *target.shape[1:])
            y = categorical(pi.reshape(b * K, *pi.shape[2:]), sub_rng).view(b, K, -1)
        logp_c = logp if b == B else logp[idx]  # no copy when every row is in
        c = consistency_loss(logp_c, pi, y, rules.use_cv, dim_chunk=chunk)
        consis = consis.index_put((idx,), c)
        consis_active = float(c.mean().detach())

    total = (
        rules.distil_weight * distil * distil_on + data + consis * consis_on
    ).mean()
    return LossParts(
        total=total,
        distil=float((distil * distil_on).mean().detach()),
        data=float(data.mean().detach()),
        consis=float(consis.mean().detach()),
        consis_active=consis_active,
        frac_distil_region=float(distil_on.float().mean()),
    )


def train_config(rules: DistillRules) -> TrainConfig:
    """The training loop's config for a distillation run under ``rules`` (optimiser,
    warm-up, clipping, EMA, batch, seed, length and logging from the rules)."""
    return TrainConfig.from_run(
        rules, batch_size=rules.batch_x, betas=tuple(rules.betas)
    )
