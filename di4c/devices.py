"""One device picker for every step: ``auto``, ``cpu``, ``cuda`` or ``cuda:<i>``."""

from __future__ import annotations

import re

import torch

from di4c.config import ConfigError

__all__ = ["resolve_device"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a ``--device`` / config value.

        ``"auto"``: CUDA when available, else the CPU. ``"cpu"``, ``"cuda"`` and
        ``"cuda:<i>"`` are taken as given, after checking that the CUDA device
        exists. Anything else raises a :class:`~di4c.config.ConfigError` (a ValueError)
    that lists the accepted values.
    """
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<i>'; got {name!r}"
        )
    value = name.strip().lower()
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    m = _CUDA.fullmatch(value)
    if m is None:
        raise ConfigError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<i>'; got {name!r}"
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} requested but CUDA is not available on this machine; "
            "use 'cpu' or 'auto'"
        )
    if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r} requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s) (cuda:0 .. "
            f"cuda:{torch.cuda.device_count() - 1})"
        )
    return torch.device(value)
