"""Shared CLI plumbing: dataclass <-> argparse flags, logging to a file, thread count.

Every rule calls ``python -m di4c.cli.<step>`` with dashed flags generated from a
config section; the same command runs by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path


def _parse_bool(v: str) -> bool:
    low = v.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false); got {v!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--field-name`` flag per dataclass field, typed from its default."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = (
            f.default if f.default is not dataclasses.MISSING else f.default_factory()
        )
        hint = hints[f.name]
        if isinstance(default, tuple):
            elem = type(default[0]) if default else str
            parser.add_argument(
                flag,
                nargs="+",
                type=elem,
                default=None,
                help=f"default {list(default)}",
            )
        elif hint is bool or isinstance(default, bool):
            parser.add_argument(
                flag, type=_parse_bool, default=None, help=f"default {default}"
            )
        else:
            parser.add_argument(
                flag, type=type(default), default=None, help=f"default {default}"
            )


def dataclass_from_args(cls, args: argparse.Namespace):
    """Build ``cls`` from the flags that were given; the rest keep their defaults."""
    kw = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            kw[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


class Tee:
    """Duplicate a stream into a log file (every rule writes a log)."""

    def __init__(self, stream, path: Path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, s):
        self.stream.write(s)
        self.file.write(s)

    def flush(self):
        self.stream.flush()
        self.file.flush()


def setup_run(log: str | None, threads: int | None) -> None:
    """Send stdout/stderr also to ``log`` and pin torch's intra-op threads."""
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        sys.stdout = Tee(sys.stdout, Path(log))
        sys.stderr = Tee(sys.stderr, Path(log))
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log", default=None, help="also append all output to this file"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (match the rule's threads)",
    )
