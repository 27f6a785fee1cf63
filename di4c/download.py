"""Pinned, verified, atomic downloads of published weights (teachers and Di4C students).

Every remote file the suite uses is described by a :class:`RemoteFile` (URL or
Hugging Face repo + revision, sha256 where known). :func:`fetch` returns a local
path: a user-supplied local copy if the config points at one, else the cached
copy in ``$DI4C_CACHE_DIR`` (default ``~/.cache/di4c``), else a fresh download
taken under a file lock, into a temporary file, verified and renamed into place,
with retries and exponential backoff. Offline, it raises
:class:`MissingWeightsError` naming the file and the config key that takes a
local copy.

Every cached file has a ``<name>.sha256`` sidecar written at download time, and is
checked against it (or against its pinned sha256) on every use, pins or not: a
cached file whose bytes changed is deleted and fetched again, or named offline.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from di4c.artifacts import WriteError, atomic_path, sha256_file, write_text


class MissingWeightsError(FileNotFoundError):
    """A published file is neither cached nor downloadable; says how to fix it."""


class ChecksumError(ValueError):
    """A downloaded or local file does not match its recorded sha256."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    Attributes:
        name: a short identifier (also the cache file name).
        url: direct URL (Dropbox/GitHub/Zenodo), or None for a Hugging Face file.
        hf_repo, hf_filename, hf_revision: Hugging Face location, pinned revision.
        sha256: expected checksum, or None where no checksum was published.
        config_key: the config key a user sets to a local copy (named in errors).
        size_hint: human-readable size for messages.
    """

    name: str
    url: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    hf_revision: str | None = None
    sha256: str | None = None
    config_key: str = ""
    size_hint: str = ""

    @property
    def source(self) -> str:
        if self.url:
            return self.url
        return f"hf://{self.hf_repo}@{self.hf_revision}/{self.hf_filename}"

    def at_revision(self, revision: str) -> RemoteFile:
        """This Hugging Face file at ``revision``, cached under a revision-keyed name
        (so files of two revisions never stand in for each other)."""
        tag = revision.replace("/", "_")
        return replace(self, hf_revision=revision, name=f"{self.name}@{tag}")


def cache_dir() -> Path:
    """The single cache root: ``$DI4C_CACHE_DIR`` or ``~/.cache/di4c``."""
    return Path(os.environ.get("DI4C_CACHE_DIR", Path.home() / ".cache" / "di4c"))


def verify(path: Path, sha256: str | None, what: str = "pinned") -> None:
    """Raise :class:`ChecksumError` if ``path`` does not hash to ``sha256``."""
    if sha256 is None:
        return
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(
            f"{path}: sha256 {got} does not match the {what} sha256 {sha256}. The file is "
            "corrupt or truncated; delete it and fetch again, or point the config at a "
            "good copy."
        )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_sha256(path: Path, sha256: str) -> None:
    """Record the sha256 of the bytes cached at ``path`` (written before the file is
    renamed into place, so a cached file never lacks its record)."""
    write_text(_sidecar(Path(path)), sha256 + "\n")


def check_cached(path: Path, sha256: str | None = None) -> None:
    """Verify a cached file against ``sha256`` (its pin) or, without one, the sha256
    recorded when it was cached; raise :class:`ChecksumError` if its bytes changed.

    A file cached before sha256s were recorded gets its record now.
    """
    path = Path(path)
    if sha256 is None:
        side = _sidecar(path)
        if not side.is_file():
            record_sha256(path, sha256_file(path))
            return
        sha256 = side.read_text().strip()
        verify(path, sha256, "download-time")
        return
    verify(path, sha256)


def discard(path: Path) -> None:
    """Delete a cached file and its sha256 record."""
    for p in (Path(path), _sidecar(Path(path))):
        p.unlink(missing_ok=True)


def _http_download(url: str, dest: Path, timeout: float = 60.0) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "di4c-suite"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as f:
        total = resp.headers.get("Content-Length")
        done = 0
        last = time.monotonic()
        while block := resp.read(1 << 20):
            f.write(block)
            done += len(block)
            if time.monotonic() - last > 10:
                last = time.monotonic()
                pct = f" {100 * done / int(total):.0f}%" if total else ""
                print(
                    f"[download] {dest.name}: {done / 2**20:.0f} MiB{pct}", flush=True
                )
        if total is not None and done != int(total):
            raise OSError(f"truncated download: got {done} of {total} bytes from {url}")


def _hf_download(rf: RemoteFile, dest: Path) -> None:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - depends on extras
        raise MissingWeightsError(
            f"{rf.name}: huggingface_hub is not installed (pip install 'di4c[text]')"
        ) from e
    local = hf_hub_download(
        repo_id=rf.hf_repo,
        filename=rf.hf_filename,
        revision=rf.hf_revision,
        cache_dir=str(cache_dir() / "hf"),
    )
    with open(local, "rb") as src, open(dest, "wb") as dst:
        while block := src.read(1 << 20):
            dst.write(block)


def _is_offline_error(e: BaseException) -> bool:
    names = {type(x).__name__ for x in _chain(e)}
    return bool(
        names
        & {
            "URLError",
            "gaierror",
            "ConnectionError",
            "LocalEntryNotFoundError",
            "OfflineModeIsEnabled",
            "ConnectError",
            "TimeoutError",
        }
    )


def _chain(e: BaseException | None):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def fetch(
    rf: RemoteFile,
    local_path: str | os.PathLike | None = None,
    *,
    retries: int = 3,
    backoff_s: float = 2.0,
    downloader: Callable[[RemoteFile, Path], None] | None = None,
) -> Path:
    """Return a verified local path for ``rf``.

    Order: ``local_path`` (a user's copy, verified if a sha256 is pinned), the
    cache (verified against the pin, else against the sha256 recorded when it was
    downloaded), a download (locked, temp file, verify, record its sha256, atomic
    rename, retried with exponential backoff). A corrupt cached file is deleted and
    fetched again; offline, the error names it.
    """
    if local_path:
        p = Path(local_path)
        if not p.is_file():
            raise MissingWeightsError(
                f"{rf.name}: the local copy set by config key '{rf.config_key}' does not "
                f"exist: {p}. Point it at a downloaded copy of {rf.source}."
            )
        verify(p, rf.sha256)
        return p

    dest = cache_dir() / "weights" / rf.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dropped = ""
    with FileLock(str(dest) + ".lock"):
        if dest.is_file():
            try:
                check_cached(dest, rf.sha256)
                return dest
            except ChecksumError:
                print(f"[download] cached {dest} failed its checksum; fetching again")
                discard(dest)
                dropped = f"The cached {dest} failed its checksum and was deleted. "
        dl = downloader or (
            (lambda r, d: _http_download(r.url, d)) if rf.url else _hf_download
        )
        last_err: BaseException | None = None
        for attempt in range(retries):
            try:
                with atomic_path(dest) as tmp:
                    dl(rf, tmp)
                    verify(tmp, rf.sha256)
                    record_sha256(dest, sha256_file(tmp))
                return dest
            except WriteError:  # a full disk is not the network's fault: no retry
                raise
            except ChecksumError as e:
                last_err = e
            except Exception as e:  # network errors of any library
                last_err = e
                if _is_offline_error(e):
                    break
            if attempt + 1 < retries:
                time.sleep(backoff_s * 2**attempt)
        with contextlib.suppress(FileNotFoundError):
            if dest.is_file() and rf.sha256:
                verify(dest, rf.sha256)
        raise MissingWeightsError(
            f"{dropped}could not fetch {rf.name} ({rf.size_hint or 'size unknown'}) from "
            f"{rf.source}: {type(last_err).__name__}: {last_err}. This machine may be "
            f"offline. Download the file elsewhere and set config key "
            f"'{rf.config_key}' to its local path (or place it at {dest})."
        ) from last_err
