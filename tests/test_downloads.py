"""Downloads over real HTTP on loopback: verified, atomic, retried, re-fetched when corrupt."""

import hashlib
import http.server
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from di4c.download import MissingWeightsError, RemoteFile, cache_dir, fetch

GOOD = bytes(range(256)) * 4096  # 1 MiB
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}
    files: dict = {}  # extra path -> bytes a test serves

    def do_GET(self):  # noqa: N802 - http.server API
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path in self.files:
            body = self.files[self.path]
        elif self.path == "/good.bin":
            body = GOOD
        elif self.path == "/bad.bin":  # wrong content, right length
            body = GOOD[:-1] + b"\x00"
        elif self.path == "/flaky.bin":  # truncated on the first request only
            body = GOOD if self.hits[self.path] > 1 else GOOD[: len(GOOD) // 3]
            self.send_response(200)
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.hits, _Handler.files = {}, {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DI4C_CACHE_DIR", str(tmp_path / "cache"))


def _rf(url, name, sha=GOOD_SHA):
    return RemoteFile(name=name, url=url, sha256=sha, config_key=f"weights.{name}")


def test_good_file_is_fetched_verified_and_cached(server):
    path = fetch(_rf(f"{server}/good.bin", "good.bin"), backoff_s=0)
    assert path.read_bytes() == GOOD and path.parent == cache_dir() / "weights"
    fetch(_rf(f"{server}/good.bin", "good.bin"), backoff_s=0)
    assert _Handler.hits["/good.bin"] == 1  # second call served from the cache


def test_bad_file_never_reaches_the_final_path(server):
    rf = _rf(f"{server}/bad.bin", "bad.bin")
    with pytest.raises(MissingWeightsError, match="does not match the pinned"):
        fetch(rf, retries=3, backoff_s=0)
    assert _Handler.hits["/bad.bin"] == 3  # retried
    folder = cache_dir() / "weights"
    assert not (folder / "bad.bin").exists()
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_truncated_download_is_detected_and_refetched(server):
    path = fetch(
        _rf(f"{server}/flaky.bin", "flaky.bin", sha=None), retries=3, backoff_s=0
    )
    assert path.read_bytes() == GOOD and _Handler.hits["/flaky.bin"] == 2


def test_corrupted_cache_is_replaced(server):
    rf = _rf(f"{server}/good.bin", "good.bin")
    path = fetch(rf, backoff_s=0)
    path.write_bytes(b"bitrot")
    assert fetch(rf, backoff_s=0).read_bytes() == GOOD
    assert _Handler.hits["/good.bin"] == 2


def test_concurrent_fetches_download_once(server):
    rf = _rf(f"{server}/good.bin", "good.bin")
    with ThreadPoolExecutor(4) as ex:
        paths = list(ex.map(lambda _: fetch(rf, backoff_s=0), range(4)))
    assert len({str(p) for p in paths}) == 1 and Path(paths[0]).read_bytes() == GOOD
    assert _Handler.hits["/good.bin"] == 1


def test_missing_file_names_the_config_key(server):
    with pytest.raises(MissingWeightsError, match="weights.nope.bin"):
        fetch(_rf(f"{server}/nope.bin", "nope.bin"), retries=2, backoff_s=0)


OFFLINE = "http://127.0.0.1:9"  # a closed port: every fetch fails as offline


def test_a_byte_flipped_cache_is_refetched_without_pins(server):
    """Issue 13 item 11: with no published or pinned sha256, the sha256 recorded at
    download time catches a cached file whose bytes changed; offline, it is named."""
    rf = _rf(f"{server}/good.bin", "good.bin", sha=None)
    path = fetch(rf, backoff_s=0)
    assert (path.parent / "good.bin.sha256").read_text().strip() == GOOD_SHA
    path.write_bytes(b"\xff" + GOOD[1:])  # one byte flipped in the cache
    assert fetch(rf, backoff_s=0).read_bytes() == GOOD
    assert _Handler.hits["/good.bin"] == 2
    path.write_bytes(b"\xff" + GOOD[1:])
    offline = _rf(f"{OFFLINE}/good.bin", "good.bin", sha=None)
    with pytest.raises(MissingWeightsError) as info:
        fetch(offline, retries=1, backoff_s=0)
    msg = str(info.value)
    assert msg.startswith(f"The cached {path} failed its checksum and was deleted. ")
    assert "set config key 'weights.good.bin' to its local path" in msg
    assert not path.exists()


def _teacher_zip(flip: bool = False) -> bytes:
    """The tauLDR Dropbox folder as a zip (stored members); ``flip`` damages one
    byte of the checkpoint member, so reading it fails its CRC-32."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("cifar10/ckpt_0001999999.pt", GOOD)
        zf.writestr("cifar10/config_001.yaml", "model: {}\n")
    data = buf.getvalue()
    if flip:
        at = data.index(GOOD[:64]) + 1000
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


def _cache_corrupt_zip(name: str) -> Path:
    """A cached zip that was already corrupt when it was downloaded (its recorded
    sha256 matches its bytes, so only reading the zip finds the damage)."""
    bad = _teacher_zip(flip=True)
    path = cache_dir() / "weights" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bad)
    (path.parent / f"{name}.sha256").write_text(hashlib.sha256(bad).hexdigest())
    return path


def test_a_corrupt_cached_zip_is_deleted_and_fetched_again(server, tmp_path):
    """Issue 13 item 11: a cached teacher zip with a bad CRC-32 is deleted and fetched
    again online; offline the error names it; a user's corrupt copy is named, kept."""
    from di4c.checkpoints import CheckpointFormatError
    from di4c.teachers.tauldr import teacher_checkpoint_path

    _Handler.files["/folder.zip"] = _teacher_zip()
    remote = RemoteFile(
        name="folder.zip", url=f"{server}/folder.zip", config_key="weights.teacher"
    )
    cached = _cache_corrupt_zip("folder.zip")
    path = teacher_checkpoint_path(remote=remote)
    assert path.read_bytes() == GOOD and _Handler.hits["/folder.zip"] == 1
    assert cached.read_bytes() == _teacher_zip()

    path.unlink()  # the extracted checkpoint: a rerun must read the zip again
    cached = _cache_corrupt_zip("folder.zip")
    offline = RemoteFile(
        name="folder.zip", url=f"{OFFLINE}/folder.zip", config_key="weights.teacher"
    )
    with pytest.raises(MissingWeightsError) as info:
        teacher_checkpoint_path(remote=offline)
    msg = str(info.value)
    assert msg.startswith(f"{cached}: a corrupt zip (BadZipFile: Bad CRC-32"), msg
    assert "set config key 'weights.teacher' to its local path" in msg
    assert not cached.exists()

    mine = tmp_path / "my-folder.zip"
    mine.write_bytes(_teacher_zip(flip=True))
    with pytest.raises(CheckpointFormatError, match="my-folder.zip: a corrupt zip"):
        teacher_checkpoint_path(mine, remote=offline)
    assert mine.exists()
