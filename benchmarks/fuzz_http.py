"""The `http` target of benchmarks.fuzz: whole requests to `POST /v1/predict` of the service, in process.

An input is `query \\n content-type \\n body`: the seeds are well-formed requests (multipart forms holding the image
seeds of benchmarks.fuzz, one or several files, and raw image bodies), and the mutations reach the query, the
header and the body alike. The app (a small `mlp` model with fresh weights behind the real batcher) is called as
an ASGI application on one event loop, without sockets. Accepted: 200 with predictions (an image of several that
cannot be used gets a 4xx error entry of its own); refused: a 4xx or 503 whose
body is the JSON error object; anything else (a 5xx, a body that is not that JSON, an exception) is a crash.
"""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import torch

from fmnist.checkpoint import ModelMeta
from fmnist.inference import Predictor
from fmnist.models import build_model
from fmnist.serve import ServeSettings, build_card, create_app

BOUNDARY = b"fuzzboundary"
QUERIES = [b"", b"top_k=3", b"top_k=1&return_input=true", b"preprocess=photo", b"preprocess=dataset&top_k=10",
           b"preprocess=auto&return_input=1"]
TYPES = [b"multipart/form-data; boundary=" + BOUNDARY, b"image/png", b"image/jpeg", b"application/octet-stream",
         b"multipart/form-data", b"text/plain", b""]


def multipart(files: list[bytes]) -> bytes:
    parts = [b"--" + BOUNDARY + b"\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f%d.png\"\r\n"
             b"Content-Type: image/png\r\n\r\n" % i + data + b"\r\n" for i, data in enumerate(files)]
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def request_seeds(images: list[bytes]) -> list[bytes]:
    seeds = [QUERIES[i % len(QUERIES)] + b"\n" + TYPES[0] + b"\n" + multipart([img]) for i, img in enumerate(images)]
    seeds.append(QUERIES[1] + b"\n" + TYPES[0] + b"\n" + multipart(images[:3]))
    seeds += [b"\n" + TYPES[1] + b"\n" + img for img in images[:4]]
    return seeds


def request_edit(rng: random.Random, data: bytes) -> bytes:
    """Swap the query or the content type for another (right, wrong or empty)."""
    query, kind, body = (data.split(b"\n", 2) + [b"", b""])[:3]
    if rng.random() < 0.5:
        query = rng.choice(QUERIES + [b"top_k=0", b"top_k=-1", b"top_k=99999999999999999999", b"preprocess=%00",
                                      b"return_input=maybe", b"x=1", b"&&&", rng.randbytes(8)])
    else:
        kind = rng.choice(TYPES + [b"multipart/form-data; boundary=", b"multipart/form-data; boundary=" + b"x" * 300])
    return query + b"\n" + kind + b"\n" + body


class Client:
    """The app on one event loop; `status(data)` runs one request and returns (status, parsed JSON body)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        classes = [str(i) for i in range(10)]
        model = build_model("mlp", in_channels=1, num_classes=10, hidden=16).eval()
        meta = ModelMeta(model="mlp", model_args={"in_channels": 1, "num_classes": 10, "hidden": 16}, classes=classes)
        predictor = Predictor(model, meta, "cpu")
        settings = ServeSettings(max_request_bytes=256 * 1024, max_pixels=4_000_000, max_images=8, batch_delay_ms=0)
        self.app = create_app(predictor, settings, build_card(predictor, "fuzz"), "fuzz")
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.app.state.service.start())

    def request(self, data: bytes) -> tuple[int, object]:
        query, kind, body = (data.split(b"\n", 2) + [b"", b""])[:3]
        return self.loop.run_until_complete(self._call(query, kind, body))

    async def _call(self, query: bytes, kind: bytes, body: bytes) -> tuple[int, object]:
        headers = [(b"host", b"fuzz"), (b"content-length", str(len(body)).encode())]
        if kind:
            headers.append((b"content-type", kind))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": query,
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "root_path": ""}
        chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
        sent, answer = 0, {"status": None, "body": b""}

        async def receive():
            nonlocal sent
            if sent < len(chunks):
                sent += 1
                return {"type": "http.request", "body": chunks[sent - 1], "more_body": sent < len(chunks)}
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")

        await self.app(scope, receive, send)
        return answer["status"], json.loads(answer["body"])


def http_target(scratch, target_type, image_seeds, expect):
    """The Target for benchmarks.fuzz (its Target class, image seeds and expect are passed in: no import cycle)."""
    client = Client()

    def run(data: bytes) -> bool:
        status, body = client.request(data)
        if status == 200:
            preds = body["predictions"]
            answered = [p for p in preds if "error" not in p]  # of several images, some may fail on their own
            expect(len(answered) >= 1 and all(np.isclose(sum(p["probabilities"]), 1, atol=1e-4) for p in answered)
                   and body["failed"] == len(preds) - len(answered)
                   and all(400 <= p["error"]["status"] < 500 for p in preds if "error" in p),
                   "a 200 without valid predictions")
            return True
        expect(status is not None and 400 <= status < 500 or status == 503, f"status {status}")
        expect(set(body) == {"error"} and isinstance(body["error"].get("message"), str), f"error body {body!r:.200}")
        return False

    return target_type("http", request_seeds(image_seeds()), request_edit, run)


if __name__ == "__main__":
    raise SystemExit("benchmarks.fuzz_http is a helper module of benchmarks.fuzz, not a script; the scripts are the other "
                     "modules of benchmarks/ (`python -m benchmarks.NAME --help`)")
