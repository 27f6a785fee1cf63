"""tauLDR CIFAR-10 UNet (teacher) and its Di4C mixture student.

See docs/algorithm.md#tauldr-unet-teacher and docs/algorithm.md#lambda-in-the-tauldr-unet.

Our own implementation of the x0-predicting network of tauLDR (Campbell et al.
2022) as used by Di4C (paper Sec. 5.1). Parameter names, shapes and registration
order equal the authors' ``UNet`` so that their checkpoints load without
renaming (see ``tests/fixtures/manifests/tauldr_cifar10_*.json``).

- Teacher: sinusoidal time embedding -> MLP, added in every ResBlock; a
  truncated discretised logistic head (mu, log-scale per pixel) turned into
  logits over the S pixel levels (authors'
  ``tauldr/lib/models/models.py::ImageX0PredBase.forward``).
- Student (``lam_embed=True``): one scalar lambda per image, embedded twice
  (embedding A for the down path from lambda and t; embedding B for the middle
  and up paths from lambda, t and the bottleneck mean) and added in every
  ResBlock through a zero-initialised ``dense1``
  (docs/algorithm.md#lambda-in-the-tauldr-unet). With ``dense1`` at zero the
  student equals the network it was initialised from, for every lambda.

Modules are created in the authors' order with the same initialisers, so a
seeded build consumes the random stream identically.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from di4c.denoiser import NetDenoiser, check_lambda

__all__ = [
    "TauLDRUNet",
    "TauLDRUNetConfig",
    "sinusoidal_embedding",
    "truncated_logistic_logits",
]


@dataclass(frozen=True)
class TauLDRUNetConfig:
    """Architecture of the tauLDR UNet; defaults are the paper's CIFAR-10 teacher.

    Mirrors ``tauldr/config/train/cifar10.py`` (teacher) and
    ``distil_cifar10.py`` (student: ``lam_embed=True``, lambda of raw dim 1).

    Attributes:
        S: number of pixel levels (states per dimension).
        image_shape: (C, H, W) of the images; D = C * H * W.
        ch: base channel count.
        ch_mult: channel multiplier per scale (one scale per entry).
        num_res_blocks: ResBlocks per scale on the down path (+1 on the up path).
        attn_scale: index of the scale that gets self-attention after each
            ResBlock (``scale_count_to_put_attn``); the middle always has one.
        dropout: dropout rate inside every ResBlock (active in train mode only).
        skip_rescale: divide every residual sum by sqrt(2).
        time_embed_dim: sinusoidal embedding width (MLP widens it 4x). The
            lambda embedding uses the same width and scale factor.
        time_scale_factor: t (and lambda) are multiplied by this before the
            sinusoidal embedding.
        data_min_max: pixel range mapped to [-1, 1]; None means (0, S - 1).
        lam_embed: build the Di4C student (lambda embeddings and ``dense1``).
        fix_logistic: use the min of the two log-difference forms in the head
            (the authors' configs use False).
    """

    S: int = 256
    image_shape: tuple[int, int, int] = (3, 32, 32)
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_scale: int = 1
    dropout: float = 0.1
    skip_rescale: bool = True
    time_embed_dim: int = 128
    time_scale_factor: float = 1000.0
    data_min_max: tuple[float, float] | None = None
    lam_embed: bool = False
    fix_logistic: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))
        object.__setattr__(self, "ch_mult", tuple(int(v) for v in self.ch_mult))
        if self.data_min_max is not None:
            object.__setattr__(self, "data_min_max", tuple(self.data_min_max))
        if self.S < 2:
            raise ValueError(f"S must be >= 2; got {self.S}")
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be (C, H, W); got {self.image_shape}")
        if not self.ch_mult or min(self.ch_mult) < 1:
            raise ValueError(f"ch_mult must be non-empty positive; got {self.ch_mult}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1; got {self.num_res_blocks}")
        factor = 2 ** (len(self.ch_mult) - 1)
        _, h, w = self.image_shape
        if h % factor or w % factor:
            raise ValueError(
                f"image_shape {self.image_shape}: H and W must be divisible by "
                f"2**(len(ch_mult) - 1) = {factor}"
            )
        if self.time_embed_dim < 4 or self.time_embed_dim % 2:
            raise ValueError(
                f"time_embed_dim must be even and >= 4; got {self.time_embed_dim}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")

    @classmethod
    def paper_teacher(cls) -> TauLDRUNetConfig:
        """tauLDR CIFAR-10 teacher (35,749,766 parameters)."""
        return cls()

    @classmethod
    def paper_student(cls) -> TauLDRUNetConfig:
        """Di4C CIFAR-10 mixture student (39,066,630 parameters)."""
        return cls(lam_embed=True)

    def as_student(self) -> TauLDRUNetConfig:
        """The same architecture with the lambda path added."""
        return replace(self, lam_embed=True)

    def as_teacher(self) -> TauLDRUNetConfig:
        """The same architecture without the lambda path."""
        return replace(self, lam_embed=False)

    def to_dict(self) -> dict:
        """JSON-ready fields (tuples as lists): a model card's or a file's ``network``."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> TauLDRUNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown TauLDRUNetConfig keys {unknown}")
        return cls(**d)

    @property
    def input_channels(self) -> int:
        return self.image_shape[0]

    @property
    def num_dims(self) -> int:
        """D = C * H * W."""
        c, h, w = self.image_shape
        return c * h * w

    @property
    def pixel_range(self) -> tuple[float, float]:
        return self.data_min_max if self.data_min_max is not None else (0, self.S - 1)


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------


