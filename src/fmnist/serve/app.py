"""The FastAPI application: predictions through the micro-batcher, the model's facts and card, health, metrics,
and the page at `/`.

Every answer that is not a success is JSON `{"error": {"code", "message"}}` (errors.py): bad input is a 4xx,
a full queue or a missed deadline a 503 with Retry-After; nothing a client sends reaches the file system. A
request of several images is answered image by image: one that cannot be used gets `{"filename", "error":
{"code", "message", "status"}}` in place of its prediction (`failed` counts them), and only a request none of
whose images can be used fails as a whole, with its first image's error.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from fmnist import __version__
from fmnist.errors import DataError, TooLargeError
from fmnist.imaging import MODES, Preprocessed, prepare_file, readable_formats
from fmnist.inference import TOP_K, BasePredictor
from fmnist.serve.batcher import MicroBatcher, QueueFull
from fmnist.serve.card import ModelCard, build_card, png_base64
from fmnist.serve.errors import (
    ServeError,
    bad_request,
    error_response,
    overloaded,
    too_large,
    unprocessable_image,
)
from fmnist.serve.metrics import MetricsMiddleware, ServeMetrics
from fmnist.serve.settings import ServeSettings
from fmnist.serve.upload import Upload, deadline_after, parse_uploads, read_body

log = logging.getLogger("fmnist.serve")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INLINE_PIXELS = 64 * 64  # an upload this small (and under ServeSettings.inline_bytes) is decoded on the event loop
PAGE = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript"),
        "/static/style.css": ("style.css", "text/css")}
# The page loads nothing from elsewhere; uploads are shown from blob: URLs and the model's view from data: URLs.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}}


def predict_query(k: int) -> list[dict[str, Any]]:
    """The OpenAPI description of /v1/predict's query parameters."""
    return [
        {"name": "top_k", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": TOP_K},
         "description": f"alternatives per image (at most {k}; more is clipped)"},
        {"name": "preprocess", "in": "query", "schema": {"type": "string", "enum": list(MODES), "default": "auto"},
         "description": "auto (dataset-style images as they are, photos through the photo pipeline), photo or dataset"},
        {"name": "return_input", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "include the 28x28 image the model saw (PNG, base64)"},
    ]


BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def parse_query(query: Mapping[str, str], k: int) -> tuple[int, str, bool]:
    """(top_k clipped to the classes, preprocessing mode, return_input) from /v1/predict's query, or a 400."""
    unknown = sorted(set(query) - {"top_k", "preprocess", "return_input"})
    if unknown:
        raise bad_request(f"unknown query parameter {unknown[0][:40]!r}; use top_k, preprocess or return_input")
    raw = query.get("top_k", str(TOP_K))
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # isdigit alone takes "²", which int() refuses
        raise bad_request(f"top_k must be a whole number of at least 1, got {raw[:40]!r}")
    mode = query.get("preprocess", "auto")
    if mode not in MODES:
        raise bad_request(f"unknown preprocessing mode {mode[:40]!r}; use one of {', '.join(MODES)}")
    flag = query.get("return_input", "false").lower()
    if flag not in BOOLEANS:
        raise bad_request(f"return_input must be true or false, got {flag[:40]!r}")
    return min(int(raw), k), mode, BOOLEANS[flag]


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj).encode(), status_code=status, media_type="application/json")


