"""Prometheus metrics of one service instance (its own registry, so several apps in one process stay apart)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServeMetrics:
    """Requests by endpoint and status, latency, images, model calls and their batch sizes, queue depth."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0, endpoints: Iterable[str] = ()) -> None:
        # Requests are labelled by path only for these (the app's routes, set once they exist); any other path
        # counts as "other", so a client cannot grow the labels, and the memory they take, with made-up paths.
        self.endpoints = frozenset(endpoints)
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fmnist_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram("fmnist_request_latency_seconds", "Time from request to response", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("fmnist_images", "Images predicted", registry=r)
        self.batch_size = Histogram("fmnist_batch_size_images", "Images per model call", buckets=BATCH_BUCKETS,
                                    registry=r)
        self.batch_requests = Histogram("fmnist_batch_size_requests", "Requests per model call",
                                        buckets=BATCH_BUCKETS, registry=r)
        self.model_seconds = Histogram("fmnist_model_call_seconds", "Duration of one model call",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("fmnist_rejected", "Requests refused because the queue was full", registry=r)
        depth = Gauge("fmnist_queue_depth", "Requests waiting for the model", registry=r)
        depth.set_function(queue_depth)

    def on_batch(self, n_images: int, n_requests: int, seconds: float) -> None:
        self.images.inc(n_images)
        self.batch_size.observe(n_images)
        self.batch_requests.observe(n_requests)
        self.model_seconds.observe(seconds)

    def observe(self, path: str, status: int, seconds: float) -> None:
        endpoint = path if path in self.endpoints else "other"
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response by endpoint and status and times it."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(scope.get("path", ""), status, time.perf_counter() - start)
