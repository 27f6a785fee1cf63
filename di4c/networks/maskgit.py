"""MaskGIT bidirectional transformer (teacher) and its Di4C mixture student.

A from-scratch implementation of the network the Di4C authors use for ImageNet
256 (paper Sec. 5.2; docs/algorithm.md#maskgit-transformer-teacher for the teacher,
docs/algorithm.md#lambda-token-in-maskgit for the student), written so that a
checkpoint produced by their code loads into it unchanged: parameter names,
shapes and ``state_dict`` order equal ``maskgit_imagenet256_teacher.json`` and
``maskgit_imagenet256_di4c_student.json`` (in ``tests/fixtures/manifests/``).

Layout (hidden size H, N = (img_size // 16)**2 image tokens, V token ids):

- token table ``tok_emb`` with V = codebook + 1 (mask) + nclass + 1 (dropped
  label) rows. The sequence is the N image tokens followed by one class token
  (``codebook + 1 + label``, or the dropped-label id ``codebook + 1 + nclass``);
- learned positions ``pos_emb`` (1, N + 1, H);
- ``first_layer``: LN, Dropout, Linear, GELU, LN, Dropout, Linear (LN eps 1e-12);
- ``transformer``: ``depth`` pre-LN blocks, each a torch ``MultiheadAttention``
  and a GELU MLP, both residual;
- ``last_layer``: LN, Dropout, Linear, GELU, LN;
- output head tied to the token table: logits = h @ E^T + ``bias`` (N + 1, V),
  of which only the first N positions and first ``codebook + 1`` classes (the
  codes and the mask class) are returned. The network has no time input.

Di4C student (``is_student=True``): lambda in [0, 1) is embedded as
sinusoidal(1000 * lambda, 128) -> ``latent_projection`` (Linear 128->512, GELU,
Linear 512->H), appended as one extra token after the positional embeddings
(it has no position of its own) and dropped again before the output head.
``latent_projection`` is not zero-initialised
(docs/implementation-notes.md#lambda-path-init).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from di4c.denoiser import NetDenoiser, check_ids, check_lambda
from di4c.samplers.confidence import UNCOND

__all__ = [
    "MaskGITConfig",
    "MaskGITDenoiser",
    "MaskTransformer",
    "PAPER_STUDENT_CONFIG",
    "PAPER_TEACHER_CONFIG",
    "cfg_pair_inputs",
    "sinusoidal_embedding",
]


@dataclass(frozen=True)
class MaskGITConfig:
    """Constructor configuration of :class:`MaskTransformer`.

    The defaults are the paper's ImageNet 256 network (the "Small" line of the
    authors' trainer: hidden 768, depth 24, 16 heads, MLP 3072, dropout 0.1,
    docs/algorithm.md#maskgit-transformer-teacher). ``img_size // 16`` tokens per side, as the authors derive
    the grid from the image size of a 16x-downsampling VQGAN.

    Attributes:
        img_size: image side in pixels; the token grid is ``img_size // 16``.
        hidden_dim, depth, heads, mlp_dim, dropout: transformer shape.
        codebook_size: number of VQGAN codes; the mask id equals this value.
        nclass: number of classes; label ``nclass`` means "no label" (dropped).
        is_student: add the Di4C lambda token (``latent_projection``).
        latent_feature_dim: sinusoidal lambda features (128 in the paper).
        lambda_scale: lambda is multiplied by this before the embedding (1000).
    """

    img_size: int = 256
    hidden_dim: int = 768
    codebook_size: int = 1024
    depth: int = 24
    heads: int = 16
    mlp_dim: int = 3072
    dropout: float = 0.1
    nclass: int = 1000
    is_student: bool = False
    latent_feature_dim: int = 128
    lambda_scale: float = 1000.0

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "codebook_size", "depth", "heads", "mlp_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MaskGITConfig.{name} must be >= 1")
        if self.nclass < 1:
            raise ValueError(f"MaskGITConfig.nclass must be >= 1; got {self.nclass}")
        if self.img_size < 16:
            raise ValueError(
                f"MaskGITConfig.img_size must be >= 16 (grid = img_size // 16); "
                f"got {self.img_size}"
            )
        if self.hidden_dim % self.heads:
            raise ValueError(
                f"MaskGITConfig.hidden_dim ({self.hidden_dim}) must be divisible by "
                f"heads ({self.heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"MaskGITConfig.dropout must be in [0, 1); got {self.dropout}"
            )
        if self.latent_feature_dim < 4:
            raise ValueError(
                f"MaskGITConfig.latent_feature_dim must be >= 4; got "
                f"{self.latent_feature_dim}"
            )

    # ---- derived quantities -------------------------------------------------
    @property
    def grid(self) -> int:
        """Tokens per image side (16 for 256 px)."""
        return self.img_size // 16

    @property
    def num_tokens(self) -> int:
        """Image tokens per sample, D (256 in the paper)."""
        return self.grid * self.grid

    @property
    def mask_id(self) -> int:
        """Id of the mask token in the image-token alphabet."""
        return self.codebook_size

    @property
    def num_out_classes(self) -> int:
        """Classes of the returned logits: codes plus the mask class (1025)."""
        return self.codebook_size + 1

    @property
    def vocab_size(self) -> int:
        """Rows of the token table: codes, mask, classes, dropped label (2026)."""
        return self.codebook_size + 1 + self.nclass + 1

    @property
    def class_offset(self) -> int:
        """Token id of class label 0."""
        return self.codebook_size + 1

    @property
    def null_label(self) -> int:
        """Label value meaning "unconditional"; it maps to the dropped-label token."""
        return self.nclass

    def as_teacher(self) -> MaskGITConfig:
        return replace(self, is_student=False)

    def as_student(self) -> MaskGITConfig:
        return replace(self, is_student=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskGITConfig:
        """Build from a dict such as a manifest's ``config`` (unknown keys rejected)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"MaskGITConfig: unknown keys {unknown}; known: {sorted(known)}"
            )
        return cls(**d)


