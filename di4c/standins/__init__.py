"""Stand-ins for what a paper run downloads: the rehearsal scale's weights and data.

The rehearsal (``paper -> rehearsal``, ``workflows/config/rehearsal.yaml``) runs every
job of the paper DAGs on CPU, offline. What those jobs would download (published
teachers, released students, datasets, the judge, metric feature extractors) is
replaced by stand-ins written **in the real on-disk formats**, with the real network
classes and random weights, at the paths the rehearsal layer's local-copy keys name.

One builder per setting, ``build(cfg, out, seed) -> list[Path]``: ``cfg`` is the
setting's resolved rehearsal configuration (its ``standins`` section holds the
builder's options), ``out`` the folder to write into
(``results/{setting}/rehearsal/standins``); it returns the files it wrote. A builder
writes each file where the configuration's local-copy key for it points
(:func:`local_path`: the rehearsal layers set those keys to
``{results_dir}/<setting>/rehearsal/standins/...``), so the paper code reads it from
there. Every file is written atomically, and two builds with one seed are
byte-identical (:func:`generator`: one random stream per file, independent of the
order of writing). The step ``python -m di4c.cli.standins`` (rule ``make_standins``)
calls :func:`build` and writes the manifest.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import torch

from di4c.config import ConfigError

# setting name -> "module:function" of its stand-in builder
BUILDERS: dict[str, str] = {
    "cifar10": "di4c.standins.cifar10:build",
    "imagenet": "di4c.standins.imagenet:build",
    "openwebtext": "di4c.standins.openwebtext:build",
}


def build(setting: str, cfg: dict[str, Any], out: Path, seed: int = 0) -> list[Path]:
    """Write the stand-ins of ``setting`` under ``out``; return the files written."""
    if setting not in BUILDERS:
        raise ValueError(
            f"no stand-ins for setting {setting!r}; allowed: {sorted(BUILDERS)}"
        )
    module, fn = BUILDERS[setting].split(":")
    return getattr(importlib.import_module(module), fn)(cfg, Path(out), seed)


def local_path(value: str | None, out: Path, key: str) -> Path:
    """The stand-in file named by config key ``key`` (value ``value``), inside ``out``."""
    if not value:
        raise ConfigError(
            f"config key {key} is empty; at the rehearsal scale it names the stand-in "
            "to write under {results_dir}/<setting>/rehearsal/standins/"
        )
    path = Path(value)
    if not path.resolve().is_relative_to(Path(out).resolve()):
        raise ConfigError(
            f"config key {key} = {value!r} is outside the stand-ins folder {out}; point "
            "it into {results_dir}/<setting>/rehearsal/standins/"
        )
    return path


def generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator for the stand-in ``name`` under ``seed`` (one stream per file)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


__all__ = ["BUILDERS", "build", "generator", "local_path"]
