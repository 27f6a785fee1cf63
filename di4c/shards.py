"""Resumable work in seeded shards: a long step that a SIGKILL costs at most one shard.

A step that makes one big output (``samples/{cell}.pt``: 50,000 samples at paper
scale, hours of GPU) computes it in shards whose content depends only on their
range and the run's inputs (sample i uses seed ``sample.seed + i``). Each finished
shard is written atomically (:func:`di4c.artifacts.atomic_path`) into a work folder
next to the output, ``<output>.shards/``, with the run key the shards belong to. A
rerun of the same command keeps the finished shards and computes only the missing
ones, so its output is bit-identical to an uninterrupted run's; a work folder whose
key differs (left by another configuration, other weights) is discarded. The step
assembles the output from the shards, writes it atomically and removes the folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from di4c.artifacts import save_torch, write_json
from di4c.checkpoints import CheckpointError, load_container

KEY_NAME = "key.json"


def shard_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """``(start, count)`` of the shards of ``n`` items, ``size`` per shard (the last may be short)."""
    if n < 1 or size < 1:
        raise ValueError(f"need n >= 1 and shard size >= 1; got {n}, {size}")
    return [(start, min(size, n - start)) for start in range(0, n, size)]


def work_dir(out: str | Path) -> Path:
    """The shard folder of an output: ``<output>.shards`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


class ShardStore:
    """The finished shards of one output, valid for one run key."""

    def __init__(self, out: str | Path, key: dict, label: str = "shards"):
        self.dir = work_dir(out)
        self.label = label
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        key_file = self.dir / KEY_NAME
        if self.dir.exists():
            try:
                old = json.loads(key_file.read_text())
            except (OSError, ValueError):
                old = None
            if old != self.key:
                print(
                    f"[{label}] {self.dir} holds shards of a different run; "
                    "starting over",
                    flush=True,
                )
                shutil.rmtree(self.dir)
        if not key_file.is_file():
            write_json(key_file, self.key)

    def path(self, start: int, count: int) -> Path:
        return self.dir / f"{start:09d}-{count}.pt"

    def load(self, start: int, count: int) -> Any | None:
        """The shard ``(start, count)``, or None when it is not done (or unreadable)."""
        p = self.path(start, count)
        if not p.is_file():
            return None
        try:
            return load_container(p, f"{self.label} shard")
        except CheckpointError as e:  # cannot happen with atomic writes; recompute
            print(f"[{self.label}] {e}; recomputing it", flush=True)
            p.unlink()
            return None

    def save(self, start: int, count: int, obj: Any) -> Path:
        return save_torch(self.path(start, count), obj)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
