"""Randomness for samplers and training steps, and categorical draws.

:class:`SampleRNG` keeps one generator per sample (seeded from that sample's
seed), so a sample depends only on its own seed, whatever the batch size or
batch composition (the EDM ``StackedRandomGenerator`` idea). :class:`BatchRNG`
draws a whole batch from one generator (training, where batch invariance is
not needed). Both expose ``rand(batch, *shape, dtype=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from di4c.processes.base import inverse_cdf


class BatchRNG:
    """One generator for a whole batch."""

    def __init__(self, generator: torch.Generator | None = None, device="cpu"):
        self.generator = generator
        self.device = torch.device(device)

    def rand(self, batch: int, *shape: int, dtype=torch.float32) -> Tensor:
        return torch.rand(
            (batch, *shape), generator=self.generator, dtype=dtype, device=self.device
        )

    def repeat(self, k: int) -> BatchRNG:
        return self

    def subset(self, idx: Tensor) -> BatchRNG:
        return self


class SampleRNG:
    """One generator per sample; ``rand(B, ...)`` stacks each sample's own draw."""

    def __init__(self, seeds: Sequence[int], device="cpu"):
        if len(seeds) == 0:
            raise ValueError("seeds must name at least one sample")
        self.seeds = [int(s) for s in seeds]
        self.device = torch.device(device)
        self.generators = [
            torch.Generator(self.device).manual_seed(s) for s in self.seeds
        ]

    def __len__(self) -> int:
        return len(self.generators)

    def rand(self, batch: int, *shape: int, dtype=torch.float32) -> Tensor:
        if batch != len(self.generators):
            raise ValueError(
                f"SampleRNG holds {len(self.generators)} seeds; asked for batch {batch}"
            )
        return torch.stack(
            [
                torch.rand(shape, generator=g, dtype=dtype, device=self.device)
                for g in self.generators
            ]
        )

    def repeat(self, k: int) -> RepeatRNG:
        """View for B * k rows where rows i*k .. i*k+k-1 draw from sample i's generator."""
        return RepeatRNG(self, k)

    def subset(self, idx: Tensor) -> SampleRNG:
        """The generators of the samples ``idx`` (shared state, not copies)."""
        sub = SampleRNG.__new__(SampleRNG)
        sub.device = self.device
        sub.generators = [self.generators[int(i)] for i in idx]
        sub.seeds = [self.seeds[int(i)] for i in idx]
        return sub


class ExampleRNG(SampleRNG):
    """Per-example generators for training step ``step``, seeded by (seed, step, position).

    The draws of the example at position j of the global batch depend only on
    (seed, step, j), so any split of the batch over processes sees the same
    randomness per example (exact data-parallel equivalence), and a resumed run
    needs no saved generator state.
    """

    def __init__(self, seed: int, step: int, positions, device="cpu"):
        mix = [
            (((seed * 1_000_003 + step) * 1_000_033 + int(j)) * 2_654_435_761)
            % (2**63 - 1)
            for j in positions
        ]
        super().__init__(mix, device)


class RepeatRNG:
    """B * k rows drawn as (B, k, ...) from a per-sample RNG (see :meth:`SampleRNG.repeat`)."""

    def __init__(self, base: SampleRNG, k: int):
        self.base, self.k, self.device = base, k, base.device

    def __len__(self) -> int:
        return len(self.base) * self.k

    def rand(self, batch: int, *shape: int, dtype=torch.float32) -> Tensor:
        if batch != len(self):
            raise ValueError(f"RepeatRNG covers {len(self)} rows; asked for {batch}")
        out = self.base.rand(len(self.base), self.k, *shape, dtype=dtype)
        return out.reshape(batch, *shape)


def as_rng(x):
    """An RNG object (``.rand(B, ...)``) from an RNG object, a torch.Generator or None."""
    if x is None or isinstance(x, torch.Generator):
        return BatchRNG(x)
    if not hasattr(x, "rand"):
        raise TypeError(
            f"expected a torch.Generator or an RNG with .rand(); got {type(x).__name__}"
        )
    return x


def categorical(
    probs: Tensor,
    rng,
    method: str = "inverse_cdf",
    noise_dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draw one index per row of ``probs`` (B, D, S) -> (B, D).

    ``inverse_cdf`` uses one uniform per (b, d) and a float64 cumulative sum.
    ``gumbel`` is the exponential race argmax p / E with E = -log U, one U per
    class, as MDLM's ancestral sampler; ``noise_dtype`` sets its precision
    (float64 avoids the truncated-tail bias of 32-bit Gumbel noise;
    docs/implementation-notes.md#low-precision-sampling).
    """
    if probs.dim() != 3:
        raise ValueError(f"probs must have shape (B, D, S); got {tuple(probs.shape)}")
    B, D, S = probs.shape
    if method == "inverse_cdf":
        return inverse_cdf(probs, rng.rand(B, D, 1, dtype=torch.float64))
    if method == "gumbel":
        u = rng.rand(B, D, S, dtype=noise_dtype)
        expo = -torch.log(u.clamp_min(torch.finfo(noise_dtype).tiny))
        return (probs.to(noise_dtype) / expo).argmax(-1)
    raise ValueError(
        f"unknown categorical method {method!r}; allowed: ['gumbel', 'inverse_cdf']"
    )


def gumbel(rng, batch: int, *shape: int, dtype=torch.float64) -> Tensor:
    """Standard Gumbel noise -log(-log U)."""
    u = rng.rand(batch, *shape, dtype=dtype).clamp(
        torch.finfo(dtype).tiny, 1 - torch.finfo(dtype).eps
    )
    return -torch.log(-torch.log(u))
