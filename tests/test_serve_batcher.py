"""The micro-batcher: requests answered in order with their own rows, batches formed, a full queue refused."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from fmnist.serve.batcher import MicroBatcher, QueueFull


def ids_model(images: np.ndarray) -> np.ndarray:
    """Each image's first pixel as its row: a request's rows say whose images they were."""
    return images[:, 0, :1].astype(np.float32)


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_get_their_own_rows_and_share_model_calls():
    calls = []
    batcher = MicroBatcher(ids_model, max_batch=64, delay_s=0.02, on_batch=lambda n, r, s: calls.append((n, r)))
    batcher.start()

    async def main():
        jobs = [batcher.submit(np.full((1 + i % 3, 4, 4), i, np.uint8)) for i in range(40)]
        return await asyncio.gather(*jobs)

    try:
        results = run(main())
    finally:
        batcher.close()
    for i, rows in enumerate(results):
        assert rows.shape == (1 + i % 3, 1) and (rows == i).all()
    assert sum(n for n, _ in calls) == sum(1 + i % 3 for i in range(40))
    assert max(r for _, r in calls) > 1, "concurrent requests should have shared a model call"
    assert all(n <= 64 for n, _ in calls)


def test_batching_off_runs_one_call_per_request():
    calls = []
    batcher = MicroBatcher(ids_model, max_batch=1, delay_s=0.02, on_batch=lambda n, r, s: calls.append(r))
    batcher.start()

    async def main():
        return await asyncio.gather(*[batcher.submit(np.full((1, 4, 4), i, np.uint8)) for i in range(10)])

    try:
        results = run(main())
    finally:
        batcher.close()
    assert [int(r[0, 0]) for r in results] == list(range(10))
    assert calls == [1] * 10


def test_a_request_larger_than_the_batch_runs_alone_and_whole():
    calls = []
    batcher = MicroBatcher(ids_model, max_batch=4, delay_s=0.01, on_batch=lambda n, r, s: calls.append(n))
    batcher.start()

    async def main():
        return await asyncio.gather(batcher.submit(np.full((2, 4, 4), 1, np.uint8)),
                                    batcher.submit(np.full((9, 4, 4), 2, np.uint8)))

    try:
        small, big = run(main())
    finally:
        batcher.close()
    assert (small == 1).all() and small.shape == (2, 1)
    assert (big == 2).all() and big.shape == (9, 1)
    assert 9 in calls


def test_a_full_queue_refuses_at_once():
    release = threading.Event()

    def slow(images):
        release.wait(10)
        return ids_model(images)

    batcher = MicroBatcher(slow, max_batch=1, delay_s=0, queue_size=2)
    batcher.start()

    async def main():
        first = asyncio.ensure_future(batcher.submit(np.zeros((1, 4, 4), np.uint8)))
        second = asyncio.ensure_future(batcher.submit(np.ones((1, 4, 4), np.uint8)))
        await asyncio.sleep(0.05)
        assert batcher.depth == 2
        with pytest.raises(QueueFull):
            await batcher.submit(np.zeros((1, 4, 4), np.uint8))
        release.set()
        return await asyncio.gather(first, second)

    try:
        first, second = run(main())
    finally:
        release.set()
        batcher.close()
    assert first[0, 0] == 0 and second[0, 0] == 1
    assert batcher.depth == 0


def test_a_failing_model_call_fails_its_requests_and_the_worker_lives_on():
    def flaky(images):
        if (images == 7).any():
            raise ValueError("boom")
        return ids_model(images)

    batcher = MicroBatcher(flaky, max_batch=1, delay_s=0)
    batcher.start()

    async def main():
        with pytest.raises(ValueError, match="boom"):
            await batcher.submit(np.full((1, 4, 4), 7, np.uint8))
        return await batcher.submit(np.full((1, 4, 4), 3, np.uint8))

    try:
        assert run(main())[0, 0] == 3
    finally:
        batcher.close()


def test_submit_before_start_is_an_error():
    batcher = MicroBatcher(ids_model)
    with pytest.raises(RuntimeError, match="not running"):
        run(batcher.submit(np.zeros((1, 4, 4), np.uint8)))