PAPER_TEACHER_CONFIG = MaskGITConfig()
PAPER_STUDENT_CONFIG = MaskGITConfig(is_student=True)


def sinusoidal_embedding(
    values: Tensor, dim: int, max_period: float = 10000.0
) -> Tensor:
    """Transformer/DDPM sinusoidal features of a (B,) tensor -> (B, dim) float32.

    Frequencies ``max_period ** (-k / (dim // 2 - 1))`` for k = 0..dim//2-1; the
    output is ``[sin(v f) | cos(v f)]``, zero-padded by one column if ``dim`` is
    odd. This is the student's lambda embedding (called with 1000 * lambda;
    docs/algorithm.md#lambda-token-in-maskgit).
    """
    if values.dim() != 1:
        raise ValueError(f"values must have shape (B,); got {tuple(values.shape)}")
    half = dim // 2
    if half < 2:
        raise ValueError(f"dim must be >= 4; got {dim}")
    step = math.log(max_period) / (half - 1)
    freqs = torch.exp(
        torch.arange(half, dtype=torch.float32, device=values.device) * -step
    )
    angles = values.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class _PreNorm(nn.Module):
    """``fn(LayerNorm(x))``; the residual is added by the caller."""

    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class _SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention (packed in-projection, with biases)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.mha = nn.MultiheadAttention(
            dim, num_heads=heads, dropout=dropout, bias=True, batch_first=True
        )

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.mha(x, x, x, need_weights=False)
        return out


