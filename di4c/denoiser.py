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

:class:`NetDenoiser` is the base of the adapters that put a network in this
convention; each lives beside its network (``TauLDRDenoiser`` in
di4c/networks/tauldr_unet.py, ``MaskGITDenoiser`` in di4c/networks/maskgit.py,
``DiTDenoiser`` in di4c/networks/dit.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


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
    """Fresh lambda ~ U(0, 1), one scalar per sample (docs/algorithm.md#training-inputs)."""
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
    if lam is not None:
        check_lambda(lam)


def check_lambda(lam: Tensor) -> None:
    """Raise ValueError unless ``lam`` is a float tensor with every value in [0, 1]
    (NaN included): the mixture variable of a Di4C student (Sec. 4 of the paper).

    One reduction per call: networks check it at their boundary, not per layer.
    """
    if not lam.dtype.is_floating_point:
        raise ValueError(
            f"lam must be a float tensor (the mixture variable in [0, 1]); got {lam.dtype}"
        )
    if lam.numel() and not lam.is_meta and not bool(((lam >= 0) & (lam <= 1)).all()):
        raise ValueError(
            f"lam must lie in [0, 1] (the mixture variable, Sec. 4 of the paper); "
            f"got min {float(lam.min())}, max {float(lam.max())}"
        )


def check_ids(ids: Tensor, name: str, high: int, what: str) -> None:
    """Raise ValueError unless ``ids`` is an integer tensor with values in [0, high)
    (``what`` names the alphabet in the message). A float would be truncated by
    ``.long()`` and an id out of range fails deep inside an embedding."""
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(
            f"{name} must be an integer tensor of ids; got {ids.dtype} "
            "(a float would be truncated)"
        )
    if ids.is_meta:  # a shape-only pass has no values to check
        return
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
        raise ValueError(
            f"{name} must lie in [0, {high}) ({what}); got min {int(ids.min())}, "
            f"max {int(ids.max())}"
        )


class NetDenoiser(ABC):
    """An ``nn.Module`` network ``net`` in the :class:`Denoiser` convention.

    The adapter

    - forwards ``training``, ``train(mode)`` and ``eval()`` to ``net``: the Di4C
      loss runs the stop-gradient target branch in the mode its setting asks
      for by toggling these on the student it is given (di4c/distill.py);
    - moves ``x_t``, ``t``, ``lam`` and ``cond`` to the network's device (the
      samplers build time grids on the CPU);
    - validates shapes with :func:`check_denoiser_inputs`;
    - for a mixture network draws a fresh lambda ~ U(0, 1) per sample when
      ``lam`` is None (from ``generator`` if given), and passes ``lam=None``
      to a product network;
    - exposes ``num_classes``, ``is_mixture`` and ``device``.

    Subclasses implement :attr:`is_mixture` and :meth:`log_probs`.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        *,
        generator: torch.Generator | None = None,
    ):
        self.net = net
        self.num_classes = int(num_classes)
        self.generator = generator

    @property
    @abstractmethod
    def is_mixture(self) -> bool:
        """True for a Di4C mixture network (it takes lambda)."""

    @abstractmethod
    def log_probs(
        self, x_t: Tensor, t: Tensor, lam: Tensor | None, cond: Tensor | None
    ) -> Tensor:
        """(B, D, num_classes) log-probabilities; inputs already checked, on
        :attr:`device`, ``lam`` resolved (None for a product network)."""

    @property
    def training(self) -> bool:
        return self.net.training

    def train(self, mode: bool = True) -> NetDenoiser:
        self.net.train(mode)
        return self

    def eval(self) -> NetDenoiser:
        return self.train(False)

    @property
    def device(self) -> torch.device:
        """Device of the network's first parameter (or buffer); CPU if it has none."""
        for p in self.net.parameters():
            return p.device
        for b in self.net.buffers():
            return b.device
        return torch.device("cpu")

    def lambda_for(
        self, batch: int, lam: Tensor | None, device: torch.device | str
    ) -> Tensor | None:
        """``lam`` on ``device`` for a mixture network (drawn when None); None otherwise."""
        if not self.is_mixture:
            return None
        if lam is None:
            return draw_lambda(batch, device, self.generator)
        return lam.to(device)

    def __call__(
        self,
        x_t: Tensor,
        t: Tensor,
        lam: Tensor | None = None,
        cond: Tensor | None = None,
    ) -> Tensor:
        check_denoiser_inputs(x_t, t, lam)
        device = self.device
        x_t, t = x_t.to(device), t.to(device)
        lam = self.lambda_for(x_t.shape[0], lam, device)
        if isinstance(cond, Tensor):
            cond = cond.to(device)
        return self.log_probs(x_t, t, lam, cond)


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
