"""Small denoisers for the theory table and smoke runs (paper Sec. 4 student design, in miniature).

:class:`MLPDenoiser` maps (one-hot x_t, time features) to per-dimension logits
over S classes. With ``mixture=True`` it gains a lambda path: Fourier features
of lambda (and t) through an MLP whose zero-initialised output layer adds a
bias to the hidden state (the tauLDR ``dense1`` injection, docs/algorithm.md#lambda-in-the-tauldr-unet),
so a fresh student equals its product source for every lambda.

Lambda features use low frequencies (k pi lambda, k = 1..8) so that a midpoint
quadrature over lambda integrates the mixture essentially exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from di4c.denoiser import check_denoiser_inputs, draw_lambda


def fourier_features(v: Tensor, num: int) -> Tensor:
    """[v, sin(k pi v), cos(k pi v)] for k = 1..num, shape (B, 2 num + 1)."""
    k = torch.arange(1, num + 1, device=v.device, dtype=v.dtype) * math.pi
    ang = v[:, None] * k[None]
    return torch.cat([v[:, None], ang.sin(), ang.cos()], dim=-1)


class MLPDenoiser(nn.Module):
    """x0-prediction MLP on S^D (or (S+1)^D with a mask) for tiny D."""

    def __init__(
        self,
        D: int,
        num_states: int,
        num_classes: int,
        hidden: int = 128,
        depth: int = 3,
        mixture: bool = False,
        time_features: int = 8,
        lam_features: int = 8,
    ):
        super().__init__()
        if D < 1 or num_states < 2 or num_classes < 2:
            raise ValueError(
                f"need D >= 1, num_states >= 2, num_classes >= 2; got {D}, {num_states}, {num_classes}"
            )
        self.D, self.num_states, self.num_classes = D, num_states, num_classes
        self.time_features, self.lam_features = time_features, lam_features
        self.inp = nn.Linear(D * num_states + 2 * time_features + 1, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, D * num_classes)
        self.is_mixture = False
        if mixture:
            self.add_lambda_path()

    def add_lambda_path(self, hidden: int | None = None) -> None:
        """Attach the zero-initialised lambda path (student = source at init)."""
        h = hidden or self.inp.out_features
        self.lam_mlp = nn.Sequential(
            nn.Linear(2 * self.lam_features + 1 + 2 * self.time_features + 1, h),
            nn.SiLU(),
            nn.Linear(h, h),
            nn.SiLU(),
        )
        self.lam_dense = nn.ModuleList(
            nn.Linear(h, self.inp.out_features) for _ in range(len(self.blocks) + 1)
        )
        for lin in self.lam_dense:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.is_mixture = True

    def forward(
        self, x_t: Tensor, t: Tensor, lam: Tensor | None = None, cond=None
    ) -> Tensor:
        check_denoiser_inputs(x_t, t, lam)
        B = x_t.shape[0]
        tf = fourier_features(t.float(), self.time_features)
        h = torch.cat(
            [nn.functional.one_hot(x_t, self.num_states).float().flatten(1), tf], -1
        )
        h = nn.functional.silu(self.inp(h))
        lam_h = None
        if self.is_mixture:
            if lam is None:
                lam = draw_lambda(B, x_t.device)
            lam_h = self.lam_mlp(
                torch.cat([fourier_features(lam.float(), self.lam_features), tf], -1)
            )
            h = h + self.lam_dense[0](lam_h)
        for i, blk in enumerate(self.blocks):
            h = h + nn.functional.silu(blk(h))
            if lam_h is not None:
                h = h + self.lam_dense[i + 1](lam_h)
        logits = self.out(h).view(B, self.D, self.num_classes)
        return torch.log_softmax(logits, -1)
