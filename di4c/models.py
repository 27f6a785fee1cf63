"""Model cards: one ``model.json`` per model folder of a run (``results/{setting}/{scale}/models/{name}/``).

Every model the DAG uses (a published teacher, a teacher or tokenizer or judge the
DAG trains, a distilled or released student) is a folder holding its weights in
the family's published container (the tauLDR checkpoint dict, the MaskGIT
``.pth`` / VQGAN ``last.ckpt`` + ``model.yaml``, the SDTT Lightning ``.ckpt`` or HF
``model.safetensors`` + ``config.json``) and a card naming the files with their
sha256, the network configuration and where the model came from. Downloads stay in
the cache; their card names the cached path. Rules depend on the card only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from di4c.artifacts import sha256_file, write_json

CARD_NAME = "model.json"
KINDS = ("product", "mixture", "tokenizer", "judge", "classifier")


class ModelCardError(FileNotFoundError):
    """A model card is missing, unreadable, or names a file that is gone."""


@dataclass(frozen=True)
class ModelCard:
    name: str  # the model's name in the config (teacher, student, di4c-d, vq, ...)
    setting: str
    kind: str  # one of KINDS
    source: str  # published | released | train | distill
    files: dict[str, str]  # role -> path (relative to the card's folder, or absolute)
    sha256: dict[str, str] = field(default_factory=dict)
    network: dict | None = None  # network configuration (None: the paper network)
    extra: dict = field(default_factory=dict)
    folder: str = ""  # set when read; not stored

    def path(self, role: str = "weights") -> Path:
        """Absolute path of the file with ``role``; a clear error if it is gone."""
        if role not in self.files:
            raise ModelCardError(
                f"model {self.name!r} has no {role!r} file (has {sorted(self.files)})"
            )
        p = Path(self.files[role])
        p = p if p.is_absolute() else Path(self.folder) / p
        if not p.exists():
            raise ModelCardError(
                f"{p}: file of model {self.name!r} is missing (cache cleared?); delete "
                f"{Path(self.folder) / CARD_NAME} and rerun the rule that makes it"
            )
        return p

    @property
    def is_mixture(self) -> bool:
        return self.kind == "mixture"


def write_card(folder: str | os.PathLike, card: ModelCard, **meta: Any) -> Path:
    """Write ``<folder>/model.json`` (sha256 of every file filled in) atomically."""
    folder = Path(folder)
    if card.kind not in KINDS:
        raise ValueError(f"unknown model kind {card.kind!r}; allowed: {list(KINDS)}")
    sums = dict(card.sha256)
    for role, rel in card.files.items():
        p = Path(rel) if Path(rel).is_absolute() else folder / rel
        sums.setdefault(role, sha256_file(p))
    record = {k: v for k, v in asdict(card).items() if k != "folder"}
    record["sha256"] = sums
    record.update(meta)
    return write_json(folder / CARD_NAME, record)


def read_card(path: str | os.PathLike) -> ModelCard:
    """A card from ``model.json`` (or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / CARD_NAME
    if not p.is_file():
        raise ModelCardError(f"{p}: no model card; run the rule that builds this model")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ModelCardError(f"{p}: not a model card ({e})") from e
    known = set(ModelCard.__dataclass_fields__) - {"folder"}
    return ModelCard(
        **{k: v for k, v in d.items() if k in known}, folder=str(p.parent.resolve())
    )
