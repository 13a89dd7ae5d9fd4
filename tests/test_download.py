"""Downloads, for real, from a local HTTP server: good files, wrong checksums, cut-off transfers, dead mirrors."""

from __future__ import annotations

import gzip
import hashlib
import json
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fmnist.data import DATASETS, FILES, DatasetSpec, Split, download, idx, load_dataset, write_dataset
from fmnist.errors import DataError

DIGITS = tuple(str(i) for i in range(10))


class _Mirror(BaseHTTPRequestHandler):
    """Serves `server.routes`: path -> (body, announced Content-Length); records every request."""

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length = self.server.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)  # HTTP/1.0: the connection closes after this, short or not

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    httpd.routes, httpd.hits = {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _tiny(seed: int) -> tuple[Split, Split]:
    rng = np.random.default_rng(seed)
    make = lambda n: Split(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 10, DIGITS)
    return make(30), make(10)


@pytest.fixture
def mirror(server, tmp_path, monkeypatch):
    """Base URL of the local mirror, with routes good/, badsum/, cut/, garbage/ (anything else is a 404)."""
    monkeypatch.delenv("FMNIST_MIRROR", raising=False)
    good = write_dataset(tmp_path / "good", *_tiny(0))
    other = write_dataset(tmp_path / "other", *_tiny(1))
    server.routes.clear()
    server.hits.clear()
    for f in FILES:
        blob = (good / f"{f}.gz").read_bytes()
        server.routes[f"/good/{f}.gz"] = (blob, len(blob))
        server.routes[f"/cut/{f}.gz"] = (blob[: len(blob) // 2], len(blob))  # promises all, sends half
        wrong = (other / f"{f}.gz").read_bytes()
        server.routes[f"/badsum/{f}.gz"] = (wrong, len(wrong))
        server.routes[f"/garbage/{f}.gz"] = (b"<html>moved</html>", 18)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    sha256 = {f: hashlib.sha256(gzip.decompress((good / f"{f}.gz").read_bytes())).hexdigest() for f in FILES}
    md5 = {f: hashlib.md5((good / f"{f}.gz").read_bytes()).hexdigest() for f in FILES}
    return base, sha256, md5, good


def _spec(*mirrors: str, sha256=None, md5=None) -> DatasetSpec:
    return DatasetSpec(name="tiny", title="Tiny", classes=DIGITS, mirrors=mirrors, sha256=sha256 or {}, gz_md5=md5 or {})


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _files(directory) -> list:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def test_download_verifies_caches_and_is_not_repeated(mirror, server, isolated_cache, monkeypatch, capsys):
    base, sha256, _, good = mirror
    hashed = []
    real_sha256 = idx.sha256_hex
    monkeypatch.setattr(idx, "sha256_hex", lambda data: hashed.append(1) or real_sha256(data))
    spec = _spec(f"{base}/good/", sha256=sha256)
    ds = load_dataset(spec)
    assert (ds.source, ds.source_dir, ds.verified) == ("download", isolated_cache / "tiny", True)
    assert sorted(p.name for p in (isolated_cache / "tiny").iterdir()) == sorted(f"{f}.gz" for f in FILES)
    for f in FILES:
        assert (isolated_cache / "tiny" / f"{f}.gz").read_bytes() == (good / f"{f}.gz").read_bytes()
    np.testing.assert_array_equal(ds.train.images, _tiny(0)[0].images)
    assert sorted(server.hits) == sorted(f"/good/{f}.gz" for f in FILES)
    assert len(hashed) == 4  # each file hashed once, at download; the load after it reuses the digests
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar, on stderr

    again = load_dataset(spec)
    assert (again.source, again.verified, again.checksum) == ("cache", True, ds.checksum)
    assert len(server.hits) == 4 and len(hashed) == 4


def test_md5_verified_download(mirror):
    base, _, md5, _ = mirror
    assert load_dataset(_spec(f"{base}/good/", md5=md5), progress=False).verified
    with pytest.raises(DataError, match="MD5 of the .gz file"):
        load_dataset(DatasetSpec(name="tiny2", title="Tiny", classes=DIGITS, mirrors=(f"{base}/badsum/",), gz_md5=md5))


def test_next_mirror_is_tried(mirror, server):
    base, sha256, _, _ = mirror
    ds = load_dataset(_spec(_closed_port_url(), f"{base}/missing/", f"{base}/good/", sha256=sha256), progress=False)
    assert ds.source == "download" and ds.verified
    assert server.hits.count(f"/missing/{FILES[0]}.gz") == 1


def test_mirror_environment_variable_overrides(mirror, monkeypatch):
    base, sha256, _, _ = mirror
    monkeypatch.setenv("FMNIST_MIRROR", f"{base}/good")
    assert load_dataset(_spec(_closed_port_url(), sha256=sha256), progress=False).source == "download"


def test_only_missing_files_are_downloaded(mirror, server, isolated_cache):
    base, sha256, _, good = mirror
    (isolated_cache / "tiny").mkdir(parents=True)
    for f in FILES[:3]:
        (isolated_cache / "tiny" / f"{f}.gz").write_bytes((good / f"{f}.gz").read_bytes())
    ds = load_dataset(_spec(f"{base}/good/", sha256=sha256), progress=False)
    assert ds.source == "download" and ds.verified
    assert server.hits == [f"/good/{FILES[3]}.gz"]


@pytest.mark.parametrize(
    "route, problem",
    [
        ("badsum", "checksum mismatch"),
        ("cut", "interrupted: received"),
        ("garbage", "wrong magic number"),
        ("missing", "HTTP error 404"),
        (None, "connection failed"),
    ],
)
def test_failed_download_leaves_nothing(mirror, isolated_cache, route, problem):
    base, sha256, _, _ = mirror
    url = f"{base}/{route}/" if route else _closed_port_url()
    with pytest.raises(DataError) as e:
        load_dataset(_spec(url, sha256=sha256), progress=False)
    message = str(e.value)
    assert f"{FILES[0]}.gz" in message and problem in message and "No copy of it entered the cache" in message, message
    assert "FMNIST_MIRROR" in message and "--data-dir" in message
    assert _files(isolated_cache) == []


def test_interrupted_download_leaves_nothing(mirror, isolated_cache, monkeypatch):
    base, sha256, _, _ = mirror
    real_urlopen = urllib.request.urlopen

    def urlopen_then_ctrl_c(url, timeout):
        response = real_urlopen(url, timeout=timeout)
        real_read, reads = response.read, []

        def read(n=-1):
            reads.append(n)
            if len(reads) > 1:
                raise KeyboardInterrupt
            return real_read(n)

        response.read = read
        return response

    monkeypatch.setattr(urllib.request, "urlopen", urlopen_then_ctrl_c)
    monkeypatch.setattr(download, "CHUNK_BYTES", 64)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(_spec(f"{base}/good/", sha256=sha256), progress=False)
    assert _files(isolated_cache) == []


def test_fetch_command_downloads(mirror, monkeypatch, cli, isolated_cache):
    base, sha256, _, _ = mirror
    monkeypatch.setitem(DATASETS, "tiny", _spec(f"{base}/good/", sha256=sha256))
    r = cli("data", "fetch", "--dataset", "tiny", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["source"], summary["verified"], summary["source_dir"]) == ("download", True, str(isolated_cache / "tiny"))
    r = cli("data", "fetch", "--dataset", "tiny")
    assert r.exit_code == 0 and "the cache" in r.stdout


def test_fetch_command_refuses_wrong_fashion_mnist(mirror, monkeypatch, tmp_path, cli, isolated_cache):
    """A mirror serving the wrong files under Fashion-MNIST's names: exit 2, nothing cached."""
    base, _, _, _ = mirror
    monkeypatch.setenv("FMNIST_MIRROR", f"{base}/good/")
    monkeypatch.setenv("FMNIST_SYSTEM_DIR", str(tmp_path / "no-system"))
    r = cli("data", "fetch")
    flat = " ".join(r.stderr.split())
    assert r.exit_code == 2 and "checksum mismatch" in flat and "Traceback" not in r.stderr
    assert _files(isolated_cache) == []