class _MLP(nn.Module):
    """Linear, GELU, Dropout, Linear, Dropout (keys ``net.0`` and ``net.3``)."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _EncoderLayer(nn.ModuleList):
    """One pre-LN block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``.

    A ModuleList so that the two halves are keyed ``0`` and ``1``.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__(
            [
                _PreNorm(dim, _SelfAttention(dim, heads, dropout)),
                _PreNorm(dim, _MLP(dim, mlp_dim, dropout)),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        attn, mlp = self[0], self[1]
        x = x + attn(x)
        return x + mlp(x)


class _Encoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            [_EncoderLayer(dim, heads, mlp_dim, dropout) for _ in range(depth)]
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MaskTransformer(nn.Module):
    """MaskGIT x0-predictor; a Di4C mixture student when ``config.is_student``.

    Call as ``net(img_tokens, labels, drop_label=None, lam=None)``; see
    :meth:`forward`. Build on ``torch.device("meta")`` (``with torch.device(...)``)
    to inspect the parameter layout without allocating memory.
    """

    def __init__(self, config: MaskGITConfig | None = None):
        super().__init__()
        cfg = config if config is not None else PAPER_TEACHER_CONFIG
        if not isinstance(cfg, MaskGITConfig):
            raise TypeError(f"config must be a MaskGITConfig; got {type(cfg).__name__}")
        self.config = cfg
        h = cfg.hidden_dim

        self.tok_emb = nn.Embedding(cfg.vocab_size, h)
        # Own parameters are registered in this order (state_dict: pos_emb, bias).
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.num_tokens + 1, h))
        nn.init.trunc_normal_(self.pos_emb, 0.0, 0.02)
        self.first_layer = nn.Sequential(
            nn.LayerNorm(h, eps=1e-12),
            nn.Dropout(cfg.dropout),
            nn.Linear(h, h),
            nn.GELU(),
            nn.LayerNorm(h, eps=1e-12),
            nn.Dropout(cfg.dropout),
            nn.Linear(h, h),
        )
        self.transformer = _Encoder(h, cfg.depth, cfg.heads, cfg.mlp_dim, cfg.dropout)
        self.last_layer = nn.Sequential(
            nn.LayerNorm(h, eps=1e-12),
            nn.Dropout(cfg.dropout),
            nn.Linear(h, h),
            nn.GELU(),
            nn.LayerNorm(h, eps=1e-12),
        )
        self.bias = nn.Parameter(torch.zeros(cfg.num_tokens + 1, cfg.vocab_size))
        if cfg.is_student:
            f = cfg.latent_feature_dim
            self.latent_projection = nn.Sequential(
                nn.Linear(f, 4 * f), nn.GELU(), nn.Linear(4 * f, h)
            )

    @property
    def is_student(self) -> bool:
        return self.config.is_student

    def lambda_token(self, lam: Tensor) -> Tensor:
        """Embed lambda (B,) or (B, 1) into one hidden-size token (B, H)."""
        if not self.config.is_student:
            raise ValueError(
                "lam was given but this MaskTransformer has no latent_projection "
                "(config.is_student=False): only a Di4C student takes lambda"
            )
        if lam.dim() == 2 and lam.shape[1] == 1:
            lam = lam[:, 0]
        if lam.dim() != 1:
            raise ValueError(
                f"lam must have shape (B,) or (B, 1); got {tuple(lam.shape)}"
            )
        feats = sinusoidal_embedding(
            lam * self.config.lambda_scale, self.config.latent_feature_dim
        )
        return self.latent_projection(feats)

    def forward(
        self,
        img_tokens: Tensor,
        labels: Tensor,
        drop_label: Tensor | None = None,
        lam: Tensor | None = None,
    ) -> Tensor:
        """Logits of p(x0 | x_t) over codes and the mask class.

        Args:
            img_tokens: LongTensor (B, grid, grid) or (B, N) of code ids, the
                mask id ``codebook_size`` marking masked positions.
            labels: LongTensor (B,) (or (B, 1)) class labels in [0, nclass];
                ``nclass`` itself selects the dropped-label token.
            drop_label: optional BoolTensor (B,): True replaces the label by the
                dropped-label token (classifier-free guidance). None drops nothing.
                (In the authors' code every call passes it explicitly.)
            lam: optional FloatTensor (B,) or (B, 1), the Di4C mixture variable.
                Only a student accepts it; a student called without it runs
                without the lambda token, as the authors' network does.

        Returns:
            FloatTensor (B, N, codebook_size + 1): position n, class v.
        """
        cfg = self.config
        if img_tokens.dim() < 2:
            raise ValueError(
                f"img_tokens must have shape (B, grid, grid) or (B, N); got "
                f"{tuple(img_tokens.shape)}"
            )
        b = img_tokens.shape[0]
        tokens = img_tokens.reshape(b, -1)
        n = cfg.num_tokens
        if tokens.shape[1] != n:
            raise ValueError(
                f"img_tokens must hold {n} tokens per sample ({cfg.grid}x{cfg.grid}); "
                f"got shape {tuple(img_tokens.shape)}"
            )
        if labels.numel() != b:
            raise ValueError(
                f"labels must have shape (B,) = ({b},); got {tuple(labels.shape)}"
            )
        check_ids(
            img_tokens, "img_tokens", cfg.codebook_size + 1, "codes; the mask id is "
            f"{cfg.mask_id}"
        )  # fmt: skip
        check_ids(labels, "labels", cfg.nclass + 1, f"{cfg.nclass} = no label")
        cls_tok = labels.reshape(b, 1).long() + cfg.class_offset
        if drop_label is not None:
            if drop_label.numel() != b:
                raise ValueError(
                    f"drop_label must have shape (B,) = ({b},); got "
                    f"{tuple(drop_label.shape)}"
                )
            dropped = torch.full_like(cls_tok, cfg.class_offset + cfg.nclass)
            cls_tok = torch.where(drop_label.reshape(b, 1).bool(), dropped, cls_tok)

        x = self.tok_emb(torch.cat([tokens.long(), cls_tok], dim=1)) + self.pos_emb
        if lam is not None:
            if lam.shape[0] != b:
                raise ValueError(f"lam must have B = {b} rows; got {tuple(lam.shape)}")
            check_lambda(lam)
            x = torch.cat([x, self.lambda_token(lam)[:, None, :]], dim=1)

        x = self.last_layer(self.transformer(self.first_layer(x)))

        # Tied output head. Only the returned block (first N positions, first
        # codebook + 1 classes) is computed: each entry is the same dot product
        # plus bias as in the full (N + 1) x V product the authors slice.
        c = cfg.num_out_classes
        return x[:, :n] @ self.tok_emb.weight[:c].t() + self.bias[:n, :c]


