"""VQGAN f16 tokenizer used by MaskGIT (taming-transformers ``VQModel`` layout).

A from-scratch implementation of the image tokenizer of the ImageNet setting
(docs/algorithm.md#vqgan-tokens-and-masking; authors'
``maskgit-pytorch/Network/Taming/models/vqgan.py::VQModel``) whose parameter
names, shapes and ``state_dict`` order equal the authors' VQModel
(``tests/fixtures/manifests/maskgit_vqgan_f16_1024.json``; docs/checkpoints.md),
so the ``state_dict`` of their Lightning ``last.ckpt`` loads unchanged.

Architecture (taming ``Encoder``/``Decoder``): GroupNorm(32, eps 1e-6) + swish
ResNet blocks, single-head spatial self-attention at the resolutions listed in
``attn_resolutions``, strided-conv downsampling with (0, 1, 0, 1) zero padding,
nearest-neighbour upsampling followed by a 3x3 conv; a 1x1 ``quant_conv`` to
the codebook dimension, nearest-codebook quantisation, and a 1x1
``post_quant_conv`` back. The perceptual/discriminator training loss is not
part of the network (the authors' copy never builds it either).

The configuration comes from ``model.yaml``: :meth:`VQGANConfig.from_params`
takes the ``model.params`` mapping (``embed_dim``, ``n_embed``, ``ddconfig``, ...)
exactly as the authors pass it to ``VQModel(**params)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PAPER_VQGAN_CONFIG", "VQGANConfig", "VQModel"]

# model.params entries that only matter for training or bookkeeping.
_IGNORED_PARAMS = ("lossconfig", "ckpt_path", "ignore_keys", "image_key", "monitor")
_DDCONFIG_REQUIRED = (
    "ch",
    "out_ch",
    "num_res_blocks",
    "attn_resolutions",
    "in_channels",
    "resolution",
    "z_channels",
)


@dataclass(frozen=True)
class VQGANConfig:
    """Shape of a :class:`VQModel`.

    Defaults are the standard taming ImageNet f16 / 1024-code configuration
    recorded (as a reconstruction) in ``maskgit_vqgan_f16_1024.json``; the real
    ``model.yaml`` should be read with :meth:`from_params` when available.

    Attributes:
        embed_dim, n_embed: codebook vector size and number of codes.
        ch, ch_mult, num_res_blocks, attn_resolutions, dropout, resamp_with_conv,
        in_channels, out_ch, resolution, z_channels, double_z, give_pre_end:
            the taming ``ddconfig`` entries.
        colorize_nlabels: adds the ``colorize`` buffer when set (segmentation
            models only; never for MaskGIT).
        sane_index_shape: recorded for completeness; :meth:`VQModel.encode`
            always returns flat indices and :meth:`VQModel.encode_grid` the grid.
    """

    embed_dim: int = 256
    n_embed: int = 1024
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    in_channels: int = 3
    out_ch: int = 3
    resolution: int = 256
    z_channels: int = 256
    double_z: bool = False
    give_pre_end: bool = False
    colorize_nlabels: int | None = None
    sane_index_shape: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(
            self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions)
        )
        if not self.ch_mult:
            raise ValueError("VQGANConfig.ch_mult must not be empty")
        for c in [self.ch * m for m in self.ch_mult]:
            if c % 32:
                raise ValueError(
                    f"VQGANConfig: every ch * ch_mult must be a multiple of 32 "
                    f"(GroupNorm with 32 groups); got ch={self.ch}, "
                    f"ch_mult={self.ch_mult}"
                )
        if self.double_z:
            raise ValueError(
                "VQGANConfig.double_z=True gives 2 * z_channels encoder outputs, "
                "which quant_conv (z_channels inputs) cannot take; a VQModel "
                "config must set double_z: false"
            )
        if self.resolution % self.downsample_factor:
            raise ValueError(
                f"VQGANConfig.resolution ({self.resolution}) must be divisible by "
                f"the downsampling factor {self.downsample_factor}"
            )

    @property
    def num_resolutions(self) -> int:
        return len(self.ch_mult)

    @property
    def downsample_factor(self) -> int:
        """Pixels per token side (16 for five levels)."""
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid(self) -> int:
        """Tokens per side for an image of ``resolution`` pixels."""
        return self.resolution // self.downsample_factor

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> VQGANConfig:
        """Build from ``model.params`` of a taming/MaskGIT ``model.yaml``.

        Accepts what ``VQModel(**params)`` accepts. Training-only entries
        (``lossconfig``, ``ckpt_path``, ``ignore_keys``, ``image_key``,
        ``monitor``) are ignored; ``remap`` (an index-remapping .npy file) is
        not supported. Unknown ``ddconfig`` entries are ignored, as the taming
        Encoder/Decoder ignore them.
        """
        params = dict(params)
        unknown = sorted(
            set(params)
            - {"ddconfig", "n_embed", "embed_dim", "remap", "sane_index_shape"}
            - {"colorize_nlabels", *_IGNORED_PARAMS}
        )
        if unknown:
            raise ValueError(f"VQGAN model.params: unknown entries {unknown}")
        for key in ("ddconfig", "n_embed", "embed_dim"):
            if key not in params:
                raise ValueError(f"VQGAN model.params: missing required entry '{key}'")
        if params.get("remap") is not None:
            raise NotImplementedError(
                f"VQGAN model.params: remap={params['remap']!r} (codebook index "
                "remapping) is not supported"
            )
        dd = dict(params["ddconfig"])
        missing = [k for k in _DDCONFIG_REQUIRED if k not in dd]
        if missing:
            raise ValueError(f"VQGAN model.params.ddconfig: missing entries {missing}")
        return cls(
            embed_dim=int(params["embed_dim"]),
            n_embed=int(params["n_embed"]),
            ch=int(dd["ch"]),
            ch_mult=tuple(dd.get("ch_mult", (1, 2, 4, 8))),
            num_res_blocks=int(dd["num_res_blocks"]),
            attn_resolutions=tuple(dd["attn_resolutions"]),
            dropout=float(dd.get("dropout", 0.0)),
            resamp_with_conv=bool(dd.get("resamp_with_conv", True)),
            in_channels=int(dd["in_channels"]),
            out_ch=int(dd["out_ch"]),
            resolution=int(dd["resolution"]),
            z_channels=int(dd["z_channels"]),
            # The taming Encoder defaults double_z to True.
            double_z=bool(dd.get("double_z", True)),
            give_pre_end=bool(dd.get("give_pre_end", False)),
            colorize_nlabels=params.get("colorize_nlabels"),
            sane_index_shape=bool(params.get("sane_index_shape", False)),
        )

    def to_params(self) -> dict[str, Any]:
        """The ``model.params`` mapping that rebuilds this config."""
        d = asdict(self)
        params: dict[str, Any] = {
            "embed_dim": d.pop("embed_dim"),
            "n_embed": d.pop("n_embed"),
        }
        if d["colorize_nlabels"] is not None:
            params["colorize_nlabels"] = d["colorize_nlabels"]
        if d["sane_index_shape"]:
            params["sane_index_shape"] = True
        for k in ("colorize_nlabels", "sane_index_shape"):
            d.pop(k)
        d["ch_mult"] = list(d["ch_mult"])
        d["attn_resolutions"] = list(d["attn_resolutions"])
        params["ddconfig"] = d
        return params


PAPER_VQGAN_CONFIG = VQGANConfig()


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


def _conv3(cin: int, cout: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=padding)


def _conv1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1)


class _ResBlock(nn.Module):
    """x + conv(swish(GN(conv(swish(GN(x)))))), 1x1 shortcut when widths differ."""

    def __init__(self, cin: int, cout: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = _conv3(cin, cout)
        self.norm2 = _norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3(cout, cout)
        if cin != cout:
            self.nin_shortcut = _conv1(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class _SpatialAttention(nn.Module):
    """Single-head self-attention over the H*W positions (1x1-conv projections)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q = _conv1(channels, channels)
        self.k = _conv1(channels, channels)
        self.v = _conv1(channels, channels)
        self.proj_out = _conv1(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        h = self.norm(x)

        def seq(t: Tensor) -> Tensor:  # (B, C, H, W) -> (B, 1, HW, C)
            return t.reshape(b, c, hh * ww).transpose(1, 2)[:, None]

        out = F.scaled_dot_product_attention(
            seq(self.q(h)), seq(self.k(h)), seq(self.v(h))
        )
        out = out[:, 0].transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.proj_out(out)


class _Down(nn.Module):
    """Stride-2 3x3 conv after zero padding right/bottom (or 2x2 average pool)."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        if with_conv:
            self.conv = _conv3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "conv"):
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class _Up(nn.Module):
    """Nearest-neighbour x2 upsampling, then a 3x3 conv when ``with_conv``."""

    def __init__(self, channels: int, with_conv: bool):
        super().__init__()
        if with_conv:
            self.conv = _conv3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


class _Level(nn.Module):
    """One resolution level: ResNet ``block`` list, ``attn`` list, resampler."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def run(self, h: Tensor) -> Tensor:
        for i, blk in enumerate(self.block):
            h = blk(h)
            if len(self.attn):
                h = self.attn[i](h)
        return h


class _Mid(nn.Module):
    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.block_1 = _ResBlock(channels, channels, dropout)
        self.attn_1 = _SpatialAttention(channels)
        self.block_2 = _ResBlock(channels, channels, dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class _Encoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.conv_in = _conv3(cfg.in_channels, cfg.ch)
        self.down = nn.ModuleList()
        res = cfg.resolution
        widths_in = (1, *cfg.ch_mult)
        block_in = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            level = _Level()
            block_in = cfg.ch * widths_in[i]
            block_out = cfg.ch * mult
            for _ in range(cfg.num_res_blocks):
                level.block.append(_ResBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(_SpatialAttention(block_in))
            if i != cfg.num_resolutions - 1:
                level.downsample = _Down(block_in, cfg.resamp_with_conv)
                res //= 2
            self.down.append(level)
        self.mid = _Mid(block_in, cfg.dropout)
        self.norm_out = _norm(block_in)
        self.conv_out = _conv3(block_in, cfg.z_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class _Decoder(nn.Module):
    def __init__(self, cfg: VQGANConfig):
        super().__init__()
        self.give_pre_end = cfg.give_pre_end
        block_in = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // cfg.downsample_factor
        self.conv_in = _conv3(cfg.z_channels, block_in)
        self.mid = _Mid(block_in, cfg.dropout)
        levels: list[_Level] = []
        for i in reversed(range(cfg.num_resolutions)):
            level = _Level()
            block_out = cfg.ch * cfg.ch_mult[i]
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(_ResBlock(block_in, block_out, cfg.dropout))
                block_in = block_out
                if res in cfg.attn_resolutions:
                    level.attn.append(_SpatialAttention(block_in))
            if i != 0:
                level.upsample = _Up(block_in, cfg.resamp_with_conv)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)  # indexed by level, finest first
        self.norm_out = _norm(block_in)
        self.conv_out = _conv3(block_in, cfg.out_ch)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level.run(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(F.silu(self.norm_out(h)))


class _Quantizer(nn.Module):
    """Nearest-neighbour codebook lookup (squared Euclidean distance)."""

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.n_embed = n_embed
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)

    def indices(self, z: Tensor) -> Tensor:
        """(B, C, H, W) latents -> (B*H*W,) code ids in batch, row, column order."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.embed_dim)
        e = self.embedding.weight
        # ||z||^2 + ||e||^2 - 2 z.e, the expression the taming quantiser uses, so
        # that near-ties resolve the same way.
        dist = (
            flat.pow(2).sum(dim=1, keepdim=True)
            + e.pow(2).sum(dim=1)
            - 2 * torch.einsum("bd,nd->bn", flat, e)
        )
        return torch.argmin(dist, dim=1)

    def lookup(self, codes: Tensor) -> Tensor:
        """(B, H, W) code ids -> (B, C, H, W) codebook vectors."""
        return self.embedding(codes).permute(0, 3, 1, 2).contiguous()


class VQModel(nn.Module):
    """VQGAN tokenizer: ``encode`` images to code ids, ``decode_code`` ids to images.

    Images are (B, in_channels, H, W) in [-1, 1] ([0, 1] inputs are mapped by
    2x - 1 first, as the authors' ``MaskGIT.train_di4c`` does;
    docs/algorithm.md#vqgan-tokens-and-masking). Keys: ``encoder.*``, ``decoder.*``,
    ``quantize.embedding.weight``, ``quant_conv.*``, ``post_quant_conv.*``.
    """

    def __init__(self, config: VQGANConfig | None = None):
        super().__init__()
        cfg = config if config is not None else PAPER_VQGAN_CONFIG
        if not isinstance(cfg, VQGANConfig):
            raise TypeError(f"config must be a VQGANConfig; got {type(cfg).__name__}")
        self.config = cfg
        self.n_embed = cfg.n_embed
        self.embed_dim = cfg.embed_dim
        self.encoder = _Encoder(cfg)
        self.decoder = _Decoder(cfg)
        self.quantize = _Quantizer(cfg.n_embed, cfg.embed_dim)
        self.quant_conv = _conv1(cfg.z_channels, cfg.embed_dim)
        self.post_quant_conv = _conv1(cfg.embed_dim, cfg.z_channels)
        if cfg.colorize_nlabels is not None:
            self.register_buffer("colorize", torch.randn(3, cfg.colorize_nlabels, 1, 1))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> VQModel:
        """Build from a ``model.yaml``'s ``model.params`` mapping."""
        return cls(VQGANConfig.from_params(params))

    def encode_latents(self, x: Tensor) -> Tensor:
        """Images -> pre-quantisation latents (B, embed_dim, h, w)."""
        return self.quant_conv(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] -> nearest-code ids, flat (B*h*w,) in batch, row,
        column order (the authors reshape it to (B, h, w))."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"x must have shape (B, {self.config.in_channels}, H, W); got "
                f"{tuple(x.shape)}"
            )
        return self.quantize.indices(self.encode_latents(x))

    def encode_grid(self, x: Tensor) -> Tensor:
        """Images -> code ids as a (B, h, w) grid."""
        b, _, hh, ww = x.shape
        f = self.config.downsample_factor
        return self.encode(x).reshape(b, hh // f, ww // f)

    def decode(self, quant: Tensor) -> Tensor:
        """Codebook vectors (B, embed_dim, h, w) -> images."""
        return self.decoder(self.post_quant_conv(quant))

    def decode_code(self, codes: Tensor) -> Tensor:
        """(B, h, w) code ids in [0, n_embed) -> images (B, out_ch, 16h, 16w)."""
        if codes.dim() != 3:
            raise ValueError(
                f"codes must have shape (B, h, w); got {tuple(codes.shape)}"
            )
        return self.decode(self.quantize.lookup(codes.long()))

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction: decode(quantise(encode(x)))."""
        b, _, hh, ww = x.shape
        f = self.config.downsample_factor
        return self.decode_code(self.encode(x).reshape(b, hh // f, ww // f))
