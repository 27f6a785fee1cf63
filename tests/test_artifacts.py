"""Atomic writes, provenance sidecars, verified downloads (local files only, no network)."""

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from di4c.artifacts import (
    WriteError,
    atomic_path,
    meta_path_for,
    save_torch,
    sha256_file,
    write_json,
    write_meta,
    write_text,
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


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    "writer, reason",
    [
        ("text", "no space left on device"),  # an OSError(ENOSPC) of a plain write
        ("torch", "RuntimeError: basic_ios::clear: iostream error"),  # torch.save's
    ],
)
def test_a_full_disk_is_one_write_error_and_leaves_nothing(
    tmp_path, monkeypatch, writer, reason
):
    """Issue 13 item 10: a full disk during an atomic write says which path could not
    be written and why; the previous file stays and no temporary file is left."""
    import torch

    target = tmp_path / "run" / "checkpoint.pt"
    save_torch(target, {"step": 1})  # the last good file
    if writer == "text":
        monkeypatch.setattr(Path, "write_text", _disk_full)
        write = lambda: write_text(target, "x")  # noqa: E731
    else:

        def torch_save(obj, f):
            Path(f).write_bytes(b"half")  # torch wrote part of it, then failed
            raise RuntimeError("basic_ios::clear: iostream error")

        monkeypatch.setattr(torch, "save", torch_save)
        write = lambda: save_torch(target, {"step": 2})  # noqa: E731
    with pytest.raises(WriteError) as info:
        write()
    msg = str(info.value)
    assert msg.startswith(f"could not write {target}: {reason}; "), msg
    assert "free some space and rerun" in msg and "MiB free there" in msg, msg
    monkeypatch.undo()
    assert list(target.parent.iterdir()) == [target]  # no temporary file left
    assert torch.load(target, weights_only=True) == {"step": 1}  # the good one stays


def test_a_write_error_is_one_line_through_the_step_error_path(tmp_path, capsys):
    """A WriteError leaves a step as one ``error:`` line, exit 1 (no traceback)."""
    import argparse

    from di4c.cli.common import run_step

    def main(args):
        with atomic_path(tmp_path / "x.json"):
            _disk_full()

    ap = argparse.ArgumentParser(prog="step")
    ap.add_argument("--debug", action="store_true")
    ap.set_defaults(log=None, threads=None)
    with pytest.raises(SystemExit) as info:
        run_step(main, ap, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: could not write {tmp_path / 'x.json'}: no space")
