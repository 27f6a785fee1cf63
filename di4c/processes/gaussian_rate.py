"""tauLDR Gaussian-target rate process (paper Sec. 5.1; docs/algorithm.md#gaussian-rate-process).

Rate R(t) = beta(t) R_base with beta(t) = time_base * ln(time_exponential) *
time_exponential**t, so beta_bar(t) = time_base * (time_exponential**t - 1).
R_base is built by the authors' two-pass loop: an outward window of Gaussian
weights exp(-k^2 / rate_sigma^2), then detailed balance with respect to a
discretised Gaussian of std Q_sigma centred near S/2, filled in loop order
(entries written earlier feed later ones; docs/implementation-notes.md#rate-matrix-loop-order),
diagonal set to minus the row sums.
"""

from __future__ import annotations

import numpy as np
import torch

from di4c.processes.base import MatrixProcess


def gaussian_target_rate_matrix(
    S: int, rate_sigma: float = 6.0, Q_sigma: float = 512.0
) -> np.ndarray:
    """The tauLDR base rate matrix, float64, replicating the authors' loop order."""
    if not isinstance(S, int) or S < 2:
        raise ValueError(f"S must be an integer >= 2; got {S!r}")
    if rate_sigma <= 0 or Q_sigma <= 0:
        raise ValueError(
            f"rate_sigma and Q_sigma must be > 0; got {rate_sigma}, {Q_sigma}"
        )
    vals = np.exp(-(np.arange(S, dtype=np.float64) ** 2) / rate_sigma**2)
    R = np.zeros((S, S))
    half = S // 2
    for i in range(S):
        for j in range(S):
            if i < half and i < j < S - i:
                R[i, j] = vals[j - i - 1]
            elif i > half and S - 1 - i < j < i:
                R[i, j] = vals[i - j - 1]
    for i in range(S):
        for j in range(S):
            if R[j, i] > 0.0:
                expo = (j + 1) ** 2 - (i + 1) ** 2 + S * (i + 1) - S * (j + 1)
                R[i, j] = R[j, i] * np.exp(-expo / (2 * Q_sigma**2))
    R = R - np.diag(np.diag(R))
    return R - np.diag(R.sum(axis=1))


def gaussian_target(S: int, Q_sigma: float = 512.0) -> np.ndarray:
    """Discretised Gaussian over levels k = 1..S, weight exp(-(k - S/2)^2 / (2 Q^2))."""
    k = np.arange(1, S + 1, dtype=np.float64)
    logw = -((k - S / 2) ** 2) / (2 * Q_sigma**2)
    w = np.exp(logw - logw.max())
    return w / w.sum()


class GaussianRateProcess(MatrixProcess):
    """The CIFAR-10 tauLDR forward process for any number of levels S.

    Paper config: S = 256, rate_sigma = 6, Q_sigma = 512, time_base = 3,
    time_exponential = 100. The prior is the Gaussian target (also R's
    stationary law).

    ``device``: where transition matrices and the prior are returned. On the
    CPU (default) this is the plain float64 eigendecomposition of
    :class:`MatrixProcess`. On an accelerator the eigenvectors and eigenvalues
    are moved there once and the per-row products run there, still in
    float64: at S = 256 a 128-row transition costs about 4 GFLOP, several
    times per distillation step and per sampling step, which would otherwise
    keep the accelerator waiting on the CPU.
    """

    def __init__(
        self,
        S: int = 256,
        rate_sigma: float = 6.0,
        Q_sigma: float = 512.0,
        time_base: float = 3.0,
        time_exponential: float = 100.0,
        dtype: torch.dtype = torch.float32,
        clamp_below: float = 1e-8,
        device: str | torch.device = "cpu",
    ):
        if time_base <= 0 or time_exponential <= 1:
            raise ValueError(
                f"need time_base > 0 and time_exponential > 1; got {time_base}, {time_exponential}"
            )
        self.rate_sigma, self.Q_sigma = rate_sigma, Q_sigma
        self.time_base, self.time_exponential = time_base, time_exponential
        self.base_rate = gaussian_target_rate_matrix(S, rate_sigma, Q_sigma)
        self.stationary = gaussian_target(S, Q_sigma)
        super().__init__(dtype=dtype, clamp_below=clamp_below)
        self.device = torch.device(device)
        if self.device.type != "cpu":
            self._evals = self._evals.to(self.device)
            self._left = self._left.to(self.device)
            self._right = self._right.to(self.device)

    def transition(
        self, t: torch.Tensor, s: torch.Tensor | None = None
    ) -> torch.Tensor:
        """As :meth:`MatrixProcess.transition`, computed and returned on ``device``."""
        to = self.device
        return super().transition(t.to(to), None if s is None else s.to(to))

    def prior_probs(self) -> torch.Tensor:
        return super().prior_probs().to(self.device)

    def rate_scalar(self, t: torch.Tensor) -> torch.Tensor:
        """beta(t) = time_base * ln(time_exponential) * time_exponential**t."""
        return self.time_base * np.log(self.time_exponential) * self.time_exponential**t

    def integrated_rate(self, t: torch.Tensor) -> torch.Tensor:
        return self.time_base * (self.time_exponential**t - 1.0)
