"""Stand-ins for what a paper run downloads: the rehearsal scale's weights and data.

The rehearsal (``paper -> rehearsal``, ``workflows/config/rehearsal.yaml``) runs every
job of the paper DAGs on CPU, offline. What those jobs would download (published
teachers, released students, datasets, the judge, metric feature extractors) is
replaced by stand-ins written **in the real on-disk formats**, with the real network
classes and random weights, at the paths the rehearsal layer's local-copy keys name.

One builder per setting, ``build(cfg, out, seed) -> list[Path]``: ``cfg`` is the
setting's resolved rehearsal configuration (its ``standins`` section holds the
builder's options), ``out`` the folder to write into
(``results/{setting}/rehearsal/standins``); it returns the files it wrote. Every file
is written atomically, and two builds with one seed are byte-identical.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

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


__all__ = ["BUILDERS", "build"]
