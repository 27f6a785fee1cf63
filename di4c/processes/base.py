"""Common interface of dimension-wise independent forward processes (paper Sec. 2).

q_{t|s}(x_t | x_s) = prod_d q^d_{t|s}(x_t^d | x_s^d), the same kernel on every
dimension. Times are per-sample tensors of shape (B,). Probabilities over the
state axis are returned with shape (B, D, num_states).

:class:`MatrixProcess` covers every process given by a time-homogeneous base
rate matrix R and an integrated schedule beta_bar(t): P_{t|s} = exp((beta_bar(t)
- beta_bar(s)) R), indexed ``P[x_s, x_t]`` (docs/algorithm.md#gaussian-rate-process).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor


def check_time(name: str, t: Tensor, batch: int | None = None) -> None:
    """Raise ValueError naming ``name`` unless t has shape (B,) with values in [0, 1]."""
    if not torch.is_tensor(t) or t.dim() != 1:
        shape = tuple(t.shape) if torch.is_tensor(t) else type(t).__name__
        raise ValueError(
            f"{name} must be a 1-D tensor of per-sample times; got {shape}"
        )
    if batch is not None and t.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},); got {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"{name} must lie in [0, 1]; got min {t.min()}, max {t.max()}")


def check_states(name: str, x: Tensor, num_states: int) -> None:
    """Raise ValueError naming ``name`` unless x is an integer (B, D) tensor in range."""
    if x.dim() != 2 or x.dtype.is_floating_point:
        raise ValueError(
            f"{name} must be an integer tensor of shape (B, D); got {x.dtype} {tuple(x.shape)}"
        )
    if x.numel() and (x.min() < 0 or x.max() >= num_states):
        raise ValueError(
            f"{name} holds states outside [0, {num_states}); got min {x.min()}, max {x.max()}"
        )


class ForwardProcess(ABC):
    """A discrete forward (noising) process applied independently to each dimension."""

    num_classes: int  # S: values a clean x0^d can take
    num_states: int  # values a noisy x_t^d can take (S, or S + 1 with a mask)
    dtype: torch.dtype = torch.float32

    @abstractmethod
    def forward_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        """q_t(x_t^d = . | x0^d), shape (B, D, num_states)."""

    def sample_forward(self, x0: Tensor, t: Tensor, generator=None) -> Tensor:
        """Draw x_t ~ q_t(. | x0) independently per dimension."""
        u = torch.rand(x0.shape, generator=generator, device=x0.device)
        return self.sample_forward_u(x0, t, u)

    def sample_forward_u(self, x0: Tensor, t: Tensor, u: Tensor) -> Tensor:
        """x_t ~ q_t(. | x0) from given uniforms ``u`` (B, D), one per dimension."""
        return inverse_cdf(self.forward_probs(x0, t), u[..., None])

    @abstractmethod
    def prior_probs(self) -> Tensor:
        """Per-dimension prior at t = 1, shape (num_states,)."""

    def sample_prior(self, batch: int, dim: int, generator=None) -> Tensor:
        """Draw x_1 from the product prior, shape (batch, dim)."""
        p = self.prior_probs().expand(batch, dim, -1)
        u = torch.rand(batch, dim, 1, generator=generator)
        return inverse_cdf(p, u)

    @abstractmethod
    def posterior_given_x0(
        self, x_t: Tensor, x0: Tensor, t: Tensor, s: Tensor
    ) -> Tensor:
        """q(x_s^d | x_t^d, x0^d) for s < t, shape (B, D, num_states)."""

    @abstractmethod
    def posterior_probs(self, x_t: Tensor, p0: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """Per-dimension one-step law sum_v p0^d(v) q(x_s^d | x_t^d, x0^d = v).

        ``p0`` holds probabilities of an x0-prediction, shape (B, D, S) (or S + 1
        for networks that also score the mask class). This is the analytical
        denoising step of every sampler in the paper (docs/algorithm.md#analytical-sampler,
        docs/algorithm.md#mdlm-ancestral-sampler).
        """

    def check_step(self, x_t: Tensor, t: Tensor, s: Tensor) -> None:
        check_states("x_t", x_t, self.num_states)
        check_time("t", t, x_t.shape[0])
        check_time("s", s, x_t.shape[0])
        if (s > t).any():
            raise ValueError(
                "s must not exceed t (a reverse step goes from t down to s)"
            )


def inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """Sample categorical indices from ``probs`` (..., S) with uniforms ``u`` (..., 1).

    Exact in distribution; cumulative sums run in float64 so that tiny
    probabilities are not lost at large S.
    """
    cdf = probs.double().cumsum(-1)
    cdf = cdf / cdf[..., -1:]
    idx = torch.searchsorted(cdf, u.double().clamp(max=1 - 1e-16), right=True)
    return idx.squeeze(-1).clamp_(max=probs.shape[-1] - 1)


class MatrixProcess(ForwardProcess):
    """Process given by a reversible base rate matrix R and a schedule beta_bar(t).

    Subclasses set ``base_rate`` (numpy, float64, rows sum to 0) and
    ``stationary`` (the distribution R is reversible with respect to) and
    implement :meth:`integrated_rate`. Matrix exponentials use the symmetrised
    eigendecomposition in float64, then are cast to ``dtype``; entries below
    ``clamp_below`` are set to zero as the authors' code does (1e-8 at float32).
    """

    base_rate: np.ndarray
    stationary: np.ndarray

    def __init__(self, dtype: torch.dtype = torch.float32, clamp_below: float = 1e-8):
        self.dtype = dtype
        self.clamp_below = clamp_below
        self.num_classes = self.num_states = self.base_rate.shape[0]
        pi = self.stationary
        flux = pi[:, None] * self.base_rate
        if not np.allclose(flux, flux.T, rtol=1e-10, atol=1e-14 * np.abs(flux).max()):
            raise ValueError(
                "base rate matrix is not reversible w.r.t. its stationary law"
            )
        sq = np.sqrt(pi)
        sym = sq[:, None] * self.base_rate / sq[None, :]
        evals, evecs = np.linalg.eigh((sym + sym.T) / 2)
        self._evals = torch.from_numpy(evals)
        self._left = torch.from_numpy(evecs / sq[:, None])  # Pi^{-1/2} U
        self._right = torch.from_numpy(evecs.T * sq[None, :])  # U^T Pi^{1/2}

    @abstractmethod
    def integrated_rate(self, t: Tensor) -> Tensor:
        """beta_bar(t) = int_0^t beta(r) dr, elementwise, float64."""

    def transition(self, t: Tensor, s: Tensor | None = None) -> Tensor:
        """P[x_s, x_t] = q(x_t | x_s) over [s, t] (s = 0 if None), shape (B, S, S)."""
        check_time("t", t)
        c = self.integrated_rate(t.double())
        if s is not None:
            check_time("s", s, t.shape[0])
            c = c - self.integrated_rate(s.double())
        mats = (
            self._left[None] * torch.exp(c[:, None, None] * self._evals[None, None, :])
        ) @ self._right
        mats = mats.to(self.dtype)
        if self.clamp_below > 0:
            mats = torch.where(mats < self.clamp_below, torch.zeros_like(mats), mats)
        return mats.to(t.device)

    def forward_probs(self, x0: Tensor, t: Tensor) -> Tensor:
        check_states("x0", x0, self.num_classes)
        check_time("t", t, x0.shape[0])
        P = self.transition(t)  # (B, S, S)
        return torch.gather(P, 1, x0[:, :, None].expand(-1, -1, P.shape[-1]))

    def prior_probs(self) -> Tensor:
        return torch.from_numpy(self.stationary).to(self.dtype)

    def _rows_at(self, M: Tensor, x_t: Tensor) -> Tensor:
        """M[b, :, x_t[b, d]] as (B, D, S): the column of M selected by each x_t^d."""
        return torch.gather(M, 2, x_t[:, None, :].expand(-1, M.shape[1], -1)).transpose(
            1, 2
        )

    def posterior_given_x0(self, x_t, x0, t, s, eps: float = 0.0):
        """q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0).

        With ``eps > 0`` it reproduces the authors' regularised formula (1e-9
        added to every matrix and to the result before normalising,
        ``DistilChain.calc_pst``).
        """
        self.check_step(x_t, t, s)
        Pts = self.transition(t, s) + eps
        Ps = self.transition(s) + eps
        lik = self._rows_at(Pts, x_t)  # q(x_t | x_s = .) (B, D, S)
        prior = torch.gather(Ps, 1, x0[:, :, None].expand(-1, -1, Ps.shape[-1]))
        post = lik * prior + eps
        return post / post.sum(-1, keepdim=True)

    def posterior_probs(self, x_t, p0, t, s):
        self.check_step(x_t, t, s)
        p0 = p0[..., : self.num_classes].to(self.dtype)
        Pt = self.transition(t)
        Pts = self.transition(t, s)
        Ps = self.transition(s)
        qt0 = self._rows_at(Pt, x_t)  # q(x_t | x0 = .) (B, D, S)
        ratio = torch.where(qt0 > 0, p0 / qt0.clamp_min(1e-300), torch.zeros_like(p0))
        out = (ratio @ Ps) * self._rows_at(Pts, x_t)
        return out / out.sum(-1, keepdim=True)