class Service:
    """The state of one running service: the predictor behind its batcher, limits, metrics and card."""

    def __init__(self, predictor: BasePredictor, settings: ServeSettings, card: ModelCard) -> None:
        self.predictor, self.settings, self.card = predictor, settings, card
        self.metrics = ServeMetrics(queue_depth=lambda: self.batcher.depth)
        self.batcher = MicroBatcher(predictor.predict_proba, settings.max_batch, settings.batch_delay_ms / 1000,
                                    settings.queue_size, self.metrics.on_batch)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fmnist-prepare")
        self.ready = False

    async def start(self) -> None:
        readable_formats()  # Pillow loads its image readers once, now, rather than in the first request
        self.batcher.start()
        h, w = self.predictor.meta.input_size
        for n in sorted({1, self.settings.max_batch}):  # warm up: first calls allocate and pick kernels
            await self.batcher.submit(np.zeros((n, h, w), np.uint8))
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        self.batcher.close()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def predict(self, request: Request, top_k: int, mode: str, return_input: bool) -> dict[str, Any]:
        s = self.settings
        deadline = time.monotonic() + s.request_timeout_s
        body = await read_body(request, s.max_request_bytes, s.request_timeout_s)
        uploads = parse_uploads(request.headers.get("content-type", ""), body, s.max_images)
        try:
            if all(_small(u.data, s.inline_bytes) for u in uploads):
                results = _prepare_all(uploads, mode, s.max_pixels)  # tiny images: decoded at once, here
            else:
                # The deadline covers decoding too: the worker stops before its next image once it has passed, so
                # a request of many large images (or one whose client has gone) holds no core past its deadline.
                async with deadline_after(max(deadline - time.monotonic(), 0.001)):
                    results = await asyncio.get_running_loop().run_in_executor(
                        self.pool, _prepare_all, uploads, mode, s.max_pixels, deadline)
        except (asyncio.TimeoutError, DeadlinePassed):
            raise overloaded(f"the images were not decoded within {s.request_timeout_s:g} s; send fewer or smaller "
                             "images per request, or retry when the service is less busy") from None
        failed = [r for r in results if isinstance(r, ServeError)]
        if len(failed) == len(results):  # nothing to predict: the request fails with its (first) image's error
            raise failed[0]
        prepared = [r for r in results if not isinstance(r, ServeError)]
        try:
            async with deadline_after(max(deadline - time.monotonic(), 0.001)):
                rows = await self.batcher.submit(np.stack([p.image for p in prepared]))
        except QueueFull:
            self.metrics.rejected.inc()
            raise overloaded(f"the service is busy ({s.queue_size} requests waiting); retry shortly") from None
        except asyncio.TimeoutError:
            raise overloaded(f"no prediction within {s.request_timeout_s:g} s; the service is overloaded") from None
        names = [u.filename for u, r in zip(uploads, results) if not isinstance(r, ServeError)]
        predictions = iter(self.predictor.predictions(rows, names, prepared, top_k))
        items = []
        for upload, result in zip(uploads, results):
            if isinstance(result, ServeError):  # one image of several: the others are still answered
                items.append({"filename": upload.filename, "error": {"code": result.code, "message": result.message,
                                                                     "status": result.status}})
                continue
            p = next(predictions)
            item = {"filename": p.path, "index": p.index, "name": p.name, "probability": p.probability,
                    "confident": p.confident, "preprocess": p.preprocess,
                    "top": [{"index": i, "name": n, "probability": q} for i, n, q in p.top],
                    "probabilities": p.probabilities}
            if return_input:
                item["input_png"] = png_base64(p.image)
            items.append(item)
        return {"classes": self.predictor.classes, "backend": self.predictor.backend, "predictions": items,
                "failed": len(failed)}


def _small(data: bytes, limit: int) -> bool:
    """Whether an upload is cheap to decode: few bytes and (from its header) few pixels."""
    if len(data) > limit:
        return False
    if data[:8] == PNG_SIGNATURE and len(data) >= 24:  # the common case, without opening it twice
        width, height = struct.unpack(">II", data[16:24])
        return width * height <= INLINE_PIXELS
    try:
        with Image.open(io.BytesIO(data), formats=readable_formats()) as img:
            return img.width * img.height <= INLINE_PIXELS
    except Exception:  # not an image: prepare_file fails fast with the reason
        return True


class DeadlinePassed(Exception):
    """The request's deadline passed while its images were decoded."""


def _prepare_all(uploads: list[Upload], mode: str, max_pixels: int,
                 deadline: float | None = None) -> list[Preprocessed | ServeError]:
    """Each upload preprocessed, or the error that answers it (the request's own, when it is the only image);
    DeadlinePassed once time.monotonic() passes `deadline` between two images."""
    results: list[Preprocessed | ServeError] = []
    for i, upload in enumerate(uploads):
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlinePassed()
        name = f"{upload.filename!r} (image {i + 1})" if len(uploads) > 1 else repr(upload.filename)
        results.append(_prepare(upload, mode, max_pixels, name))
    return results


