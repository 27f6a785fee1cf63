"""MDLM / SDTT diffusion transformer ("dit-orig") and the Di4C lambda-token student.

Setting C of the paper (Sec. 5.3, OpenWebText); docs/algorithm.md#dit-teacher-and-subs
and docs/algorithm.md#lambda-token-in-the-dit. This is our
own implementation of the network the SDTT teacher checkpoints hold. Parameter
and buffer names, shapes and their ``state_dict`` order are fixed by the
checkpoint format (see ``tests/fixtures/manifests/sdtt_dit_orig_small_*.json``),
so the module tree mirrors it:

``vocab_embed.embedding``, ``sigma_map.mlp.{0,2}``, buffer ``rotary_emb.inv_freq``,
``blocks.<i>.{norm1, attn_qkv, attn_out, norm2, mlp.{0,2}, adaLN_modulation}``,
``output_layer.{norm_final, linear, adaLN_modulation}`` and, for the Di4C student
only, ``latent_projection.{0,2}``.

The network maps token ids (B, L) and a noise level sigma (B,) to logits
(B, L, vocab). :func:`subs_log_probs` is the SUBS parameterisation applied on
top (docs/algorithm.md#dit-teacher-and-subs) and :class:`DiTDenoiser` wraps both as a suite denoiser.

Lambda (docs/algorithm.md#lambda-token-in-the-dit): the student embeds ``1000 * lambda`` sinusoidally
(dimension 128), projects it with Linear(128, 512), GELU, Linear(512, hidden)
and appends the result as token L+1. Rotary position embedding is applied to
the first L tokens only; the output is truncated back to L positions. The
authors draw lambda inside ``forward``; here it is an explicit argument (drawn
U(0, 1) per row only when None).

Precision: the computation is float32 by default. ``autocast_bf16=True`` runs
the blocks and output layer under bfloat16 autocast, as the authors' code does
on GPU (layer norms and the rotary step stay outside autocast, as theirs).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from di4c.denoiser import NetDenoiser, check_ids, check_lambda, draw_lambda

try:  # optional fast path on GPU; never required
    from flash_attn import flash_attn_qkvpacked_func as _flash_qkvpacked
except Exception:  # pragma: no cover - flash-attn is not installable here
    _flash_qkvpacked = None

GPT2_VOCAB = 50257
MASK_INDEX = GPT2_VOCAB  # the mask id appended after the GPT-2 vocabulary
NEG_INF = -1_000_000.0  # the "-infinity" of the SUBS parameterisation


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of the dit-orig network (defaults: ``dit-orig-small``, the paper).

    Attributes:
        hidden_size, cond_dim, n_blocks, n_heads, dropout: ``config.model.*``.
        vocab_size: GPT-2 vocabulary + 1 mask token = 50258.
        length: nominal sequence length (does not change the parameter set).
        is_di4c: build the lambda ``latent_projection`` (Di4C student).
        latent_feature_dim: sinusoidal width of the lambda embedding (128).
        time_conditioning: if False (paper), sigma is zeroed before the network.
        mlp_ratio: hidden width of the block MLP relative to ``hidden_size``.
        sigma_freq_dim: sinusoidal width of the sigma embedding (256).
        rotary_base: base of the rotary frequencies.
    """

    hidden_size: int = 768
    cond_dim: int = 128
    n_blocks: int = 12
    n_heads: int = 12
    dropout: float = 0.1
    vocab_size: int = GPT2_VOCAB + 1
    length: int = 1024
    is_di4c: bool = False
    latent_feature_dim: int = 128
    time_conditioning: bool = False
    mlp_ratio: int = 4
    sigma_freq_dim: int = 256
    rotary_base: float = 10_000.0

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "cond_dim",
            "n_blocks",
            "n_heads",
            "vocab_size",
            "latent_feature_dim",
            "mlp_ratio",
            "sigma_freq_dim",
        ):
            if int(getattr(self, name)) <= 0:
                raise ValueError(
                    f"DiTConfig.{name} must be positive; got {getattr(self, name)}"
                )
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"DiTConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"n_heads ({self.n_heads})"
            )
        if (self.hidden_size // self.n_heads) % 2:
            raise ValueError(
                f"DiTConfig: head dimension hidden_size/n_heads = "
                f"{self.hidden_size // self.n_heads} must be even for rotary embedding"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DiTConfig.dropout must be in [0, 1); got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.n_heads

    @property
    def mask_index(self) -> int:
        """The mask token is the last class (50257 for GPT-2)."""
        return self.vocab_size - 1

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------
# Sinusoidal embeddings (two different conventions, both as in the authors' code)
# ----------------------------------------------------------------------------------


def sigma_sinusoid(sigma: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sigma features [cos, sin] with frequencies max_period^(-k/half), k < half.

    The GLIDE/DiT timestep convention used by ``sigma_map`` (authors'
    ``sdtt/src/sdtt/models/dit_orig.py::TimestepEmbedder``).
    """
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=sigma.device)
    freqs = torch.exp(-math.log(max_period) * k / half)
    angles = sigma.float()[:, None] * freqs[None, :]
    feats = torch.cat([angles.cos(), angles.sin()], dim=-1)
    if dim % 2:
        feats = F.pad(feats, (0, 1))
    return feats


def lambda_sinusoid(
    values: Tensor, dim: int, max_positions: float = 10_000.0
) -> Tensor:
    """Lambda features [sin, cos] with frequencies max_positions^(-k/(half-1)).

    The transformer (score-SDE) convention used for the Di4C lambda token; the
    caller passes ``1000 * lambda`` (docs/algorithm.md#lambda-token-in-the-dit).
    """
    if values.dim() != 1:
        raise ValueError(
            f"lambda_sinusoid expects a 1-D tensor; got {tuple(values.shape)}"
        )
    half = dim // 2
    step = math.log(max_positions) / (half - 1)
    k = torch.arange(half, dtype=torch.float32, device=values.device)
    angles = values.float()[:, None] * torch.exp(-step * k)[None, :]
    feats = torch.cat([angles.sin(), angles.cos()], dim=1)
    if dim % 2:
        feats = F.pad(feats, (0, 1))
    return feats


# ----------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------


def _autocast(device: torch.device, enabled: bool):
    """bf16 autocast on (or any autocast off) for devices that support it."""
    if device.type not in ("cuda", "cpu", "xpu", "mps"):
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


class ScaleOnlyLayerNorm(nn.Module):
    """LayerNorm without bias, computed in float32 outside autocast (key ``weight``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        with _autocast(x.device, enabled=False):
            y = F.layer_norm(x.float(), (self.dim,))
        return y * self.weight


class SigmaEmbedder(nn.Module):
    """sigma -> sinusoid(256) -> Linear -> SiLU -> Linear (key ``mlp.{0,2}``)."""

    def __init__(self, out_dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(
            nn.Linear(freq_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
        )

    def forward(self, sigma: Tensor) -> Tensor:
        return self.mlp(sigma_sinusoid(sigma, self.freq_dim))


class RotaryTable(nn.Module):
    """Rotary frequencies (persistent buffer ``inv_freq``) and cos/sin tables."""

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        exponents = torch.arange(0, head_dim, 2).float() / head_dim
        self.register_buffer("inv_freq", 1.0 / (base**exponents))

    def forward(self, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """cos, sin of shape (length, head_dim): each half-frequency used twice."""
        inv_freq = self.inv_freq.to(device)
        pos = torch.arange(length, device=device, dtype=inv_freq.dtype)
        angles = torch.outer(pos, inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the two halves of the last dim of ``x`` (B, S, H, D), non-interleaved."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos[None, :, None, :] + rotated * sin[None, :, None, :]


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Full bidirectional softmax attention; (B, S, H, D) in and out, no dropout."""
    if (
        _flash_qkvpacked is not None
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
    ):  # pragma: no cover - GPU-only fast path
        return _flash_qkvpacked(torch.stack([q, k, v], dim=2), 0.0, causal=False)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=0.0
    )
    return out.transpose(1, 2)


class DiTBlock(nn.Module):
    """adaLN-modulated pre-LN transformer block with rotary self-attention."""

    def __init__(
        self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int, dropout: float
    ):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = ScaleOnlyLayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.dropout1 = nn.Dropout(dropout)
        self.norm2 = ScaleOnlyLayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.dropout2 = nn.Dropout(dropout)
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, c: Tensor) -> Tensor:
        """``x`` (B, S, dim), ``c`` (B, cond); rotary on the first len(cos) tokens."""
        b, s, dim = x.shape
        mods = self.adaLN_modulation(c)[:, None, :].chunk(6, dim=-1)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mods

        h = self.norm1(x) * (1 + scale_a) + shift_a
        qkv = self.attn_qkv(h).view(b, s, 3, self.n_heads, dim // self.n_heads)
        q, k, v = qkv.unbind(dim=2)
        n_rot = cos.shape[0]
        with _autocast(x.device, enabled=False):
            cos_, sin_ = cos.to(q.dtype), sin.to(q.dtype)
            q = torch.cat([apply_rotary(q[:, :n_rot], cos_, sin_), q[:, n_rot:]], dim=1)
            k = torch.cat([apply_rotary(k[:, :n_rot], cos_, sin_), k[:, n_rot:]], dim=1)
        attn = _attention(q, k, v).reshape(b, s, dim)
        x = x + gate_a * self.dropout1(self.attn_out(attn))

        h = self.norm2(x) * (1 + scale_m) + shift_m
        return x + gate_m * self.dropout2(self.mlp(h))


class TokenEmbedding(nn.Module):
    """Raw embedding table ``embedding`` (vocab, dim), Kaiming-uniform initialised."""

    def __init__(self, dim: int, vocab: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, ids: Tensor) -> Tensor:
        return self.embedding[ids]


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm then a (zero-initialised) Linear to the vocabulary."""

    def __init__(self, dim: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm_final = ScaleOnlyLayerNorm(dim)
        self.linear = nn.Linear(dim, out_dim)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)
        for layer in (self.linear, self.adaLN_modulation):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c)[:, None, :].chunk(2, dim=-1)
        return self.linear(self.norm_final(x) * (1 + scale) + shift)


# ----------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------


class DIT(nn.Module):
    """The dit-orig backbone; with ``config.is_di4c`` also the Di4C lambda token.

    ``use_lambda`` (default ``config.is_di4c``) switches the lambda token on or off
    at run time, like the authors' ``is_di4c`` attribute: a student-architecture
    network with ``use_lambda=False`` is the plain product model (this is how the
    authors run the frozen teacher, docs/algorithm.md#lambda-token-in-the-dit), and a
    round-1 student used as the di4c² teacher runs with it on
    (docs/algorithm.md#iterated-distillation-di4c2).
    """

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        cfg = config or DiTConfig()
        self.config = cfg
        self.vocab_embed = TokenEmbedding(cfg.hidden_size, cfg.vocab_size)
        self.sigma_map = SigmaEmbedder(cfg.cond_dim, cfg.sigma_freq_dim)
        self.rotary_emb = RotaryTable(cfg.head_dim, cfg.rotary_base)
        self.blocks = nn.ModuleList(
            DiTBlock(
                cfg.hidden_size, cfg.n_heads, cfg.cond_dim, cfg.mlp_ratio, cfg.dropout
            )
            for _ in range(cfg.n_blocks)
        )
        self.output_layer = FinalLayer(cfg.hidden_size, cfg.vocab_size, cfg.cond_dim)
        if cfg.is_di4c:
            d = cfg.latent_feature_dim
            self.latent_projection = nn.Sequential(
                nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, cfg.hidden_size)
            )
        self.use_lambda = cfg.is_di4c
        self.autocast_bf16 = False

    @property
    def use_lambda(self) -> bool:
        return self._use_lambda

    @use_lambda.setter
    def use_lambda(self, value: bool) -> None:
        if value and not self.config.is_di4c:
            raise ValueError(
                "use_lambda=True needs a network built with DiTConfig(is_di4c=True) "
                "(it has no latent_projection)"
            )
        self._use_lambda = bool(value)

    def lambda_token(self, lam: Tensor) -> Tensor:
        """(B,) lambda in [0, 1) -> (B, hidden) extra token (see :func:`lambda_sinusoid`)."""
        feats = lambda_sinusoid(lam.reshape(-1) * 1000, self.config.latent_feature_dim)
        return self.latent_projection(feats)

    def forward(
        self, indices: Tensor, sigma: Tensor, lam: Tensor | None = None
    ) -> Tensor:
        """Logits (B, L, vocab) for token ids ``indices`` (B, L), noise ``sigma`` (B,).

        ``sigma`` enters as given (zero it for time_conditioning False, as
        :func:`dit_log_probs` does). ``lam`` (B,) is used only when
        ``use_lambda``; None draws U(0, 1) per row.
        """
        if indices.dim() != 2:
            raise ValueError(
                f"indices must have shape (B, L); got {tuple(indices.shape)}"
            )
        check_ids(
            indices, "indices", self.config.vocab_size,
            f"token ids; the mask id is {self.config.mask_index}",
        )  # fmt: skip
        batch, length = indices.shape
        if sigma.shape != (batch,):
            raise ValueError(
                f"sigma must have shape ({batch},); got {tuple(sigma.shape)}"
            )
        x = self.vocab_embed(indices)
        c = F.silu(self.sigma_map(sigma))
        cos, sin = self.rotary_emb(length, x.device)
        if self.use_lambda:
            if lam is None:
                lam = draw_lambda(batch, x.device)
            if lam.shape != (batch,):
                raise ValueError(
                    f"lam must have shape ({batch},); got {tuple(lam.shape)}"
                )
            check_lambda(lam)
            token = self.lambda_token(lam.to(x.device))
            x = torch.cat([x, token[:, None, :].to(x.dtype)], dim=1)
        with _autocast(x.device, enabled=True) if self.autocast_bf16 else nullcontext():
            for block in self.blocks:
                x = block(x, cos, sin, c)
            x = self.output_layer(x, c)
        return x[:, :length]


# ----------------------------------------------------------------------------------
# SUBS parameterisation and the suite adapter
# ----------------------------------------------------------------------------------


def subs_log_probs(
    logits: Tensor, x_t: Tensor, mask_index: int = MASK_INDEX, neg_inf: float = NEG_INF
) -> Tensor:
    """SUBS parameterisation (docs/algorithm.md#dit-teacher-and-subs): logits (B, L, V) -> log p_{0|t}.

    1. add ``neg_inf`` (-1e6) to the mask logit, 2. log-normalise over V,
    3. at unmasked positions of ``x_t`` (B, L): ``neg_inf`` everywhere except 0 on
    the observed token (carry-over). The input is not modified.
    """
    if logits.dim() != 3 or logits.shape[:2] != x_t.shape:
        raise ValueError(
            f"logits (B, L, V) and x_t (B, L) disagree: {tuple(logits.shape)} vs "
            f"{tuple(x_t.shape)}"
        )
    if not 0 <= mask_index < logits.shape[-1]:
        raise ValueError(f"mask_index {mask_index} is outside [0, {logits.shape[-1]})")
    bias = torch.zeros(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    bias[mask_index] = neg_inf
    shifted = logits + bias
    log_probs = shifted - torch.logsumexp(shifted, dim=-1, keepdim=True)
    observed = x_t != mask_index
    carry = torch.full_like(log_probs, neg_inf)
    carry.scatter_(-1, x_t.masked_fill(~observed, 0).unsqueeze(-1), 0.0)
    return torch.where(observed.unsqueeze(-1), carry, log_probs)


def loglinear_sigma(t: Tensor, eps: float = 1e-3, num_steps: int = 1024) -> Tensor:
    """sigma(t) = -log(1 - (1 - eps) t) after the code's grid ``floor(tT)/T + 1/T``.

    This is the conditioning the authors feed the network (``_t_to_sigma`` in
    ``sdtt/src/sdtt/core/diffusion/absorbing.py``); it matters only with time conditioning on.
    """
    if num_steps > 0:
        t = torch.floor(t * num_steps) / num_steps + 1.0 / num_steps
    return -torch.log1p(-(1 - eps) * t)


def dit_log_probs(
    net: DIT, x_t: Tensor, sigma: Tensor, lam: Tensor | None = None
) -> Tensor:
    """The authors' model call: zero sigma unless time-conditioned, run, apply SUBS.

    Log-probabilities are float32 (also when the network ran under bf16 autocast;
    the authors normalise bf16 logits; docs/implementation-notes.md#low-precision-sampling).
    """
    if not net.config.time_conditioning:
        sigma = torch.zeros_like(sigma)
    logits = net(x_t, sigma, lam).float()
    return subs_log_probs(logits, x_t, net.config.mask_index)


class DiTDenoiser(NetDenoiser):
    """A :class:`DIT` as a suite denoiser ``(x_t, t, lam, cond) -> log-probs``.

    ``x_t`` (B, L) long with mask id 50257; ``t`` (B,) in [0, 1]; ``lam`` (B,) or
    None (a fresh U(0, 1) per row for a mixture network, i.e. one with
    ``use_lambda`` on); ``cond`` must be None. Returns SUBS log-probs
    (B, L, 50258) in float32. Inputs are moved to the network's device;
    ``train()`` / ``eval()`` reach the network, so the Di4C loss can run the
    stop-gradient branch in eval mode (:class:`~di4c.denoiser.NetDenoiser`).
    """

    def __init__(self, net: DIT, *, generator: torch.Generator | None = None):
        super().__init__(net, net.config.vocab_size, generator=generator)
        self.mask_index = net.config.mask_index

    @property
    def is_mixture(self) -> bool:
        return self.net.use_lambda

    def log_probs(
        self, x_t: Tensor, t: Tensor, lam: Tensor | None, cond: Tensor | None
    ) -> Tensor:
        if cond is not None:
            raise ValueError("cond must be None: the OpenWebText DiT is unconditional")
        return dit_log_probs(self.net, x_t, loglinear_sigma(t.float()), lam)
