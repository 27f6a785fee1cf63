"""Reading the pipeline's data files: one check for every step that reads one.

Every step that trains or scores on the prepared data (teacher, classifier, VQ,
judge, distill, sample, reference, score) reads it through :func:`load_data_file`,
which refuses a missing, unreadable or empty file up front, naming the file and the
step (and rule) that builds it, instead of a raw torch error deep inside the step.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch


class DataFileError(ValueError):
    """A data file is unreadable, incomplete or holds no examples; names the file
    and the step that builds it."""


# file name -> the step that writes it and its rule
BUILDERS = {
    "data.pt": ("python -m di4c.cli.data", "prepare_data"),
    "tokens.pt": ("python -m di4c.cli.encode", "encode_images"),
}


def load_data_file(
    path: str | os.PathLike, what: str = "data", keys: Iterable[str] = ()
) -> dict:
    """The dict a data step saved at ``path``, checked: it exists, loads as weights-only
    data, holds ``keys``, and none of its tensors is empty."""
    path = Path(path)
    step, rule = BUILDERS.get(path.name, BUILDERS["data.pt"])
    build = f"build it with `{step}` (rule {rule})"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {what} file; {build}")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, or not a torch file at all
        raise DataFileError(
            f"{path}: not a readable {what} file ({type(e).__name__}); delete it and "
            f"{build}"
        ) from e
    missing = sorted(set(keys) - set(d)) if isinstance(d, dict) else sorted(keys)
    if not isinstance(d, dict) or missing:
        raise DataFileError(
            f"{path}: not a {what} file (missing {missing}); delete it and {build}"
        )
    empty = [k for k, v in d.items() if torch.is_tensor(v) and v.numel() == 0]
    if empty:
        shapes = ", ".join(f"{k} {tuple(d[k].shape)}" for k in empty)
        raise DataFileError(
            f"{path}: empty {what} ({shapes}: no examples); check the sizes in the "
            f"config's data section, then delete it and {build}"
        )
    return d
