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

    def do_GET(self):  # noqa: N802 - http.server API
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/good.bin":
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
    _Handler.hits = {}
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