def _prepare(upload: Upload, mode: str, max_pixels: int, name: str) -> Preprocessed | ServeError:
    if not upload.data:
        return unprocessable_image(f"image {name} is empty")
    try:
        return prepare_file(upload.data, mode, name, max_pixels)
    except TooLargeError as e:
        return too_large("image_too_large", str(e))
    except DataError as e:
        return unprocessable_image(str(e))


def _page(name: str) -> bytes:
    return resources.files("fmnist.serve").joinpath("page", name).read_bytes()


def create_app(predictor: BasePredictor, settings: ServeSettings | None = None, card: ModelCard | None = None,
               model_name: str = "model") -> FastAPI:
    """The service for `predictor`: its routes, limits, metrics and page. It is ready (/readyz) once warmed up."""
    service = Service(predictor, settings or ServeSettings(), card or build_card(predictor, model_name))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await service.start()
        try:
            yield
        finally:
            service.stop()

    # redirect_slashes off: /v1/predict/ is a 404 with a JSON body, not a 307 that a client may not follow.
    app = FastAPI(title="fmnist", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  description=f"Predicts the class of clothing images with {model_name} "
                              f"({predictor.meta.model}, {len(predictor.classes)} classes).")
    app.state.service = service
    _errors(app)
    _routes(app, service)
    service.metrics.endpoints = frozenset(route.path for route in app.routes)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    app.add_middleware(HeadAsGet)
    return app


class HeadAsGet:
    """Pure ASGI middleware: HEAD is answered as GET without its body (the headers, Content-Length included, are
    GET's), as HTTP asks of every resource that answers GET; uptime checkers probe with it."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def _routes(app: FastAPI, service: Service) -> None:
    pages = {path: (_page(name), media) for path, (name, media) in PAGE.items()}
    k = len(service.predictor.classes)

    # The query is read by hand rather than through FastAPI's parameter injection: at a thousand requests a
    # second that injection was a fifth of the handler's time. PREDICT_QUERY documents the same parameters.
    @app.post("/v1/predict", openapi_extra={**PREDICT_BODY, "parameters": predict_query(k)},
              summary="Predict the class of one or more images")
    async def predict(request: Request):
        try:
            query = request.query_params
        except UnicodeDecodeError:
            raise bad_request("the query string is not UTF-8; percent-encode it") from None
        top_k, mode, return_input = parse_query(query, k)
        return json_response(await service.predict(request, top_k, mode, return_input))

    @app.get("/v1/model", summary="The model: recipe, classes, test accuracy, dataset, versions, limits")
    async def model_info():
        s = service.settings
        limits = {"max_request_bytes": s.max_request_bytes, "max_images": s.max_images, "max_pixels": s.max_pixels,
                  "request_timeout_s": s.request_timeout_s, "max_batch": s.max_batch,
                  "batch_delay_ms": s.batch_delay_ms, "queue_size": s.queue_size}
        return json_response({**service.card.info, "limits": limits})

    @app.get("/v1/card", summary="The model card: accuracy, per-class recall, confusion matrix")
    async def model_card():
        return json_response(service.card.card)

    @app.get("/v1/gallery", summary="Test-set images to try, with their true classes")
    async def gallery():
        return json_response({"items": service.card.gallery})

    @app.get("/healthz", summary="Alive")
    async def healthz():
        return json_response({"status": "ok"})

    @app.get("/readyz", summary="Model loaded and warmed up")
    async def readyz():
        if not service.ready:
            return error_response(503, "not_ready", "the model is loading or warming up")
        return json_response({"status": "ready"})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics():
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    for path, (body, media) in pages.items():
        app.add_api_route(path, _static(body, media), methods=["GET"], include_in_schema=False)


def _static(body: bytes, media: str):
    async def page() -> Response:
        return Response(body, media_type=media, headers={"Content-Security-Policy": PAGE_POLICY,
                                                         "Cache-Control": "no-cache"})
    return page


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError):
        return error_response(e.status, e.code, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(x) for x in err.get('loc', ())[1:]) or 'request'}: {err.get('msg')}"
                             for err in e.errors())
        return error_response(400, "bad_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return error_response(e.status_code, code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error_response(500, "internal", "the service failed to answer; this is a bug, see its log")
