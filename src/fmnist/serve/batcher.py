"""Micro-batching: the images of concurrent requests gathered into one model call, each request answered alone.

A request's images go into a bounded queue with a future. One worker thread takes the first waiting request,
then keeps taking more until the batch holds `max_batch` images or `delay_s` has passed since it started, runs
the model once on them all (off the event loop), and hands each request its own rows. A request's images are
never split across calls; one request larger than `max_batch` runs alone. When `queue_size` requests are already
waiting, `submit` refuses at once (the service answers 503 with Retry-After) instead of letting the queue grow.
With max_batch 1 every request is its own model call: batching off, for comparison.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class QueueFull(Exception):
    """The batcher's queue holds `queue_size` requests already."""


@dataclass
class _Job:
    images: np.ndarray  # uint8 [n, H, W]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Runs `predict` (uint8 images [N, H, W] -> float32 rows [N, K]) on batches gathered from concurrent submits.

    `on_batch(n_images, n_requests, seconds)` is told about each model call (for metrics).
    """

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 64, delay_s: float = 0.002,
                 queue_size: int = 512, on_batch: Callable[[int, int, float], None] | None = None) -> None:
        self.predict, self.max_batch, self.delay_s, self.queue_size = predict, max_batch, delay_s, queue_size
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._waiting = 0  # requests submitted and not yet answered (changed on the event loop only)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._carry: _Job | None = None  # a job taken that did not fit the last batch

    @property
    def depth(self) -> int:
        """Requests waiting for (or in) a model call."""
        return self._waiting

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="fmnist-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Answer what is queued, then stop the worker."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout_s)

    async def submit(self, images: np.ndarray) -> np.ndarray:
        """The model's rows for `images` (uint8 [n, H, W]), computed in some batch; QueueFull if the queue is full."""
        if self._waiting >= self.queue_size:
            raise QueueFull()
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        job = _Job(images, loop.create_future(), loop)
        self._waiting += 1
        try:
            self._queue.put(job)
            return await job.future
        finally:
            self._waiting -= 1

    def _work(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._run(batch)

    def _gather(self) -> list[_Job] | None:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is None:
            return None
        batch, n = [first], len(first.images)
        deadline = time.perf_counter() + self.delay_s
        while n < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:  # closing: answer this batch, then stop
                self._queue.put(None)
                break
            if n + len(job.images) > self.max_batch:
                self._carry = job
                break
            batch.append(job)
            n += len(job.images)
        return batch

    def _run(self, batch: list[_Job]) -> None:
        start = time.perf_counter()
        try:
            rows = self.predict(np.concatenate([job.images for job in batch]))
        except BaseException as e:  # every waiting request learns of the failure; the worker lives on
            for job in batch:
                job.loop.call_soon_threadsafe(_settle, job.future, None, e)
            return
        seconds = time.perf_counter() - start
        if self.on_batch is not None:
            self.on_batch(len(rows), len(batch), seconds)
        offset = 0
        for job in batch:
            n = len(job.images)
            job.loop.call_soon_threadsafe(_settle, job.future, rows[offset : offset + n], None)
            offset += n


def _settle(future: asyncio.Future, result: np.ndarray | None, error: BaseException | None) -> None:
    if future.done():  # the request gave up waiting (timeout, client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
