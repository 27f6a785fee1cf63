"""The one interface every teacher and student exposes to samplers and losses.

A denoiser is a single call ``(x_t, t, lam, cond) -> log p_{0|t}(x0^d = v | x_t)``:

- ``x_t``: LongTensor (B, D) of states (mask id included for masked processes);
- ``t``: FloatTensor (B,) diffusion time in [0, 1] (1 = pure noise);
- ``lam``: FloatTensor (B,) mixture variable lambda in [0, 1), or None;
- ``cond``: optional conditioning (class labels for ImageNet), LongTensor (B,);
- returns float log-probabilities of shape (B, D, num_classes).

A product teacher ignores ``lam``. A mixture student (Di4C, Sec. 4 of the paper)
draws a fresh ``lam ~ U(0, 1)`` per sample per call when ``lam`` is None, shared by
all D dimensions. Samplers pass ``lam`` explicitly so that samples depend only on
per-sample seeds.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Denoiser(Protocol):
    """x0-prediction network in the suite's common calling convention."""

    num_classes: int
    is_mixture: bool

    def __call__(
        self,
        x_t: Tensor,
        t: Tensor,
        lam: Tensor | None = None,
        cond: Tensor | None = None,
    ) -> Tensor: ...


def draw_lambda(
    batch: int, device: torch.device | str = "cpu", generator=None
) -> Tensor:
    """Fresh lambda ~ U(0, 1), one scalar per sample (method.md §1.3)."""
    return torch.rand(batch, device=device, generator=generator)


def check_denoiser_inputs(x_t: Tensor, t: Tensor, lam: Tensor | None = None) -> None:
    """Raise ValueError naming the argument when shapes do not match (B, D), (B,), (B,)."""
    if x_t.dim() != 2:
        raise ValueError(f"x_t must have shape (B, D); got {tuple(x_t.shape)}")
    if x_t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"x_t must be an integer tensor of states; got {x_t.dtype}")
    if t.shape != (x_t.shape[0],):
        raise ValueError(
            f"t must have shape (B,) = ({x_t.shape[0]},); got {tuple(t.shape)}"
        )
    if lam is not None and lam.shape != (x_t.shape[0],):
        raise ValueError(
            f"lam must have shape (B,) = ({x_t.shape[0]},) or be None; got {tuple(lam.shape)}"
        )


class CallableDenoiser:
    """Wrap a plain function ``f(x_t, t, lam, cond) -> log-probs`` as a :class:`Denoiser`."""

    def __init__(self, fn, num_classes: int, is_mixture: bool = False):
        self.fn = fn
        self.num_classes = num_classes
        self.is_mixture = is_mixture

    def __call__(self, x_t, t, lam=None, cond=None):
        check_denoiser_inputs(x_t, t, lam)
        if self.is_mixture and lam is None:
            lam = draw_lambda(x_t.shape[0], x_t.device)
        return self.fn(x_t, t, lam, cond)
