"""Atomic writes, provenance sidecars, verified downloads (local files only, no network)."""

import hashlib
import json

import pytest

from di4c.artifacts import (
    atomic_path,
    meta_path_for,
    sha256_file,
    write_json,
    write_meta,
)
from di4c.download import ChecksumError, MissingWeightsError, RemoteFile, fetch


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_json(target.with_suffix(".json"), {"a": 1})
    assert json.loads(target.with_suffix(".json").read_text()) == {"a": 1}


def test_meta_sidecar_records_provenance(tmp_path):
    inp = tmp_path / "in.bin"
    inp.write_bytes(b"abc")
    out = tmp_path / "table.csv"
    out.write_text("x\n")
    write_meta(
        out, config={"k": 1}, inputs={"data": inp}, seeds=[1, 2], wall_time_s=1.5
    )
    meta = json.loads(meta_path_for(out).read_text())
    assert meta["inputs"]["data"]["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert (
        meta["seeds"] == [1, 2] and meta["config"] == {"k": 1} and "git_commit" in meta
    )


def test_fetch_verifies_and_refetches_corrupt_files(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    good = b"weights" * 100
    rf = RemoteFile(
        name="w.bin",
        url="http://example.invalid/w.bin",
        sha256=hashlib.sha256(good).hexdigest(),
        config_key="weights.w",
    )
    payloads = [good[:50], good]  # first attempt truncated, second good

    def downloader(r, dest):
        dest.write_bytes(payloads.pop(0))

    path = fetch(rf, downloader=downloader, backoff_s=0)
    assert path.read_bytes() == good and sha256_file(path) == rf.sha256
    path.write_bytes(b"corrupted")  # a damaged cache entry is detected and replaced
    path2 = fetch(rf, downloader=lambda r, d: d.write_bytes(good), backoff_s=0)
    assert path2.read_bytes() == good


def test_fetch_gives_up_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    rf = RemoteFile(
        name="x.pt", url="http://127.0.0.1:9/x.pt", sha256=None, config_key="weights.x"
    )
    with pytest.raises(MissingWeightsError, match="weights.x"):
        fetch(rf, backoff_s=0)
    assert not (tmp_path / "cache" / "weights" / "x.pt").exists()
    bad = RemoteFile(
        name="y.pt", url="http://e.invalid/y", sha256="0" * 64, config_key="weights.y"
    )
    with pytest.raises(MissingWeightsError, match="does not match"):
        fetch(
            bad, downloader=lambda r, d: d.write_bytes(b"nope"), retries=2, backoff_s=0
        )
    assert not (tmp_path / "cache" / "weights" / "y.pt").exists()
    with pytest.raises(MissingWeightsError, match="weights.y"):
        fetch(bad, local_path=tmp_path / "missing.pt")
    local = tmp_path / "local.pt"
    local.write_bytes(b"nope")
    with pytest.raises(ChecksumError):
        fetch(bad, local_path=local)
