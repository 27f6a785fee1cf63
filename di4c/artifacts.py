"""Atomic writes, checksums and ``meta.json`` provenance for every generated artifact.

Every file the suite writes goes to a temporary sibling first and is renamed into
place, so a killed job never leaves a half-written file at a final path; a write the
disk refuses (full, over quota, read-only) is one :class:`WriteError` naming the path.
Every
artifact gets a sidecar ``<name>.meta.json`` (or ``meta.json`` in its folder)
recording the config, git commit, input checksums, seeds, wall time and device.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class WriteError(OSError):
    """An artifact could not be written (full disk, quota, permissions); nothing
    half-written is left at its path. The message names the path and the fix."""


# errnos of a write the storage refused, and what to do about each
_FULL = "no space left? ({free}); free some space and rerun"
_STORAGE_ERRNOS = {
    errno.ENOSPC: _FULL,
    getattr(errno, "EDQUOT", errno.ENOSPC): _FULL,
    errno.EFBIG: _FULL,
    errno.EIO: "the disk reported an I/O error; check it and rerun",
    errno.EROFS: "the file system is read-only; write the results elsewhere",
    errno.EACCES: "check the folder's permissions and rerun",
    errno.EPERM: "check the folder's permissions and rerun",
}


def _free_space(path: Path) -> str:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free there"
    except OSError:
        return "free space unknown"


def write_error(path: str | os.PathLike, e: BaseException) -> WriteError:
    """The :class:`WriteError` for a failed write of ``path``: the storage's reason
    and its fix (a writer's own error, e.g. torch's stream writer, reads as a full
    disk, the usual cause)."""
    path = Path(path)
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror[0].lower() + e.strerror[1:]
        fix = _STORAGE_ERRNOS.get(e.errno, _FULL)
    else:
        first = str(e).strip().splitlines()[:1]
        reason = f"{type(e).__name__}: {first[0] if first else 'no message'}"
        fix = _FULL
    return WriteError(
        f"could not write {path}: {reason}; {fix.format(free=_free_space(path))} "
        "(nothing half-written was left there)"
    )


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str | None = None, keep_name: bool = False
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched; an
    error of the storage (a full disk, a quota, permissions) becomes a
    :class:`WriteError`. ``suffix`` defaults to the final suffix so libraries that
    sniff extensions (matplotlib, torch) see the right one. ``keep_name``: the
    temporary file has ``path``'s own name, in a private sibling folder, for writers
    that record the file name in the file (``torch.save`` names its zip records
    after the file), so two writes of the same object are byte-identical.
    """
    path = Path(path)
    try:
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
    except OSError as e:
        raise write_error(path, e) from e
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as e:
            raise write_error(path, e) from e
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        storage = isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS
        if storage and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise
    finally:
        if keep_name:
            with contextlib.suppress(OSError):
                tmp_path.parent.rmdir()


class ArtifactError(ValueError):
    """A file one step writes for another is missing or not what that step writes;
    the message names the file and the rule that makes it."""


def read_json_artifact(path: str | os.PathLike, what: str, rule: str) -> Any:
    """The JSON a rule wrote, or an :class:`ArtifactError` naming the rule to rerun."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no {what}; run the {rule} rule first")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(
            f"{path}: not a readable {what} ({e}); delete it and rerun the {rule} rule"
        ) from e


def read_torch_artifact(path: str | os.PathLike, what: str, rule: str) -> Any:
    """A ``torch.save``\\ d file a rule wrote, read safely (weights-only data), or an
    :class:`ArtifactError` naming the rule to rerun."""
    from di4c.checkpoints import CheckpointError, load_container

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no {what}; run the {rule} rule first")
    try:
        return load_container(path, what)
    except CheckpointError as e:
        raise ArtifactError(f"{e}; delete it and rerun the {rule} rule") from e


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
    """``torch.save`` atomically, byte for byte what ``torch.save(obj, path)`` writes.

    torch names the zip archive inside after the file it writes, so the temporary
    file has the final name, in a temporary folder beside ``path``: identical
    reruns write identical bytes (and identical checksums). A refused write (full
    disk, quota, permissions; torch's stream writer says ``iostream error``) is a
    :class:`WriteError`; nothing half-written is left at ``path``.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(
        tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    )
    try:
        torch.save(obj, tmp_dir / path.name)
        os.replace(tmp_dir / path.name, path)
    except (RuntimeError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in _STORAGE_ERRNOS:
            raise
        raise write_error(path, e) from e
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


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