# ------------------------------------------------------------------------------
# Suite denoiser adapter
# ------------------------------------------------------------------------------


def cfg_pair_inputs(
    x_t: Tensor, cond: Tensor, lam: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Batched inputs for one classifier-free-guidance pass.

    Returns ``(x, labels, drop, lam)`` of batch 2B: the conditional half first
    (labels kept), then the unconditional half (labels dropped), with the SAME
    lambda in both halves, as the authors' sampler.
    """
    b = x_t.shape[0]
    drop = torch.zeros(2 * b, dtype=torch.bool, device=x_t.device)
    drop[b:] = True
    lam2 = None if lam is None else torch.cat([lam, lam], dim=0)
    return torch.cat([x_t, x_t], 0), torch.cat([cond, cond], 0), drop, lam2


class MaskGITDenoiser(NetDenoiser):
    """A :class:`MaskTransformer` in the suite's denoiser convention.

    ``den(x_t, t, lam=None, cond=None) -> log p(x0^d = v | x_t)`` with

    - ``x_t``: LongTensor (B, 256) of code ids, the mask id ``codebook_size``
      (1024) marking masked positions;
    - ``t``: (B,) diffusion time, checked for shape but UNUSED: the MaskGIT
      network has no time input (maskgit-pytorch/Network/transformer.py);
    - ``lam``: (B,) lambda for a Di4C student (drawn U(0, 1) per sample when
      None, from ``generator`` if given); ignored by a teacher;
    - ``cond``: LongTensor (B,) class labels in [0, nclass]; the value
      ``nclass`` (1000, :attr:`null_label`) selects the dropped-label token,
      i.e. the unconditional model; None means unconditional for all samples.

    Returns float32 log-probabilities of shape (B, 256, 1025). The class axis
    has 1025 entries: the 1024 codes plus the mask class (index 1024), normalised
    jointly over all 1025. This is the distribution the authors' Di4C loss
    (KLs and log-likelihoods over 1025 classes incl. the mask class) and their
    sampler use; the mask class gets non-zero probability and the authors
    clamp final codes to [0, 1023] before decoding. ``train()`` / ``eval()``
    reach the network (:class:`~di4c.denoiser.NetDenoiser`).
    """

    def __init__(
        self, net: MaskTransformer, *, generator: torch.Generator | None = None
    ):
        if not isinstance(net, MaskTransformer):
            raise TypeError(f"net must be a MaskTransformer; got {type(net).__name__}")
        super().__init__(net, net.config.num_out_classes, generator=generator)
        cfg = net.config
        self.mask_id = cfg.mask_id
        self.null_label = cfg.null_label
        self.num_tokens = cfg.num_tokens

    @property
    def is_mixture(self) -> bool:
        return self.net.config.is_student

    def _lam(self, x_t: Tensor, lam: Tensor | None) -> Tensor | None:
        return self.lambda_for(x_t.shape[0], lam, x_t.device)

    def _labels(self, x_t: Tensor, cond: Tensor | None) -> Tensor:
        b = x_t.shape[0]
        if cond is None:
            return torch.full(
                (b,), self.null_label, dtype=torch.long, device=x_t.device
            )
        if cond.shape != (b,):
            raise ValueError(
                f"cond must have shape (B,) = ({b},); got {tuple(cond.shape)}"
            )
        if cond.dtype.is_floating_point or cond.dtype.is_complex:
            raise ValueError(f"cond must hold integer class labels; got {cond.dtype}")
        cond = torch.where(cond == UNCOND, self.null_label, cond)
        if bool(((cond < 0) | (cond > self.null_label)).any()):
            raise ValueError(
                f"cond labels must lie in [0, {self.null_label}] ({self.null_label} "
                f"or {UNCOND} = unconditional)"
            )
        return cond.long()

    def logits(
        self, x_t: Tensor, lam: Tensor | None = None, cond: Tensor | None = None
    ) -> Tensor:
        """Raw network logits (B, 256, 1025); ``lam`` drawn for a student if None."""
        labels = self._labels(x_t, cond)
        return self.net(x_t, labels, labels == self.null_label, self._lam(x_t, lam))

    def log_probs(
        self, x_t: Tensor, t: Tensor, lam: Tensor | None, cond: Tensor | None
    ) -> Tensor:
        return F.log_softmax(self.logits(x_t, lam, cond).float(), dim=-1)

    def cfg_logits(
        self, x_t: Tensor, cond: Tensor, lam: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Conditional and unconditional logits from ONE batched pass.

        For a student the same lambda (drawn once if None) is used in both
        halves, as the authors' sampler does.
        """
        labels = self._labels(x_t, cond)
        x2, y2, drop2, lam2 = cfg_pair_inputs(x_t, labels, self._lam(x_t, lam))
        out = self.net(x2, y2, drop2, lam2)
        return out[: x_t.shape[0]], out[x_t.shape[0] :]

    def guided_logits(
        self, x_t: Tensor, cond: Tensor, w: float | Tensor, lam: Tensor | None = None
    ) -> Tensor:
        """``(1 + w) * l_cond - w * l_uncond``; ``w`` a float or (B,) tensor."""
        lc, lu = self.cfg_logits(x_t, cond, lam)
        if isinstance(w, Tensor):
            w = w.reshape(-1, 1, 1).to(lc.dtype)
        return (1 + w) * lc - w * lu
