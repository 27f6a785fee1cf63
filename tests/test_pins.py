"""Pin files (di4c.pins): the first download pins sha256 + commit, later ones must match.

Downloads go over real HTTP on loopback; Hugging Face files go through the
``downloader`` hook of :func:`di4c.download.fetch`, which receives the exact
descriptor (revision included) a real download would use.
"""

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import pytest

from di4c.config import deep_merge, load_config, resolve
from di4c.download import MissingWeightsError, RemoteFile
from di4c.pins import (
    PinMismatchError,
    check_or_pin,
    fetch_pinned,
    load_pins,
    record_pin,
    resolve_hf_commit,
)
from di4c.settings import get_setting

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b"published bytes v1"

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.body = b"published bytes v1"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _url_file(server):
    return RemoteFile(name="student.ckpt", url=f"{server}/student.ckpt", config_key="k")


def _no_network(repo, revision):
    raise AssertionError("a URL file must not resolve a Hugging Face commit")


def test_first_fetch_pins_and_a_changed_upload_is_rejected(server, tmp_path, cache):
    pins = tmp_path / "pins" / "slice.json"
    rf = _url_file(server)
    path = fetch_pinned(rf, None, pins, resolver=_no_network)
    entry = load_pins(pins)["student.ckpt"]
    assert entry["sha256"] == hashlib.sha256(b"published bytes v1").hexdigest()
    assert entry["size"] == len(b"published bytes v1") and entry["commit"] is None
    assert entry["source"] == rf.source
    # cached and pinned: fetched again without change
    assert fetch_pinned(rf, None, pins, resolver=_no_network) == path
    # the upload changes; a fresh machine (empty cache) must not accept it
    _Handler.body = b"published bytes v2!"
    path.unlink()
    with pytest.raises(PinMismatchError, match="delete the entry 'student.ckpt'") as e:
        fetch_pinned(rf, None, pins, retries=1, backoff_s=0, resolver=_no_network)
    assert "config key 'k'" in str(e.value) and ".tmp" not in str(e.value)
    assert not path.exists()  # nothing half-verified left at the final path
    assert load_pins(pins)["student.ckpt"] == entry  # the pin is unchanged


def test_pinned_hf_file_is_downloaded_at_its_commit(tmp_path, cache, capsys):
    pins = tmp_path / "imagenet.json"
    rf = RemoteFile(
        name="teacher.pth",
        hf_repo="org/repo",
        hf_filename="a/t.pth",
        hf_revision="main",
    )
    asked = []

    def downloader(r, dest):
        asked.append(r.hf_revision)
        dest.write_bytes(b"weights at " + r.hf_revision.encode())

    # offline (no commit): used as configured, but not pinned
    fetch_pinned(rf, None, pins, downloader=downloader, resolver=lambda *a: None)
    assert not pins.exists() and "WARNING" in capsys.readouterr().out
    # bytes cached from an older state of 'main' must not be pinned as the commit's
    assert (cache / "weights" / "teacher.pth").read_bytes() == b"weights at main"
    p = fetch_pinned(rf, None, pins, downloader=downloader, resolver=lambda *a: COMMIT)
    entry = load_pins(pins)["teacher.pth"]
    assert (entry["requested_revision"], entry["commit"]) == ("main", COMMIT)
    assert (
        entry["sha256"] == hashlib.sha256(f"weights at {COMMIT}".encode()).hexdigest()
    )
    p.unlink()  # a fresh cache: the next download must ask for the pinned commit
    fetch_pinned(rf, None, pins, downloader=downloader, resolver=lambda *a: "other")
    assert asked == ["main", COMMIT, COMMIT]
    # another requested revision than the pinned one is refused with the fix
    with pytest.raises(PinMismatchError, match="pins revision 'main'"):
        fetch_pinned(
            RemoteFile(**{**rf.__dict__, "hf_revision": "v2"}),
            None,
            pins,
            downloader=downloader,
        )


def test_entries_accumulate_and_local_copies_bypass_pins(server, tmp_path):
    pins = tmp_path / "pins.json"
    for name in ("a.bin", "b.bin"):
        record_pin(
            pins, RemoteFile(name=name, url=server), _write(tmp_path, name), None
        )
    assert sorted(load_pins(pins)) == ["a.bin", "b.bin"]
    doc = json.loads(pins.read_text())
    assert "di4c/pins.py" in doc["about"]
    # a user's local copy is used as is (it may legitimately differ from the
    # published file) and never pinned
    local = _write(tmp_path, "mine.ckpt", b"my own fine-tune")
    rf = RemoteFile(name="a.bin", url=server, config_key="k")
    assert fetch_pinned(rf, local, pins) == local
    assert load_pins(pins)["a.bin"]["sha256"] == hashlib.sha256(b"a.bin").hexdigest()
    # a pin made for another URL is refused with the fix
    with pytest.raises(PinMismatchError, match="pins 'http"):
        fetch_pinned(RemoteFile(name="a.bin", url=f"{server}/moved"), None, pins)


def test_derived_files_are_pinned_and_checked(tmp_path):
    pins = tmp_path / "cifar10.json"
    member = _write(tmp_path, "ckpt.pt", b"extracted checkpoint")
    check_or_pin(pins, "ckpt.pt", member, "https://example/folder.zip :: ckpt.pt")
    check_or_pin(pins, "ckpt.pt", member, "https://example/folder.zip :: ckpt.pt")
    assert load_pins(pins)["ckpt.pt"]["source"].endswith(":: ckpt.pt")
    member.write_bytes(b"another extraction")
    with pytest.raises(PinMismatchError, match="to extract it again"):
        check_or_pin(pins, "ckpt.pt", member, "https://example/folder.zip :: ckpt.pt")
    check_or_pin(None, "ckpt.pt", member, "x")  # no pin file: nothing to check


