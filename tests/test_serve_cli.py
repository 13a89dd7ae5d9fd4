"""`fmnist serve` as a user runs it: a live server on 127.0.0.1 (a free port), answering, and stopping on SIGTERM;
bad options and a port in use refused with a sentence."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'fmnist[serve]')")

from fmnist.checkpoint import ModelMeta, save_model  # noqa: E402
from fmnist.inference import Predictor  # noqa: E402
from fmnist.models import build_model  # noqa: E402
from fmnist.serve import ServeSettings, build_card, create_app  # noqa: E402
from fmnist.serve.server import running  # noqa: E402
from tests.helpers import CLASSES, png_bytes, tiny_meta, tiny_model  # noqa: E402


def mlp_file(path):
    """A model file of a registered architecture (a child process does not see the tests' tiny one)."""
    import torch

    torch.manual_seed(0)
    model = build_model("mlp", in_channels=1, num_classes=3, hidden=8).eval()
    meta = ModelMeta(model="mlp", model_args={"in_channels": 1, "num_classes": 3, "hidden": 8}, classes=CLASSES,
                     mean=0.286, std=0.353, dataset="fashion-mnist")
    return save_model(path, model, meta)


def post_image(url: str, data: bytes, name: str = "a.png") -> tuple[int, dict]:
    boundary = "testboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/v1/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_serve_command_answers_and_stops_on_sigterm(tmp_path):
    model = mlp_file(tmp_path / "model.safetensors")
    env = {**os.environ, "FMNIST_DATA_DIR": str(tmp_path / "no-data")}  # no test set: no gallery, no download
    proc = subprocess.Popen([sys.executable, "-m", "fmnist", "serve", str(model), "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        url, lines = None, []
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        for _ in range(200):
            status, _ = get(url + "/readyz")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
        assert get(url + "/healthz") == (200, b'{"status": "ok"}')
        status, body = post_image(url, png_bytes(np.full((28, 28), 200, np.uint8)), "[red]shirt.png")
        assert status == 200 and body["predictions"][0]["filename"] == "[red]shirt.png"
        onnx = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnx", "onnxscript"))
        assert body["backend"] == ("onnx" if onnx else "torch")  # auto: ONNX Runtime where it is installed
        assert body["predictions"][0]["name"] in CLASSES
        status, body = post_image(url, b"not a png")
        assert status == 422 and body["error"]["code"] == "bad_image"
        assert b"fmnist_requests_total" in get(url + "/metrics")[1]
        assert get(url + "/docs")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        rest = proc.stderr.read()
        proc.stderr.close()
        proc.stdout.close()
    assert code in (0, -signal.SIGTERM), rest
    assert "Traceback" not in "".join(lines) + rest


def test_live_server_answers_concurrent_clients_each_with_their_own_result():
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    app = create_app(predictor, ServeSettings(batch_delay_ms=20), build_card(predictor, "tiny"), "tiny")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (12, 28, 28), dtype=np.uint8)
    expected = predictor.predict_proba(images)
    with running(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda i: post_image(url, png_bytes(images[i]), f"{i}.png"), range(12)))
        metrics = get(url + "/metrics")[1].decode()
    for i, (status, body) in enumerate(results):
        assert status == 200
        (p,) = body["predictions"]
        assert p["filename"] == f"{i}.png"
        np.testing.assert_allclose(p["probabilities"], expected[i], atol=1e-6)
    calls = float(re.search(r"^fmnist_batch_size_requests_count (\S+)$", metrics, re.M).group(1))
    assert calls < 12 + 2, "12 concurrent requests (plus the warm-up's 2 calls) should share model calls"
    with pytest.raises(OSError):  # stopped: nothing listens any more
        socket.create_connection(url.removeprefix("http://").split(":"), timeout=2).close()


def test_a_port_in_use_and_bad_options_are_one_sentence(cli, tmp_path):
    model = mlp_file(tmp_path / "model.safetensors")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = cli("serve", model, "--port", port)
    assert r.exit_code == 2 and f"port {port}" in r.stderr and "in use" in r.stderr
    for args, fragment in ([("--max-batch", "0"), "max-batch"], [("--backend", "tpu"), "backend"],
                           [("--batch-delay-ms", "-1"), "batch-delay-ms"], [("--max-request-mb", "0"), "max-request-mb"],
                           [("--host", "256.1.1.1"), "256.1.1.1"]):
        r = cli("serve", model, "--port", "0", *args)
        assert r.exit_code == 2, (args, r.stderr)
        assert fragment in r.stderr and "Traceback" not in r.stderr
    r = cli("serve", tmp_path / "missing.safetensors", "--port", "0")
    assert r.exit_code == 2 and "missing.safetensors" in r.stderr


def test_threads_are_not_left_running_after_the_app_stops():
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    before = {t.name for t in threading.enumerate()}
    with running(create_app(predictor, ServeSettings(), build_card(predictor, "tiny"), "tiny")):
        pass
    time.sleep(0.2)
    left = {t.name for t in threading.enumerate()} - before
    assert not {n for n in left if n.startswith("fmnist-")}, left


def raw_exchange(url: str, data: bytes, trickle: bytes = b"", pause_s: float = 0.0, timeout_s: float = 10.0) -> bytes:
    """Send `data` (then `trickle` a byte at a time) on a fresh connection; everything the server sends back."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(data)
        for b in trickle:
            time.sleep(pause_s)
            try:
                sock.sendall(bytes([b]))
            except OSError:
                break
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                return received  # closed by the server
            received += chunk


def test_refused_bodies_close_the_connection_and_slow_ones_time_out_without_blocking_others():
    predictor = Predictor(tiny_model(), tiny_meta(), "cpu")
    settings = ServeSettings(max_request_bytes=64 * 1024, request_timeout_s=1.0)
    app = create_app(predictor, settings, build_card(predictor, "tiny"), "tiny")
    head = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n"
    with running(app) as url:
        # Declared over the limit: answered 413 at once, and the connection closed (the rest of the body is not
        # read, so it must not be taken for a next request).
        answer = raw_exchange(url, head.format(11 * 1024 * 1024).encode() + b"\0" * 4096)
        assert answer.startswith(b"HTTP/1.1 413") and b"request_too_large" in answer
        assert b"connection: close" in answer.lower()
        # A body that trickles in slower than the timeout gets 408 while another client is answered meanwhile.
        slow = {}
        thread = threading.Thread(target=lambda: slow.setdefault("answer", raw_exchange(
            url, head.format(1000).encode(), trickle=b"\0" * 40, pause_s=0.1)))
        thread.start()
        time.sleep(0.2)
        start = time.monotonic()
        status, _ = post_image(url, png_bytes(np.zeros((28, 28), np.uint8)))
        assert status == 200 and time.monotonic() - start < 1.0
        thread.join(10)
        assert slow["answer"].startswith(b"HTTP/1.1 408") and b"request_timeout" in slow["answer"]
