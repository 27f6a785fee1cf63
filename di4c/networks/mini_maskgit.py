"""Mini MaskGIT for the ImageNet mini twin: the paper network family at CPU size.

The ImageNet setting of the paper (Sec. 5.2; docs/algorithm.md#maskgit-transformer-teacher) uses the
MaskGIT-pytorch bidirectional transformer on a 16x16 grid of VQGAN codes, with
a class token (or the dropped-label token for classifier-free guidance) appended
after the image tokens, and the Di4C student adds lambda as one more token
(sinusoidal(1000 lambda, 128) -> ``latent_projection`` MLP, not zero-initialised).

The mini twin does not re-implement that network: it builds the very same
:class:`di4c.networks.maskgit.MaskTransformer` at a small size, so the class
token, the dropped-label token, the tied output head with its per-position bias,
the absence of a time input and the lambda token are the paper code path, and
the mini checkpoints use the authors' transformer ``.pth`` container
(:func:`di4c.teachers.maskgit.save_transformer_checkpoint`, loaders included).

:class:`MiniMaskGITConfig` speaks in tokens (``grid`` x ``grid`` tokens over a
``codebook_size``-letter alphabet; mask id = ``codebook_size``) and maps to a
:class:`MaskGITConfig`, whose token grid is derived from a notional VQGAN image
size of ``16 * grid`` pixels (the f16 convention of the paper network).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from di4c.networks.maskgit import MaskGITConfig, MaskTransformer

__all__ = ["MiniMaskGITConfig", "build_mini_maskgit"]


@dataclass(frozen=True)
class MiniMaskGITConfig:
    """Size of a mini MaskGIT (teacher, or student with ``is_student``).

    Attributes:
        grid: tokens per image side (D = grid**2 tokens per sample).
        codebook_size: token alphabet (small-VQ codes or pixel levels); the
            mask token is ``codebook_size``.
        nclass: class labels; label ``nclass`` is the dropped (unconditional) label.
        hidden_dim, depth, heads, mlp_dim, dropout: transformer shape (the paper
            network: 768, 24, 16, 3072, 0.1).
        latent_feature_dim: sinusoidal lambda features (paper: 128); the lambda
            MLP is ``Linear(f, 4f), GELU, Linear(4f, hidden_dim)``.
        lambda_scale: lambda is multiplied by this before the embedding (1000).
    """

    grid: int = 7
    codebook_size: int = 64
    nclass: int = 10
    hidden_dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 512
    dropout: float = 0.1
    latent_feature_dim: int = 128
    lambda_scale: float = 1000.0

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise ValueError(f"MiniMaskGITConfig.grid must be >= 1; got {self.grid}")
        if self.codebook_size < 2:
            raise ValueError(
                "MiniMaskGITConfig.codebook_size must be >= 2; got "
                f"{self.codebook_size}"
            )
        # the remaining checks are MaskGITConfig's own (names the field on error)
        self.to_maskgit()

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    @property
    def mask_id(self) -> int:
        return self.codebook_size

    def to_maskgit(self, is_student: bool = False) -> MaskGITConfig:
        """The paper-network config of this size (``img_size = 16 * grid``)."""
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "grid"}
        return MaskGITConfig(img_size=16 * self.grid, is_student=is_student, **kw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MiniMaskGITConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(
                f"MiniMaskGITConfig: unknown keys {unknown}; known: {sorted(known)}"
            )
        return cls(**d)


def build_mini_maskgit(
    config: MiniMaskGITConfig, is_student: bool = False
) -> MaskTransformer:
    """A fresh (randomly initialised) mini teacher, or student with the lambda token."""
    return MaskTransformer(config.to_maskgit(is_student))
