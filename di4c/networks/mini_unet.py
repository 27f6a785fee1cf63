"""The CIFAR-10 mini twin's denoiser: the tauLDR UNet family at digit size.

See docs/algorithm.md#tauldr-unet-teacher and docs/algorithm.md#lambda-in-the-tauldr-unet.

Rather than a new architecture, the mini twin runs the *paper's own* network
class (:class:`~di4c.networks.tauldr_unet.TauLDRUNet`) at a small width and
image size, so everything the paper's student has, the mini student has too:

- time conditioning: sinusoid(1000 t) -> MLP, added in every ResBlock;
- the Di4C lambda path: sinusoid(1000 lambda) with sinusoid(1000 t) -> ``tlam_mix``
  -> MLP (embedding A, down path) and, from the bottleneck mean, embedding B
  (middle and up paths), each injected as a per-ResBlock bias through a
  zero-initialised ``dense1``: a fresh student equals its teacher for every
  lambda (docs/algorithm.md#lambda-in-the-tauldr-unet, docs/algorithm.md#sanity-checks);
- the truncated discretised logistic head over S grey levels;
- the authors' checkpoint container (:func:`di4c.teachers.tauldr.save_checkpoint`),
  so the mini teacher and students load through the same code as the
  published files.

:class:`MiniUNetConfig` holds the knobs the mini config exposes and
:func:`build_mini_unet` returns the network; :func:`mini_net_config` gives
the equivalent :class:`TauLDRUNetConfig` (on every model card and embedded in the
checkpoint itself, docs/checkpoints.md#the-network-configuration-inside-our-files).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig

__all__ = ["MiniUNetConfig", "build_mini_unet", "mini_net_config"]


@dataclass(frozen=True)
class MiniUNetConfig:
    """Width and depth of the mini tauLDR UNet (the image size and S come from the data).

    Attributes:
        ch: base channels (a multiple of 4; GroupNorm uses min(C // 4, 32) groups).
        ch_mult: channel multiplier per scale; H and W must divide by 2**(len - 1).
        num_res_blocks: ResBlocks per scale on the down path.
        attn_scale: scale index with self-attention (-1: none besides the middle).
        dropout: ResBlock dropout (the paper's 0.1).
        time_embed_dim: sinusoid width of t and lambda (paper 128).
    """

    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attn_scale: int = 1
    dropout: float = 0.1
    time_embed_dim: int = 64


def mini_net_config(
    mini: MiniUNetConfig,
    image_shape: tuple[int, int, int],
    S: int,
    lam_embed: bool = False,
) -> TauLDRUNetConfig:
    """The :class:`TauLDRUNetConfig` of a mini network for images of ``image_shape`` and S levels."""
    return TauLDRUNetConfig(
        S=S,
        image_shape=tuple(image_shape),
        ch=mini.ch,
        ch_mult=tuple(mini.ch_mult),
        num_res_blocks=mini.num_res_blocks,
        attn_scale=mini.attn_scale,
        dropout=mini.dropout,
        time_embed_dim=mini.time_embed_dim,
        lam_embed=lam_embed,
    )


def build_mini_unet(
    mini: MiniUNetConfig,
    image_shape: tuple[int, int, int],
    S: int,
    lam_embed: bool = False,
    seed: int | None = None,
) -> TauLDRUNet:
    """A freshly initialised mini teacher (or, with ``lam_embed``, student), seeded if asked."""
    cfg = mini_net_config(mini, image_shape, S, lam_embed)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return TauLDRUNet(cfg)
