"""Exact enumeration on small state spaces S^D (paper Sec. 3, Theorem 1).

- :func:`enumerate_states`: all states of n values in D dimensions, lexicographic
  (dimension 0 most significant), shape (n^D, D).
- :class:`ExactPosterior`: the exact product teacher, i.e. the per-dimension
  marginals q(x0^d | x_t) of the true posterior, as a suite denoiser.
- :func:`sampler_distribution`: the exact law of an N-step sampler whose steps
  are products of per-dimension one-step laws (sum_v p0^d(v) q(x_s^d | x_t^d, v)),
  averaging over lambda with a deterministic quadrature for mixture students.
- :func:`total_variation`.

Everything runs in float64 and enumerates; nothing here is Monte Carlo.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from di4c.processes.base import ForwardProcess


def enumerate_states(n: int, D: int) -> Tensor:
    """All n^D states in lexicographic order, shape (n^D, D)."""
    if n < 1 or D < 1:
        raise ValueError(f"need n >= 1 and D >= 1; got n={n}, D={D}")
    return torch.tensor(list(itertools.product(range(n), repeat=D)), dtype=torch.long)


def state_index(x: Tensor, n: int) -> Tensor:
    """Lexicographic index of states x (B, D) over n values per dimension."""
    D = x.shape[-1]
    weights = n ** torch.arange(D - 1, -1, -1, dtype=torch.long)
    return (x * weights).sum(-1)


def total_variation(p: Tensor, q: Tensor) -> float:
    """TV(p, q) = 1/2 sum |p - q| over a common enumeration."""
    if p.shape != q.shape:
        raise ValueError(
            f"distributions must share a support; got {tuple(p.shape)} vs {tuple(q.shape)}"
        )
    return 0.5 * float((p.double() - q.double()).abs().sum())


def embed(p_clean: Tensor, num_classes: int, num_states: int, D: int) -> Tensor:
    """Embed a law over S^D into the (S or S+1)^D enumeration of x_t states."""
    if num_states == num_classes:
        return p_clean.double()
    out = torch.zeros(num_states**D, dtype=torch.float64)
    out[state_index(enumerate_states(num_classes, D), num_states)] = p_clean.double()
    return out


class ExactPosterior:
    """Exact product teacher: log q(x0^d = v | x_t) for a data law on S^D.

    q(x0 | x_t) is proportional to p_data(x0) prod_d q_t(x_t^d | x0^d); its
    per-dimension marginals are returned, shape (B, D, S). Ignores lambda.
    """

    is_mixture = False

    def __init__(self, process: ForwardProcess, data_probs: Tensor, D: int):
        S = process.num_classes
        if data_probs.shape != (S**D,):
            raise ValueError(
                f"data_probs must have shape ({S**D},) for S={S}, D={D}; got {tuple(data_probs.shape)}"
            )
        if (data_probs < 0).any() or abs(float(data_probs.sum()) - 1) > 1e-9:
            raise ValueError("data_probs must be a probability vector")
        self.process, self.D, self.num_classes = process, D, S
        self.x0_states = enumerate_states(S, D)
        self.log_data = torch.log(data_probs.double())

    def posterior(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Full posterior q(x0 | x_t) over the S^D enumeration, shape (B, S^D)."""
        B, D = x_t.shape
        S = self.num_classes
        kernel = self.process.forward_probs(
            torch.arange(S).expand(B, S), t
        ).double()  # (B, S, ns)
        at_xt = torch.gather(
            kernel, 2, x_t[:, None, :].expand(B, S, D)
        )  # q(x_t^d | v) (B, S, D)
        log_k = torch.log(at_xt)
        ll = log_k[:, self.x0_states, torch.arange(D)].sum(-1)  # (B, S^D)
        return torch.softmax(self.log_data + ll, dim=-1)

    def __call__(self, x_t, t, lam=None, cond=None):
        post = self.posterior(x_t, t)
        onehot = torch.nn.functional.one_hot(
            self.x0_states, self.num_classes
        ).double()  # (M, D, S)
        marg = torch.einsum("bm,mds->bds", post, onehot)
        return torch.log(marg.clamp_min(1e-300))


def midpoint_nodes(L: int) -> Tensor:
    """Midpoint rule on [0, 1]: lambda_l = (l + 1/2) / L, equal weights."""
    return (torch.arange(L, dtype=torch.float64) + 0.5) / L


def step_matrix(
    process: ForwardProcess,
    denoiser,
    t: float,
    s: float,
    D: int,
    lam_nodes: Tensor | None,
    rows: Tensor,
) -> Tensor:
    """Transition matrix T[x_t, x_s] of one product (or mixture-of-product) step, rows ``rows``.

    For a mixture denoiser, T = mean_l prod_d p^d(x_s^d | x_t; lambda_l).
    """
    ns = process.num_states
    states = enumerate_states(ns, D)[rows]
    M = states.shape[0]
    L = 1 if lam_nodes is None else lam_nodes.numel()
    x = states.repeat_interleave(L, 0)
    lam = None if lam_nodes is None else lam_nodes.repeat(M).to(torch.float32)
    tt = torch.full((M * L,), t, dtype=torch.float64)
    ss = torch.full((M * L,), s, dtype=torch.float64)
    with torch.no_grad():
        logp = denoiser(x, tt.float(), lam, None).double()
    law = process.posterior_probs(
        x, logp.exp(), tt.to(process.dtype), ss.to(process.dtype)
    ).double()
    joint = law[:, 0]
    for d in range(1, D):
        joint = (joint[:, :, None] * law[:, d, None, :]).reshape(M * L, -1)
    return joint.view(M, L, -1).mean(1)


def sampler_distribution(
    process: ForwardProcess,
    denoiser,
    num_steps: int,
    D: int,
    start: Tensor,
    lam_nodes: Tensor | None = None,
    t_max: float = 1.0,
    t_end: float = 0.0,
) -> Tensor:
    """Exact law over the x_t enumeration after ``num_steps`` steps on linspace(t_max, t_end, N + 1)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1; got {num_steps}")
    ts = torch.linspace(t_max, t_end, num_steps + 1, dtype=torch.float64).tolist()
    dist = start.double().clone()
    for i in range(num_steps):
        rows = (dist > 0).nonzero().squeeze(1)
        T = step_matrix(process, denoiser, ts[i], ts[i + 1], D, lam_nodes, rows)
        dist = dist[rows] @ T
    return dist


def forward_marginal(
    process: ForwardProcess, data_probs: Tensor, D: int, t: float
) -> Tensor:
    """Exact law of x_t: sum_x0 p_data(x0) prod_d q_t(x_t^d | x0^d), over the x_t enumeration."""
    S = process.num_classes
    kernel = process.forward_probs(
        torch.arange(S)[None], torch.tensor([t], dtype=process.dtype)
    )[0].double()
    x0s = enumerate_states(S, D)
    law = kernel[x0s[:, 0]]
    for d in range(1, D):
        law = (law[:, :, None] * kernel[x0s[:, d]][:, None, :]).reshape(
            x0s.shape[0], -1
        )
    return data_probs.double() @ law
