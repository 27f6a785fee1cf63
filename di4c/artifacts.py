"""Atomic writes, checksums and ``meta.json`` provenance for every generated artifact.

Every file the suite writes goes to a temporary sibling first and is renamed into
place, so a killed job never leaves a half-written file at a final path. Every
artifact gets a sidecar ``<name>.meta.json`` (or ``meta.json`` in its folder)
recording the config, git commit, input checksums, seeds, wall time and device.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str | None = None, keep_name: bool = False
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    ``suffix`` defaults to the final suffix so libraries that sniff extensions
    (matplotlib, torch) see the right one. ``keep_name``: the temporary file has
    ``path``'s own name, in a private sibling folder, for writers that record the
    file name in the file (``torch.save`` names its zip records after the file), so
    two writes of the same object are byte-identical.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if keep_name:
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        tmp_path = folder / path.name
    else:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.",
            suffix=suffix or path.suffix + ".tmp",
            dir=path.parent,
        )
        os.close(fd)
        tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    finally:
        if keep_name:
            with contextlib.suppress(OSError):
                tmp_path.parent.rmdir()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy/torch scalars allowed)."""
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n"
    )


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` atomically (byte-identical for identical objects)."""
    import torch

    with atomic_path(path, keep_name=True) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_commit(repo_dir: str | os.PathLike | None = None) -> str:
    """Current git commit (with ``-dirty`` when the work tree has changes), or ``unknown``."""
    cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_description() -> str:
    """A short description of the compute device (CPU model or CUDA device name)."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        threads = None
    return f"cpu:{platform.processor() or platform.machine()} threads={threads}"


def provenance(
    *,
    config: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    seeds: Any = None,
    wall_time_s: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the provenance record stored in every ``meta.json``.

    ``inputs`` maps a role name to a file path; each is recorded with its sha256.
    """
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "device": device_description(),
        "config": dict(config or {}),
        "inputs": {
            name: {"path": str(p), "sha256": sha256_file(p)}
            for name, p in (inputs or {}).items()
        },
        "seeds": seeds,
        "wall_time_s": wall_time_s,
    }
    if extra:
        record.update(extra)
    return record


def meta_path_for(path: str | os.PathLike) -> Path:
    """Sidecar path ``foo.csv -> foo.meta.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


def write_meta(path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write the provenance sidecar for artifact ``path`` (see :func:`provenance`)."""
    return write_json(meta_path_for(path), provenance(**kwargs))
