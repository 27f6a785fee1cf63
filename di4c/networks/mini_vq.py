"""Small VQ tokenizer of the ImageNet mini twin: the paper's VQGAN family at digit size.

The paper's MaskGIT teacher models VQGAN f16 codes of 256 x 256 images
(docs/algorithm.md#vqgan-tokens-and-masking). The mini twin tokenises 16 x 16 digits with the same
:class:`di4c.networks.vqgan.VQModel` (taming encoder / nearest-code quantiser /
decoder, keys and Lightning container unchanged) at a small configuration: one
downsampling level (f2), so a digit becomes an 8 x 8 grid of codes (D = 64).
The DAG trains it; sampling decodes codes with ``VQModel.decode_code`` exactly
as the paper's ``sample()`` decodes with the VQGAN.

Training (our choice, stated in the table's meta): the VQ-VAE objective with a
straight-through estimator, ``|x - x_hat|^2 + ||sg(z) - e||^2 + beta ||z -
sg(e)||^2`` (no perceptual or adversarial term: at 16 x 16 there is nothing for
them to add), the codebook initialised by k-means on encoder latents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from di4c.networks.vqgan import VQGANConfig, VQModel

__all__ = [
    "MiniVQConfig",
    "VQForward",
    "build_mini_vq",
    "kmeans_init_codebook",
    "vq_forward",
]


@dataclass(frozen=True)
class MiniVQConfig:
    """Shape of the mini tokenizer (mapped onto :class:`VQGANConfig`).

    Attributes:
        resolution: image side in pixels (16 for the shared 16 x 16 digits).
        in_channels: image channels (1).
        ch, ch_mult, num_res_blocks: taming encoder/decoder widths; ``len(ch_mult)
            - 1`` downsamplings (``(1, 2)``: f2, an 8 x 8 code grid at 16 px).
        z_channels: encoder output channels.
        embed_dim, n_embed: codebook vector size and number of codes.
    """

    resolution: int = 16
    in_channels: int = 1
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    z_channels: int = 32
    embed_dim: int = 8
    n_embed: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        self.to_vqgan()  # VQGANConfig checks widths and divisibility

    def to_vqgan(self) -> VQGANConfig:
        return VQGANConfig(
            embed_dim=self.embed_dim,
            n_embed=self.n_embed,
            ch=self.ch,
            ch_mult=self.ch_mult,
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=(),
            dropout=0.0,
            in_channels=self.in_channels,
            out_ch=self.in_channels,
            resolution=self.resolution,
            z_channels=self.z_channels,
            double_z=False,
        )

    @property
    def grid(self) -> int:
        return self.to_vqgan().grid

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ch_mult"] = list(d["ch_mult"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> MiniVQConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"MiniVQConfig: unknown keys {unknown}; known: {sorted(known)}"
            )
        return cls(**d)


def build_mini_vq(config: MiniVQConfig) -> VQModel:
    return VQModel(config.to_vqgan())


class VQForward(NamedTuple):
    recon: Tensor  # (B, C, H, W) decoder output
    codes: Tensor  # (B, h, w) code ids
    codebook_loss: Tensor  # ||sg(z) - e||^2
    commit_loss: Tensor  # ||z - sg(e)||^2


def vq_forward(model: VQModel, x: Tensor) -> VQForward:
    """Straight-through pass of images in [-1, 1] (gradients reach all parts)."""
    z = model.encode_latents(x)
    b, _, h, w = z.shape
    codes = model.quantize.indices(z).reshape(b, h, w)
    e = model.quantize.lookup(codes)
    zq = z + (e - z).detach()
    return VQForward(
        recon=model.decode(zq),
        codes=codes,
        codebook_loss=F.mse_loss(e, z.detach()),
        commit_loss=F.mse_loss(z, e.detach()),
    )


@torch.no_grad()
def kmeans_init_codebook(
    model: VQModel, x: Tensor, iters: int = 20, seed: int = 0
) -> Tensor:
    """Set the codebook to k-means centroids of the encoder latents of ``x``.

    Lloyd's algorithm from ``n_embed`` distinct latents drawn with ``seed``; an
    empty cluster is re-seeded with the latent farthest from its centroid.
    Returns the cluster sizes of the final assignment.
    """
    z = model.encode_latents(x).permute(0, 2, 3, 1).reshape(-1, model.embed_dim)
    n = model.n_embed
    if z.shape[0] < n:
        raise ValueError(
            f"k-means needs at least n_embed={n} latents; got {z.shape[0]} "
            "(use more images)"
        )
    gen = torch.Generator().manual_seed(seed)
    cent = z[torch.randperm(z.shape[0], generator=gen)[:n]].clone()
    counts = torch.zeros(n)
    for _ in range(iters):
        assign = torch.cdist(z, cent).argmin(1)
        counts = torch.bincount(assign, minlength=n).float()
        sums = torch.zeros_like(cent).index_add_(0, assign, z)
        filled = counts > 0
        cent[filled] = sums[filled] / counts[filled, None]
        if not filled.all():
            far = torch.cdist(z, cent).min(1).values.argsort(descending=True)
            cent[~filled] = z[far[: int((~filled).sum())]]
    model.quantize.embedding.weight.copy_(cent)
    return counts
