"""The Di4C estimator and loss terms as pure functions of log-probabilities.

The paper's losses L_distil and L_consis as the authors' code computes them
(docs/algorithm.md#estimator; authors' ``tauldr/lib/losses/losses.py``,
``maskgit-pytorch/Trainer/vit.py``, ``sdtt/src/sdtt/core/distill/multi_round_sdtt.py``):
for one conditioning state x_t, a mixture student is evaluated with K lambda
samples, giving per-dimension log-probs ``logp`` of shape (B, K, D, S).

- mixture estimate   log q_hat(x) = logsumexp_k sum_d logp[k, d, x^d] - log K
- lambda-averaged marginals  m^d = mean_k softmax_k^d, log m = logsumexp_k - log K
- product of marginals       log q_bar(x) = sum_d log m^d(x^d)
- correlation term   C(x) = -(log q_hat(x) - log q_bar(x))   (control variate on)
                     C(x) = -log q_hat(x)                     (control variate off)
- marginal term      M(P) = sum_d KL(P^d || m^d)               (0 with the cv off)

The control-variate coefficient is fixed at 1 (as in all three released code
bases). Every KL is forward, KL(target || student). Targets are detached by the
callers; nothing here samples.

Memory (``dim_chunk``): at the OpenWebText shape one K-copy of log-probs is
K x D x S = 16 x 1024 x 50258 floats (3.3 GB fp32) and the plain expressions
below create several temporaries of that size. With ``dim_chunk=c`` the loss
functions run through :class:`ChunkedTerms`, which walks the D axis c
dimensions at a time in the forward and the backward pass and writes the
gradient into one preallocated tensor: the extra memory is about one K-copy
(the gradient) plus O(K c S). Values equal the plain path up to the order of
float summation (``dim_chunk=None``, the default, is the plain path).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_logp(logp: Tensor) -> None:
    if logp.dim() != 4:
        raise ValueError(f"logp must have shape (B, K, D, S); got {tuple(logp.shape)}")


def log_marginals(logp: Tensor) -> Tensor:
    """log m^d(v) = logsumexp_k logp[:, k, d, v] - log K, shape (B, D, S).

    Marginals average probabilities, not logits
    (docs/implementation-notes.md#marginals-average-probabilities).
    """
    _check_logp(logp)
    return torch.logsumexp(logp, dim=1) - math.log(logp.shape[1])


def component_loglik(logp: Tensor, x: Tensor) -> Tensor:
    """Per-dimension log-likelihoods logp[b, k, d, x[b, m, d]], shape (B, K, M, D).

    ``x`` holds M target points per conditioning state, shape (B, M, D); each
    point is scored by *all* K components
    (docs/implementation-notes.md#shared-lambda-samples).
    """
    _check_logp(logp)
    B, K, D, S = logp.shape
    if x.dim() != 3 or x.shape[0] != B or x.shape[2] != D:
        raise ValueError(f"x must have shape (B={B}, M, D={D}); got {tuple(x.shape)}")
    idx = x.transpose(1, 2)[:, None].expand(B, K, D, x.shape[1])
    return torch.gather(logp, 3, idx).transpose(2, 3)


def log_mixture_likelihood(logp: Tensor, x: Tensor) -> Tensor:
    """log q_hat(x) for each of the M points, shape (B, M)."""
    K = logp.shape[1]
    return torch.logsumexp(component_loglik(logp, x).sum(-1), dim=1) - math.log(K)


def log_product_of_marginals(log_m: Tensor, x: Tensor) -> Tensor:
    """log q_bar(x) = sum_d log m^d(x^d), shape (B, M)."""
    return torch.gather(log_m, 2, x.transpose(1, 2)).sum(1)


def correlation_term(logp: Tensor, x: Tensor, use_cv: bool = True) -> Tensor:
    """C(x) of the estimator (docs/algorithm.md#estimator), shape (B, M)."""
    log_q_hat = log_mixture_likelihood(logp, x)
    if not use_cv:
        return -log_q_hat
    return -(log_q_hat - log_product_of_marginals(log_marginals(logp), x))


def kl_per_dim_sum(p: Tensor, log_p: Tensor, log_q: Tensor) -> Tensor:
    """sum over all but the batch axis of p (log p - log q), with 0 log 0 = 0."""
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.flatten(1).sum(1)


def marginal_term(P: Tensor, log_m: Tensor) -> Tensor:
    """M(P) = sum_d KL(P^d || m^d), shape (B,). ``P`` is a detached target (B, D, S)."""
    return kl_per_dim_sum(P, torch.log(P.clamp_min(1e-45)), log_m)


def consistency_loss(
    logp_t: Tensor,
    target_probs: Tensor,
    y: Tensor,
    use_cv: bool = True,
    dim_chunk: int | None = None,
) -> Tensor:
    """L_consis for each conditioning state, shape (B,) (docs/algorithm.md#consistency-term).

    Args:
        logp_t: student log-probs at (x_t, t) for K lambdas, (B, K, D, S); gets gradients.
        target_probs: detached student x0-probs pi_i at the K teacher-stepped states
            (x_u^i, u, lambda'_i), (B, K, D, S).
        y: one detached sample y_i ~ prod_d pi_i^d per copy, (B, K, D).

    Returns M(P) + mean_i C(y_i) with P = mean_i pi_i (M = 0 with the cv off).
    Its expectation over y is KL(T || q_hat) - TC(T) (cv on) or CE(T, q_hat) (cv
    off), where T = mean_i prod_d pi_i^d; both differ from KL(T || q_hat) by a
    constant, so gradients are those of the KL.
    """
    target_probs = target_probs.detach()
    y = y.detach()
    if dim_chunk:
        P = target_probs.mean(1)[:, None]
        marg, cor, _ = chunked_terms(
            logp_t,
            (P, torch.log(P.clamp_min(1e-45))) if use_cv else None,
            y,
            None,
            use_cv,
            dim_chunk,
        )
        return cor.mean(1) + (marg[:, 0] if use_cv else 0)
    cor = correlation_term(logp_t, y, use_cv).mean(1)
    if not use_cv:
        return cor
    return marginal_term(target_probs.mean(1), log_marginals(logp_t)) + cor


def distillation_loss(
    teacher_logp: Tensor, student_logp: Tensor, dim_chunk: int | None = None
) -> Tensor:
    """(1/K) sum_k sum_d KL(teacher^d || student_k^d), shape (B,).

    Per-component distillation (docs/implementation-notes.md#per-component-distillation).

    ``teacher_logp`` is (B, D, S) (one teacher pass, broadcast over the K
    components) or (B, K, D, S); ``student_logp`` is (B, K, D, S).
    """
    _check_logp(student_logp)
    t = teacher_logp.detach()
    if dim_chunk:
        return chunked_terms(student_logp, None, None, t, True, dim_chunk)[2]
    if t.dim() == 3:
        t = t[:, None]
    t = t.expand_as(student_logp)
    return kl_per_dim_sum(t.exp(), t, student_logp) / student_logp.shape[1]


def data_loss(
    logp_t: Tensor,
    x0: Tensor,
    teacher_logp_t: Tensor,
    alpha: Tensor,
    use_cv: bool = True,
    dim_chunk: int | None = None,
) -> Tensor:
    """Data ("datapoint") term alpha(t) C(x0) + sum_d KL(teacher^d || m^d), shape (B,).

    ``x0`` is the real clean datum behind x_t, shape (B, D); ``alpha`` (B,). With
    the cv off the marginal part is dropped, as in the authors' code.
    """
    if dim_chunk:
        t = teacher_logp_t.detach()
        marg, cor, _ = chunked_terms(
            logp_t,
            (t.exp()[:, None], t[:, None]) if use_cv else None,
            x0[:, None, :],
            None,
            use_cv,
            dim_chunk,
        )
        return alpha * cor[:, 0] + (marg[:, 0] if use_cv else 0)
    cor = correlation_term(logp_t, x0[:, None, :], use_cv)[:, 0]
    out = alpha * cor
    if use_cv:
        t = teacher_logp_t.detach()
        out = out + kl_per_dim_sum(t.exp(), t, log_marginals(logp_t))
    return out


def alpha_sigmoid(t: Tensor, const: float = 1.0) -> Tensor:
    """alpha(t) = const * sigmoid(20 (t - 1/2)).

    Orientation and constants: docs/algorithm.md#data-term,
    docs/implementation-notes.md#alpha-orientation.
    """
    return const * torch.sigmoid(20 * (t - 0.5))


def alpha_constant(t: Tensor, const: float = 1.0) -> Tensor:
    """alpha(t) = const: the data-correlation term at every time."""
    return torch.full_like(t, const)


ALPHA_SCHEDULES = {"sigmoid": alpha_sigmoid, "constant": alpha_constant}


# ----------------------------------------------------------------------------------
# Chunked evaluation over the D axis (memory at the OpenWebText shape)
# ----------------------------------------------------------------------------------


class ChunkedTerms(torch.autograd.Function):
    """The three building blocks of every Di4C term, walked over D in chunks.

    Inputs: student log-probs ``logp`` (B, K, D, S) (the only input that gets a
    gradient); ``target`` = (P, log P), each (B, T, D, S), T marginal targets or
    None; ``points`` (B, M, D) long or None; ``teacher`` log-probs (B, D, S) or
    (B, K, D, S) or None. Outputs (B, T) marginal KLs sum_d KL(P_t^d || m^d),
    (B, M) correlation terms C(x_m) and (B,) per-component KLs
    (1/K) sum_k sum_d KL(teacher^d || p_k^d).

    Backward, per chunk, with w_k = softmax_k of logp (d log m / d logp_k) and
    r = softmax_k of the summed component log-likelihoods A_k(x_m):
    dL/dlogp_k^d(v) = w_k^d(v) [-sum_t g_t P_t^d(v) + cv sum_m g_m 1{v = x_m^d}]
    - sum_m g_m r_km 1{v = x_m^d} - g_distil teacher^d(v) / K.
    """

    @staticmethod
    def forward(ctx, logp, target_p, target_logp, points, teacher, use_cv, chunk):
        _check_logp(logp)
        B, K, D, S = logp.shape
        T = 0 if target_p is None else target_p.shape[1]
        M = 0 if points is None else points.shape[1]
        z = dict(dtype=logp.dtype, device=logp.device)
        marg, A = torch.zeros(B, T, **z), torch.zeros(B, K, M, **z)
        qbar, distil = torch.zeros(B, M, **z), torch.zeros(B, **z)
        log_k = math.log(K)
        for c0 in range(0, D, chunk):
            c1 = min(D, c0 + chunk)
            lp = logp[:, :, c0:c1]
            log_m = torch.logsumexp(lp, dim=1) - log_k
            if T:
                P, lP = target_p[:, :, c0:c1], target_logp[:, :, c0:c1]
                kl = torch.where(P > 0, P * (lP - log_m[:, None]), 0.0)
                marg += kl.flatten(2).sum(2)
            if M:
                x = points[:, :, c0:c1]
                A += component_loglik(lp, x).sum(-1)
                qbar += log_product_of_marginals(log_m, x)
            if teacher is not None:
                tt = teacher[..., c0:c1, :]
                tt = tt[:, None] if tt.dim() == 3 else tt
                kl = torch.where(tt.exp() > 0, tt.exp() * (tt - lp), 0.0)
                distil += kl.flatten(1).sum(1) / K
        log_q_hat = torch.logsumexp(A, dim=1) - log_k
        cor = -(log_q_hat - qbar) if use_cv else -log_q_hat
        ctx.save_for_backward(logp, target_p, points, teacher, A)
        ctx.use_cv, ctx.chunk = use_cv, chunk
        return marg, cor, distil

    @staticmethod
    def backward(ctx, g_marg, g_cor, g_distil):
        logp, target_p, points, teacher, A = ctx.saved_tensors
        B, K, D, S = logp.shape
        grad = torch.empty_like(logp)
        r = torch.softmax(A, dim=1)  # (B, K, M)
        M = A.shape[2]
        for c0 in range(0, D, ctx.chunk):
            c1 = min(D, c0 + ctx.chunk)
            lp = logp[:, :, c0:c1]
            w = torch.exp(lp - torch.logsumexp(lp, dim=1, keepdim=True))
            coef = torch.zeros(B, c1 - c0, S, dtype=logp.dtype, device=logp.device)
            if target_p is not None:
                coef -= torch.einsum("bt,btcs->bcs", g_marg, target_p[:, :, c0:c1])
            if M:
                idx = points[:, :, c0:c1].transpose(1, 2)  # (B, c, M)
                if ctx.use_cv:
                    coef.scatter_add_(
                        2, idx, g_cor[:, None, :].expand_as(idx).to(coef.dtype)
                    )
            g = w * coef[:, None]
            if M:
                src = (-g_cor[:, None, :] * r)[:, :, None, :]  # (B, K, 1, M)
                g.scatter_add_(
                    3,
                    idx[:, None].expand(B, K, -1, -1),
                    src.expand(B, K, c1 - c0, M).to(g.dtype),
                )
            if teacher is not None:
                tt = teacher[..., c0:c1, :]
                tt = tt[:, None] if tt.dim() == 3 else tt
                g -= (g_distil[:, None, None, None] / K) * tt.exp()
            grad[:, :, c0:c1] = g
        return grad, None, None, None, None, None, None


def chunked_terms(
    logp: Tensor,
    target: tuple[Tensor, Tensor] | None,
    points: Tensor | None,
    teacher: Tensor | None,
    use_cv: bool,
    chunk: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Marginal KLs (B, T), correlation terms (B, M), per-component KLs (B,) via :class:`ChunkedTerms`."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"dim_chunk must be a positive integer; got {chunk!r}")
    P, lP = (None, None) if target is None else (target[0].detach(), target[1].detach())
    return ChunkedTerms.apply(
        logp,
        P,
        lP,
        None if points is None else points.detach(),
        None if teacher is None else teacher.detach(),
        use_cv,
        chunk,
    )
