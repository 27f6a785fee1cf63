"""The Di4C estimator and loss terms as pure functions of log-probabilities.

Paper Sec. 4 (losses L_distil, L_consis) and the authors' code (method.md §1):
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
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_logp(logp: Tensor) -> None:
    if logp.dim() != 4:
        raise ValueError(f"logp must have shape (B, K, D, S); got {tuple(logp.shape)}")


def log_marginals(logp: Tensor) -> Tensor:
    """log m^d(v) = logsumexp_k logp[:, k, d, v] - log K, shape (B, D, S) (pitfall 2)."""
    _check_logp(logp)
    return torch.logsumexp(logp, dim=1) - math.log(logp.shape[1])


def component_loglik(logp: Tensor, x: Tensor) -> Tensor:
    """Per-dimension log-likelihoods logp[b, k, d, x[b, m, d]], shape (B, K, M, D).

    ``x`` holds M target points per conditioning state, shape (B, M, D); each
    point is scored by *all* K components (pitfall 3).
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
    """C(x) of method.md §1.1, shape (B, M)."""
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
    logp_t: Tensor, target_probs: Tensor, y: Tensor, use_cv: bool = True
) -> Tensor:
    """L_consis for each conditioning state, shape (B,) (paper Sec. 4, method.md §1.2).

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
    cor = correlation_term(logp_t, y, use_cv).mean(1)
    if not use_cv:
        return cor
    return marginal_term(target_probs.mean(1), log_marginals(logp_t)) + cor


def distillation_loss(teacher_logp: Tensor, student_logp: Tensor) -> Tensor:
    """(1/K) sum_k sum_d KL(teacher^d || student_k^d), shape (B,) (pitfall 4).

    ``teacher_logp`` is (B, D, S) (one teacher pass, broadcast over the K
    components) or (B, K, D, S); ``student_logp`` is (B, K, D, S).
    """
    _check_logp(student_logp)
    t = teacher_logp.detach()
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
) -> Tensor:
    """Data ("datapoint") term alpha(t) C(x0) + sum_d KL(teacher^d || m^d), shape (B,).

    ``x0`` is the real clean datum behind x_t, shape (B, D); ``alpha`` (B,). With
    the cv off the marginal part is dropped, as in the authors' code.
    """
    cor = correlation_term(logp_t, x0[:, None, :], use_cv)[:, 0]
    out = alpha * cor
    if use_cv:
        t = teacher_logp_t.detach()
        out = out + kl_per_dim_sum(t.exp(), t, log_marginals(logp_t))
    return out


def alpha_sigmoid(t: Tensor, const: float = 1.0) -> Tensor:
    """alpha(t) = const * sigmoid(20 (t - 1/2)) (method.md §6; pitfall 6)."""
    return const * torch.sigmoid(20 * (t - 0.5))
