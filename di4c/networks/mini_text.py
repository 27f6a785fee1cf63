"""Small text networks of the OpenWebText mini twin (paper Sec. 5.3 in miniature).

- **Denoiser**: the paper's own dit-orig architecture (:class:`~di4c.networks.dit.DIT`)
  at a small width: bidirectional attention with rotary positions, adaLN blocks,
  time-agnostic (sigma zeroed, as the SDTT teachers), SUBS parameterisation, and
  for the Di4C student the extra lambda token (sinusoid of 1000 lambda ->
  ``latent_projection`` -> token L+1, no rotary on it; docs/algorithm.md#lambda-token-in-the-dit). Over a
  vocabulary of S characters the network has S + 1 classes, the mask id is S.
- **Judge**: a small causal LM in the GPT-2 architecture (``transformers``
  ``GPT2LMHeadModel``), so Gen PPL runs through exactly the code path that scores
  paper samples with GPT-2 Large.

The suite denoiser of either network is :class:`~di4c.networks.dit.DiTDenoiser`.
"""

from __future__ import annotations

import torch
from torch import nn

from di4c.networks.dit import DIT, DiTConfig


def mini_denoiser_config(
    num_classes: int,
    length: int,
    hidden: int = 128,
    n_blocks: int = 4,
    n_heads: int = 4,
    cond_dim: int = 64,
    dropout: float = 0.0,
    is_di4c: bool = False,
) -> DiTConfig:
    """DiTConfig of a small dit-orig over ``num_classes`` tokens (+ the mask)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    return DiTConfig(
        hidden_size=hidden,
        cond_dim=cond_dim,
        n_blocks=n_blocks,
        n_heads=n_heads,
        dropout=dropout,
        vocab_size=num_classes + 1,
        length=length,
        is_di4c=is_di4c,
    )


def student_from(source: DIT, seed: int = 0) -> DIT:
    """A Di4C student (lambda token on) holding ``source``'s weights.

    A product source gets a fresh random ``latent_projection`` drawn with
    ``seed`` (the lambda token is live from step 0,
    docs/implementation-notes.md#lambda-path-init); a
    mixture source (round 1 of di4c^2) is copied whole.
    """
    cfg = DiTConfig(**{**source.config.to_dict(), "is_di4c": True})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = DIT(cfg)
    missing, unexpected = net.load_state_dict(source.state_dict(), strict=False)
    if unexpected or any(not k.startswith("latent_projection.") for k in missing):
        raise ValueError(
            f"source does not match the student: missing {missing}, unexpected {unexpected}"
        )
    net.use_lambda = True
    return net


def judge_config(
    vocab_size: int,
    length: int,
    n_embd: int = 128,
    n_layer: int = 4,
    n_head: int = 4,
    dropout: float = 0.0,
):
    """GPT2Config of the mini judge (no BOS/EOS ids: samples are scored as they are)."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=length,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def build_judge(cfg, seed: int = 0) -> nn.Module:
    """A randomly initialised ``GPT2LMHeadModel`` for ``cfg`` (seeded)."""
    from transformers import GPT2LMHeadModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(cfg)