def test_damaged_pin_file_and_commit_resolution(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a di4c pin file"):
        load_pins(bad)
    assert load_pins(tmp_path / "absent.json") == {} and load_pins(None) == {}
    assert resolve_hf_commit("org/repo", COMMIT) == COMMIT  # a hash needs no lookup
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_hf_commit("org/repo", "main") is None  # offline: no commit


def _tiny_tauldr_student(path):
    """A Di4C tauLDR student in the authors' container (what Zenodo serves), tiny."""
    from di4c.networks.tauldr_unet import TauLDRUNet, TauLDRUNetConfig
    from di4c.teachers.tauldr import save_checkpoint

    cfg = TauLDRUNetConfig(
        S=4, image_shape=(1, 4, 4), ch=8, ch_mult=(1,), num_res_blocks=1, attn_scale=0
    )
    save_checkpoint(TauLDRUNet(cfg.as_student()), path)
    return path.read_bytes()


def _fetch_step(tmp_path, model, *extra):
    """``python -m di4c.cli.fetch`` as the fetch_model rule runs it (paper scale)."""
    out = tmp_path / "fetched" / model
    cmd = [
        sys.executable, "-m", "di4c.cli.fetch", "--setting", "cifar10",
        "--scale", "paper", "--model", model, "--out-dir", str(out), *extra,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    return res, out / "model.json"


def test_fetch_step_writes_and_enforces_the_pin(server, tmp_path, cache):
    """The fetch step downloads the released student over HTTP, pins it and writes its
    card; after a re-upload a fresh cache is refused in one line naming the pin file."""
    _Handler.body = _tiny_tauldr_student(tmp_path / "student.pt")
    pins = tmp_path / "pins" / "cifar10.json"
    url = f"{server}/tldr-di4c.pt"
    sets = ["--pins", str(pins)]
    # the published URL is a module constant; point it at the loopback server
    code = (
        "import sys, dataclasses, di4c.teachers.tauldr as t;"
        f"t.DI4C_STUDENT_FILE = dataclasses.replace(t.DI4C_STUDENT_FILE, url={url!r});"
        "from di4c.cli.fetch import cli; cli(sys.argv[1:])"
    )
    out = tmp_path / "fetched" / "released_student"
    argv = [
        "--setting", "cifar10", "--scale", "paper", "--model", "released_student",
        "--out-dir", str(out), *sets,
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def run():
        return subprocess.run(
            [sys.executable, "-c", code, *argv],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    res = run()
    assert res.returncode == 0, res.stderr[-2000:]
    sha = hashlib.sha256(_Handler.body).hexdigest()
    assert load_pins(pins)["tldr-di4c.pt"]["sha256"] == sha
    card = json.loads((out / "model.json").read_text())
    assert card["sha256"]["weights"] == sha and card["kind"] == "mixture"
    assert card["source"] == "released" and card["setting"] == "cifar10"
    # the upload changes; a fresh cache must not accept it
    _Handler.body = b"re-uploaded"
    (cache / "weights" / "tldr-di4c.pt").unlink()
    res = run()
    assert res.returncode == 1 and "Traceback" not in res.stderr
    [line] = res.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: tldr-di4c.pt: the downloaded bytes do not match")
    assert str(pins) in line and "delete the entry 'tldr-di4c.pt'" in line


def test_fetch_step_refuses_a_model_that_is_not_published(tmp_path):
    res, card = _fetch_step(tmp_path, "student")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (
        "error: cifar10.paper.models.student is not a published or released model; "
        "nothing to fetch"
    )
    assert not card.exists()


def _paper_fetched_models():
    cfg = load_config()
    return [
        (s, m)
        for s in ("cifar10", "imagenet", "openwebtext")
        for m, spec in resolve(cfg, s, "paper")["models"].items()
        if spec["source"] in ("published", "released")
    ]


@pytest.mark.parametrize("setting, model", _paper_fetched_models())
def test_offline_fetch_names_the_config_key_that_takes_a_local_copy(
    setting, model, tmp_path, monkeypatch
):
    """Offline, every published file's error names a key of the resolved config; set
    to a path, that key is what the fetch reads."""
    import di4c.download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(di4c.download, "_http_download", offline)
    monkeypatch.setattr(di4c.download, "_hf_download", offline)
    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    cfg = resolve(load_config(), setting, "paper")
    adapter = get_setting(setting)
    with pytest.raises(MissingWeightsError) as info:
        adapter.fetch(cfg, model, None)
    keys = set(
        re.findall(r"config key '?([A-Za-z0-9_.\-]*[A-Za-z0-9_])", str(info.value))
    )
    assert keys, str(info.value)
    for key in keys:
        prefix = f"{setting}.paper."
        assert key.startswith(prefix), key
        path = key[len(prefix) :].split(".")
        node = cfg
        for part in path[:-1]:
            node = node[part]
        assert path[-1] in node, f"{key} is not a key of the {setting} paper config"
        # the key takes a local copy: set it, and the fetch reads that path
        local = tmp_path / f"my-copy-of-{path[-1]}"
        override: dict = {path[-1]: str(local)}
        for part in reversed(path[:-1]):
            override = {part: override}
        with pytest.raises(MissingWeightsError, match=re.escape(str(local))):
            adapter.fetch(deep_merge(cfg, override), model, None)


def _write(folder, name, data=None):
    p = folder / name
    p.write_bytes(data if data is not None else name.encode())
    return p
