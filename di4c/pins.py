"""Trust-on-first-use pins for published files that come without a checksum or commit.

None of the published weights (tauLDR's Dropbox folder, the MaskGIT and SDTT
Hugging Face repos, the Zenodo students) has a published sha256, and the
Hugging Face revisions the authors use are branch names (``main``,
``baselines_kld_step_60000``) that can move. A pin file (one JSON per slice,
``workflows/pins/<slice>.json`` by default) closes that gap the way a package
lock file does: the first fetch records, per file, the sha256 of the bytes it
used and, for Hugging Face files, the commit the revision resolved to; every
later fetch (on any machine that has the pin file, e.g. from git) downloads that
commit and rejects bytes with another checksum. Delete an entry to re-pin.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

from filelock import FileLock

from di4c.artifacts import sha256_file, write_json
from di4c.download import ChecksumError, MissingWeightsError, RemoteFile, fetch

_COMMIT = re.compile(r"[0-9a-f]{40}")


class PinMismatchError(ChecksumError):
    """A file differs from the bytes its pin file recorded; says how to re-pin."""


def load_pins(pin_file: str | os.PathLike | None) -> dict[str, dict]:
    """Entries of ``pin_file`` by file name (empty when there is none)."""
    if not pin_file or not Path(pin_file).is_file():
        return {}
    try:
        data = json.loads(Path(pin_file).read_text())
        return dict(data["files"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{pin_file}: not a di4c pin file ({e}); restore it from git or delete "
            "it to pin the files afresh"
        ) from e


def resolve_hf_commit(repo: str, revision: str | None) -> str | None:
    """The commit hash a Hugging Face ``revision`` points at (None if unreachable)."""
    if revision and _COMMIT.fullmatch(revision):
        return revision
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(repo, revision=revision or "main").sha
    except Exception:  # offline, or huggingface_hub missing: record no commit
        return None


def apply_pin(rf: RemoteFile, entry: dict | None) -> RemoteFile:
    """``rf`` restricted to its pinned bytes (sha256) and, on HF, its pinned commit."""
    if not entry:
        return rf
    commit = entry.get("commit")
    return dataclasses.replace(
        rf,
        sha256=entry["sha256"],
        hf_revision=commit if (rf.hf_repo and commit) else rf.hf_revision,
    )


def fetch_pinned(
    rf: RemoteFile,
    local_path: str | os.PathLike | None = None,
    pin_file: str | os.PathLike | None = None,
    *,
    resolver=resolve_hf_commit,
    **fetch_kwargs,
) -> Path:
    """:func:`di4c.download.fetch` under ``pin_file``: verify against a pin, or record one.

    With no ``pin_file`` this is plain :func:`fetch`. A file already pinned is
    fetched at its pinned commit and must hash to its pinned sha256; a file not
    yet pinned is fetched as configured and then pinned (sha256, resolved
    commit, source), the pin file being rewritten atomically under a lock so
    parallel fetch jobs do not lose each other's entries. A user's local copy
    bypasses the pins (it may legitimately differ, e.g. the extracted tauLDR
    checkpoint instead of the published folder zip); its sha256 goes into the
    provenance of whatever the fetch step writes.
    """
    if not pin_file or local_path:
        return fetch(rf, local_path, **fetch_kwargs)
    entry = load_pins(pin_file).get(rf.name)
    if entry and rf.hf_repo and entry.get("requested_revision") != rf.hf_revision:
        raise PinMismatchError(
            f"{rf.name}: {pin_file} pins revision {entry.get('requested_revision')!r}"
            f" (commit {entry.get('commit')}), but the config asks for "
            f"{rf.hf_revision!r}. Set the revision back, or delete the entry "
            f"'{rf.name}' from {pin_file} to pin the new one."
        )
    try:
        path = fetch(apply_pin(rf, entry), **fetch_kwargs)
    except (ChecksumError, MissingWeightsError) as e:
        bad = e if isinstance(e, ChecksumError) else e.__cause__
        if not (entry and isinstance(bad, ChecksumError)):
            raise
        raise PinMismatchError(
            f"{rf.name}: the file does not match the sha256 {entry['sha256']} pinned "
            f"in {pin_file} on {entry.get('pinned_at', '?')} from {entry.get('source')}"
            f" ({bad}). If the new file is the one you mean to use, delete the entry "
            f"'{rf.name}' from {pin_file} and fetch again to pin it."
        ) from e
    if entry is None:
        record_pin(pin_file, rf, path, resolver)
    return path


def record_pin(
    pin_file: str | os.PathLike,
    rf: RemoteFile,
    path: Path,
    resolver=resolve_hf_commit,
) -> dict:
    """Add the pin of ``rf`` (fetched to ``path``) to ``pin_file``; return the entry."""
    commit = resolver(rf.hf_repo, rf.hf_revision) if rf.hf_repo else None
    entry = {
        "source": rf.source,
        "requested_revision": rf.hf_revision,
        "commit": commit,
        "sha256": sha256_file(path),
        "size": Path(path).stat().st_size,
        "pinned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    pin_file = Path(pin_file)
    pin_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(pin_file) + ".lock"):
        files = load_pins(pin_file)
        files[rf.name] = entry
        write_json(
            pin_file,
            {
                "about": "sha256 (and Hugging Face commit) of each published file "
                "as first fetched; later fetches must match. See di4c/pins.py.",
                "files": dict(sorted(files.items())),
            },
        )
    print(f"[pin] {rf.name}: sha256 {entry['sha256'][:12]}… commit {commit}")
    return entry
