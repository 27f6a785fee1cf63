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
    if rf.sha256 and rf.sha256 != entry["sha256"]:
        raise PinMismatchError(
            f"{rf.name}: the published sha256 {rf.sha256} differs from the pinned "
            f"{entry['sha256']}; delete the entry to re-pin"
        )
    rf = dataclasses.replace(rf, sha256=entry["sha256"])
    commit = entry.get("commit")
    # commit-keyed cache name: bytes cached from an older state of the branch
    # never stand in for the pinned commit
    return rf.at_revision(commit) if (rf.hf_repo and commit) else rf


def _check_entry(rf: RemoteFile, entry: dict, pin_file) -> None:
    """Refuse a pin made for another revision or another URL than the config's."""
    if rf.hf_repo and entry.get("requested_revision") != rf.hf_revision:
        wanted = f"revision {entry.get('requested_revision')!r} (commit {entry.get('commit')})"
        asked = f"revision {rf.hf_revision!r}"
    elif not rf.hf_repo and entry.get("source") != rf.source:
        wanted, asked = repr(entry.get("source")), repr(rf.source)
    else:
        return
    raise PinMismatchError(
        f"{rf.name}: {pin_file} pins {wanted}, but the config asks for {asked}. Set it "
        f"back, or delete the entry '{rf.name}' from {pin_file} to pin the new one."
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
    fetched at its pinned commit and must hash to its pinned sha256. A file not
    yet pinned is pinned on this fetch: a Hugging Face file first has its
    revision resolved to a commit and is downloaded at that commit (offline, it
    is fetched as configured and left unpinned, with a warning, until an online
    fetch); then its sha256, commit and source are written to the pin file,
    atomically under a lock so parallel fetch jobs keep each other's entries. A
    user's local copy bypasses the pins (it may legitimately differ, e.g. the
    extracted tauLDR checkpoint instead of the published folder zip); its sha256
    goes into the provenance of whatever the fetch step writes.
    """
    if not pin_file or local_path:
        return fetch(rf, local_path, **fetch_kwargs)
    entry = load_pins(pin_file).get(rf.name)
    if entry:
        _check_entry(rf, entry, pin_file)
        try:
            return fetch(apply_pin(rf, entry), **fetch_kwargs)
        except (ChecksumError, MissingWeightsError) as e:
            bad = e if isinstance(e, ChecksumError) else e.__cause__
            if not isinstance(bad, ChecksumError):
                raise
            raise PinMismatchError(
                f"{rf.name}: the downloaded bytes do not match the sha256 "
                f"{entry['sha256']} pinned in {pin_file} on "
                f"{entry.get('pinned_at', '?')} from {entry.get('source')}. If the "
                f"published file was replaced and the new one is what you mean to use, "
                f"delete the entry '{rf.name}' from {pin_file} and fetch again; or set "
                f"config key '{rf.config_key}' to a local copy."
            ) from e
    commit = resolver(rf.hf_repo, rf.hf_revision) if rf.hf_repo else None
    if rf.hf_repo and commit is None:
        print(
            f"[pin] WARNING: {rf.name}: could not resolve {rf.source} to a commit "
            f"(offline?); using it unpinned. An online fetch will pin it in {pin_file}.",
            flush=True,
        )
        return fetch(rf, **fetch_kwargs)
    path = fetch(rf.at_revision(commit) if commit else rf, **fetch_kwargs)
    record_pin(pin_file, rf, path, commit)
    return path


def check_or_pin(pin_file, name: str, path: Path, source: str) -> None:
    """Pin a file the suite derives from a download (e.g. a member extracted from a
    zip whose bytes can differ between downloads), or check it against its pin."""
    if not pin_file:
        return
    entry = load_pins(pin_file).get(name)
    if entry is None:
        record_pin(pin_file, RemoteFile(name=name, url=source), path, None)
        return
    got = sha256_file(path)
    if got != entry["sha256"]:
        raise PinMismatchError(
            f"{path}: sha256 {got} differs from the {entry['sha256']} pinned for "
            f"'{name}' in {pin_file} ({entry.get('source')}). Delete {path} to extract "
            f"it again, or delete the entry '{name}' to pin this file."
        )


def record_pin(
    pin_file: str | os.PathLike, rf: RemoteFile, path: Path, commit: str | None
) -> dict:
    """Add the pin of ``rf`` (fetched to ``path`` at ``commit``) to ``pin_file``."""
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