def sinusoidal_embedding(values: Tensor, dim: int, max_positions: float = 10000.0):
    """Transformer sinusoid of a (B,) tensor: [sin(v w_k), cos(v w_k)], (B, dim).

    Frequencies w_k = exp(-k ln(max_positions) / (dim/2 - 1)), k < dim/2, as in
    DDPM / score-SDE (authors'
    ``tauldr/lib/networks/network_utils.py::transformer_timestep_embedding``).
    """
    if values.dim() != 1:
        raise ValueError(f"values must have shape (B,); got {tuple(values.shape)}")
    half = dim // 2
    rate = math.log(max_positions) / (half - 1)
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=values.device) * -rate
    )
    args = values.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(C // 4, 32) groups and eps 1e-6 (tauLDR convention)."""
    groups = min(channels // 4, 32)
    if groups < 1 or channels % groups:
        raise ValueError(
            f"a layer has {channels} channels, which GroupNorm with min(C // 4, 32) "
            "groups cannot split; choose ch / ch_mult so every width is a multiple "
            "of its group count (e.g. multiples of 4, and of 32 above 128)"
        )
    return nn.GroupNorm(groups, channels, eps=1e-6)


def _fan_avg_uniform_(weight: Tensor, scale: float) -> Tensor:
    """DDPM 'fan_avg' variance-scaling uniform init for a (in, out) NiN weight."""
    scale = 1e-10 if scale == 0 else scale
    n_in, n_out = weight.shape
    variance = scale / ((n_in + n_out) / 2)
    with torch.no_grad():
        weight.uniform_(0.0, 1.0).mul_(2.0).sub_(1.0).mul_(math.sqrt(3 * variance))
    return weight


class NiN(nn.Module):
    """1x1 layer y = x @ W + b over channels, with W stored as (in, out)."""

    def __init__(self, in_ch: int, out_ch: int, init_scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(_fan_avg_uniform_(torch.empty(in_ch, out_ch), init_scale))
        self.b = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.einsum("bihw,ik->bkhw", x, self.W)
        return y + self.b[None, :, None, None]


class AttnBlock(nn.Module):
    """Single-head self-attention over all H*W positions, residual."""

    def __init__(self, channels: int, skip_rescale: bool = True):
        super().__init__()
        self.skip_rescale = skip_rescale
        self.GroupNorm_0 = _group_norm(channels)
        self.NIN_0 = NiN(channels, channels)
        self.NIN_1 = NiN(channels, channels)
        self.NIN_2 = NiN(channels, channels)
        self.NIN_3 = NiN(channels, channels, init_scale=0.0)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        hn = self.GroupNorm_0(x)
        q = self.NIN_0(hn).reshape(b, c, h * w)
        k = self.NIN_1(hn).reshape(b, c, h * w)
        v = self.NIN_2(hn).reshape(b, c, h * w)
        att = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=-1)
        out = torch.bmm(v, att.transpose(1, 2)).reshape(b, c, h, w)
        out = self.NIN_3(out)
        return (x + out) / math.sqrt(2.0) if self.skip_rescale else x + out


class ResBlock(nn.Module):
    """GN-SiLU-conv, + Dense(SiLU(temb)) [+ Dense1(SiLU(lemb))], GN-SiLU-drop-conv."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        temb_dim: int,
        dropout: float,
        skip_rescale: bool,
        lemb_dim: int | None = None,
    ):
        super().__init__()
        self.in_ch, self.out_ch = in_ch, out_ch
        self.skip_rescale = skip_rescale
        self.groupnorm0 = _group_norm(in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.dense0 = nn.Linear(temb_dim, out_ch)
        nn.init.zeros_(self.dense0.bias)
        if lemb_dim is not None:
            self.dense1 = nn.Linear(lemb_dim, out_ch)
            nn.init.zeros_(self.dense1.weight)
            nn.init.zeros_(self.dense1.bias)
        self.groupnorm1 = _group_norm(out_ch)
        self.dropout0 = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1)
        if in_ch != out_ch:
            self.nin = NiN(in_ch, out_ch)

    def forward(self, x: Tensor, temb: Tensor, lemb: Tensor | None = None) -> Tensor:
        h = self.conv0(F.silu(self.groupnorm0(x)))
        h = h + self.dense0(F.silu(temb))[:, :, None, None]
        if lemb is not None:
            h = h + self.dense1(F.silu(lemb))[:, :, None, None]
        h = self.conv1(self.dropout0(F.silu(self.groupnorm1(h))))
        if self.in_ch != self.out_ch:
            x = self.nin(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding one row/column at the bottom/right."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        _, _, h, w = x.shape
        return self.conv(F.interpolate(x, (2 * h, 2 * w), mode="nearest"))


def _mlp_pair(d_in: int, d_out: int) -> nn.ModuleList:
    """Two Linear layers d_in -> d_out -> d_out with zeroed biases."""
    layers = nn.ModuleList([nn.Linear(d_in, d_out), nn.Linear(d_out, d_out)])
    for layer in layers:
        nn.init.zeros_(layer.bias)
    return layers


# --------------------------------------------------------------------------
# Output head
# --------------------------------------------------------------------------


def _log_minus_exp(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """log(exp(a) - exp(b)) for b < a, as a + log1p(-exp(b - a) + eps)."""
    return a + torch.log1p(-torch.exp(b - a) + eps)


def truncated_logistic_logits(
    params: Tensor, S: int, fix_logistic: bool = False
) -> Tensor:
    """Logits over S bins of a discretised logistic (docs/algorithm.md#tauldr-unet-teacher).

    Args:
        params: (B, 2C, H, W): mu (already in [-1, 1]) then log-scale.
        S: number of bins; centres c_k evenly spaced in [-1, 1], width 2/S.
        fix_logistic: take the min of the two algebraically equal forms.

    Returns:
        (B, C, H, W, S) logits log[sig((c+w/2-mu)s) - sig((c-w/2-mu)s)] (up to
        the 1e-6 stabiliser), with inverse scale s = exp(2 - log_scale). They
        are not renormalised (the mass outside [-1, 1] is dropped); a softmax
        over S gives the truncated distribution.
    """
    c = params.shape[1] // 2
    mu = params[:, :c].unsqueeze(-1)
    log_scale = params[:, c:].unsqueeze(-1)
    inv_scale = torch.exp(-(log_scale - 2))
    width = 2.0 / S
    centres = torch.linspace(
        -1.0 + width / 2, 1.0 - width / 2, S, device=params.device
    ).view(1, 1, 1, 1, S)
    arg_left = (centres - width / 2 - mu) * inv_scale
    arg_right = (centres + width / 2 - mu) * inv_scale
    logcdf_left = F.logsigmoid(arg_left)
    logcdf_right = F.logsigmoid(arg_right)
    logits = _log_minus_exp(logcdf_right, logcdf_left)
    if fix_logistic:
        alt = _log_minus_exp(-arg_left + logcdf_left, -arg_right + logcdf_right)
        logits = torch.min(logits, alt)
    return logits


# --------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------


class TauLDRUNet(nn.Module):
    """tauLDR UNet x0-denoiser; with ``config.lam_embed`` the Di4C student.

    ``forward(x, times, lam=None)`` returns per-pixel logits over the S levels:
    shape (B, C, H, W, S) for x of shape (B, C, H, W) and (B, D, S) for x of
    shape (B, D) (pixels flattened in C, H, W order, D = C*H*W). ``features``
    returns the raw (B, 2C, H, W) head parameters (mu, log-scale).

    ``state_dict()`` holds the bare UNet keys of the authors' checkpoints
    (which store them under ``net.`` or ``net.module.``).
    """

    def __init__(self, config: TauLDRUNetConfig | None = None):
        super().__init__()
        cfg = config if config is not None else TauLDRUNetConfig()
        self.config = cfg
        temb_dim = cfg.time_embed_dim
        wide = 4 * temb_dim
        lemb_dim = wide if cfg.lam_embed else None
        n_scales = len(cfg.ch_mult)

        def res(i: int, o: int) -> ResBlock:
            return ResBlock(i, o, wide, cfg.dropout, cfg.skip_rescale, lemb_dim)

        self.temb_modules = _mlp_pair(temb_dim, wide)
        if cfg.lam_embed:
            self.lemb_modules = _mlp_pair(temb_dim, wide)
            self.hlemb_modules = _mlp_pair(temb_dim, wide)
            self.tlam_mix = nn.Linear(2 * temb_dim, temb_dim)
            nn.init.zeros_(self.tlam_mix.bias)

        self.input_conv = nn.Conv2d(cfg.input_channels, cfg.ch, 3, padding=1)

        skip_chs = [cfg.ch]
        in_ch = cfg.ch
        down: list[nn.Module] = []
        for scale, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                down.append(res(in_ch, cfg.ch * mult))
                in_ch = cfg.ch * mult
                skip_chs.append(in_ch)
                if scale == cfg.attn_scale:
                    down.append(AttnBlock(in_ch, cfg.skip_rescale))
            if scale != n_scales - 1:
                down.append(Downsample(in_ch))
                skip_chs.append(in_ch)
        self.downsampling_modules = nn.ModuleList(down)

        if cfg.lam_embed:
            self.h_t_lam_mix = nn.Linear(2 * temb_dim + in_ch, temb_dim)
            nn.init.zeros_(self.h_t_lam_mix.bias)

        self.middle_modules = nn.ModuleList(
            [res(in_ch, in_ch), AttnBlock(in_ch, cfg.skip_rescale), res(in_ch, in_ch)]
        )

        up: list[nn.Module] = []
        for scale in reversed(range(n_scales)):
            for _ in range(cfg.num_res_blocks + 1):
                out_ch = cfg.ch * cfg.ch_mult[scale]
                up.append(res(in_ch + skip_chs.pop(), out_ch))
                in_ch = out_ch
                if scale == cfg.attn_scale:
                    up.append(AttnBlock(in_ch, cfg.skip_rescale))
            if scale != 0:
                up.append(Upsample(in_ch))
        self.upsampling_modules = nn.ModuleList(up)
        assert not skip_chs

        self.output_modules = nn.ModuleList(
            [
                _group_norm(in_ch),
                nn.Conv2d(in_ch, 2 * cfg.input_channels, 3, padding=1),
            ]
        )

    # -- inputs ---------------------------------------------------------------

    @property
    def is_mixture(self) -> bool:
        return self.config.lam_embed

    def _check_inputs(
        self, x: Tensor, times: Tensor, lam: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Validate shapes, dtypes and pixel range; return x as (B, C, H, W)."""
        cfg = self.config
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ValueError(
                f"x must be an integer tensor of pixel levels; got {x.dtype}"
            )
        b = x.shape[0] if x.dim() > 0 else 0
        if x.dim() == 2 and x.shape[1] == cfg.num_dims:
            x = x.reshape(b, *cfg.image_shape)
        elif x.dim() != 4 or tuple(x.shape[1:]) != cfg.image_shape:
            raise ValueError(
                f"x must have shape (B, {cfg.num_dims}) or (B, *{cfg.image_shape}); "
                f"got {tuple(x.shape)}"
            )
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= cfg.S):
            raise ValueError(
                f"x has values in [{int(x.min())}, {int(x.max())}] but the network "
                f"models S = {cfg.S} levels [0, {cfg.S - 1}]; wrong S?"
            )
        if times.shape != (b,):
            raise ValueError(
                f"times must have shape (B,) = ({b},); got {tuple(times.shape)}"
            )
        if not cfg.lam_embed:
            if lam is not None:
                raise ValueError(
                    "lam was given but this network has no lambda embedding "
                    "(config.lam_embed is False)"
                )
            return x, None
        if lam is None:
            raise ValueError("lam is required: this network is a Di4C mixture student")
        if lam.shape not in ((b,), (b, 1)):
            raise ValueError(
                f"lam must have shape (B,) or (B, 1) with B = {b}; "
                f"got {tuple(lam.shape)}"
            )
        check_lambda(lam)
        return x, lam.reshape(b)

    # -- embeddings -----------------------------------------------------------

    def _time_embedding(self, times: Tensor) -> Tensor:
        cfg = self.config
        temb = sinusoidal_embedding(times * cfg.time_scale_factor, cfg.time_embed_dim)
        temb = self.temb_modules[0](temb)
        return self.temb_modules[1](F.silu(temb))

    def _lam_embedding(
        self, lam: Tensor, times: Tensor, h_mid: Tensor | None = None
    ) -> Tensor:
        """Embedding A (h_mid None; down path) or B (from the bottleneck mean)."""
        cfg = self.config
        lsin = sinusoidal_embedding(lam * cfg.time_scale_factor, cfg.time_embed_dim)
        tsin = sinusoidal_embedding(times * cfg.time_scale_factor, cfg.time_embed_dim)
        if h_mid is None:
            mixed = F.silu(self.tlam_mix(torch.cat((lsin, tsin), 1)))
            mlp = self.lemb_modules
        else:
            hmean = h_mid.mean(dim=3).mean(dim=2)
            mixed = F.silu(self.h_t_lam_mix(torch.cat((lsin, tsin, hmean), 1)))
            mlp = self.hlemb_modules
        return mlp[1](F.silu(mlp[0](mixed)))

    # -- forward --------------------------------------------------------------

    def features(self, x: Tensor, times: Tensor, lam: Tensor | None = None) -> Tensor:
        """Head parameters (B, 2C, H, W): tanh(x_centred + h_mu), then log-scale."""
        x, lam = self._check_inputs(x, times, lam)
        cfg = self.config
        lo, hi = cfg.pixel_range
        x_c = 2 * ((x - lo) / (hi - lo)) - 1
        temb = self._time_embedding(times)
        lemb = self._lam_embedding(lam, times) if lam is not None else None

        h = self.input_conv(x_c)
        skips = [h]
        for module in self.downsampling_modules:
            if isinstance(module, ResBlock):
                h = module(h, temb, lemb)
                skips.append(h)
            elif isinstance(module, AttnBlock):  # the skip is taken after attention
                h = module(h)
                skips[-1] = h
            else:
                h = module(h)
                skips.append(h)
        if lam is not None:
            lemb = self._lam_embedding(lam, times, h)
        h = self._run(self.middle_modules, h, temb, lemb)
        for module in self.upsampling_modules:
            if isinstance(module, ResBlock):
                h = module(torch.cat([h, skips.pop()], dim=1), temb, lemb)
            else:
                h = module(h)
        h = self.output_modules[1](F.silu(self.output_modules[0](h)))
        c = cfg.input_channels
        return torch.cat([torch.tanh(x_c + h[:, :c]), h[:, c:]], dim=1)

    @staticmethod
    def _run(modules: nn.ModuleList, h: Tensor, temb: Tensor, lemb: Tensor | None):
        for module in modules:
            h = module(h, temb, lemb) if isinstance(module, ResBlock) else module(h)
        return h

    def forward(self, x: Tensor, times: Tensor, lam: Tensor | None = None) -> Tensor:
        """Per-pixel logits over S levels, shaped like x with a trailing S axis."""
        out = truncated_logistic_logits(
            self.features(x, times, lam), self.config.S, self.config.fix_logistic
        )
        return out.reshape(*x.shape, self.config.S)


class TauLDRDenoiser(NetDenoiser):
    """A :class:`TauLDRUNet` in the suite's denoiser convention (di4c/denoiser.py).

    ``(x_t (B, D) long, t (B,), lam (B,) or None, cond=None) -> (B, D, S)``
    log-probabilities (log-softmax of the logistic logits). A teacher gets
    ``lam=None``; a mixture student draws a fresh lam ~ U(0, 1) per sample
    when it is None. Inputs are moved to the network's device; ``train()`` /
    ``eval()`` reach the network (:class:`~di4c.denoiser.NetDenoiser`).
    """

    def __init__(self, net: TauLDRUNet, *, generator: torch.Generator | None = None):
        super().__init__(net, net.config.S, generator=generator)

    @property
    def is_mixture(self) -> bool:
        return self.net.is_mixture

    def log_probs(
        self, x_t: Tensor, t: Tensor, lam: Tensor | None, cond: Tensor | None
    ) -> Tensor:
        if cond is not None:
            raise ValueError(
                "cond must be None: the CIFAR-10 tauLDR networks are unconditional"
            )
        return torch.log_softmax(self.net(x_t, t, lam), dim=-1)
