"""Uniform-rate process: every state jumps to every other at rate ``rate_const``.

R_base = rate_const (11^T - S I), beta_bar(t) = t, so
q_t(x_t | x0) = e^{-S c t} 1[x_t = x0] + (1 - e^{-S c t}) / S. Stationary law and
prior: uniform (the tauLDR ``UniformRate`` process).
"""

from __future__ import annotations

import numpy as np
import torch

from di4c.processes.base import MatrixProcess


class UniformProcess(MatrixProcess):
    def __init__(
        self,
        S: int,
        rate_const: float = 1.0,
        dtype: torch.dtype = torch.float32,
        clamp_below: float = 0.0,
    ):
        if not isinstance(S, int) or S < 2:
            raise ValueError(f"S must be an integer >= 2; got {S!r}")
        if rate_const <= 0:
            raise ValueError(f"rate_const must be > 0; got {rate_const}")
        self.rate_const = rate_const
        R = rate_const * np.ones((S, S))
        np.fill_diagonal(R, 0.0)
        self.base_rate = R - np.diag(R.sum(axis=1))
        self.stationary = np.full(S, 1.0 / S)
        super().__init__(dtype=dtype, clamp_below=clamp_below)

    def integrated_rate(self, t: torch.Tensor) -> torch.Tensor:
        return t
