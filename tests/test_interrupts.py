"""Interrupts held back from bookkeeping and let into the work (runtime.hold_interrupts, let_interrupts)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fmnist import runtime


def interrupt_self(signum=signal.SIGINT):
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # the handler runs in the main thread at its next bytecode


@pytest.fixture(autouse=True)
def python_handlers():
    """Python's own SIGINT handler (pytest may have put another), put back as it was afterwards."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    for s, h in previous.items():
        signal.signal(s, h)
    runtime._HELD.clear()
    runtime._PENDING.clear()


def test_an_interrupt_outside_the_work_is_raised_when_the_hold_ends():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with runtime.hold_interrupts():
            interrupt_self()  # while a trial's end is recorded: noted
            steps.append("recorded")
            assert runtime.interrupt_pending()
    assert steps == ["recorded"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupt_in_the_work_is_raised_there_once():
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with runtime.hold_interrupts():
            try:
                with runtime.let_interrupts():
                    steps.append("training")
                    interrupt_self()
                    steps.append("not reached")
            except KeyboardInterrupt:
                interrupt_self()  # a second, during the handling of the first: noted, not raised here
                steps.append("marked failed")
                raise
    assert steps == ["training", "marked failed"]


def test_a_stretch_in_the_work_is_not_cut_and_the_interrupt_comes_at_its_end():
    steps = []
    with runtime.hold_interrupts():
        with pytest.raises(KeyboardInterrupt):
            with runtime.let_interrupts():
                with runtime.uninterrupted():
                    interrupt_self()
                    steps.append("written")
                steps.append("not reached")
        runtime._PENDING.clear()  # handled
    assert steps == ["written"]


def test_a_noted_interrupt_stops_the_next_work_at_its_start():
    with runtime.hold_interrupts():
        interrupt_self()
        with pytest.raises(KeyboardInterrupt):
            with runtime.let_interrupts():
                pytest.fail("the work ran")
        runtime._PENDING.clear()


def test_sigterm_taken_like_ctrl_c_is_held_and_raised_by_its_own_handler():
    seen = []

    def as_ctrl_c(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, as_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        with runtime.hold_interrupts():
            interrupt_self(signal.SIGTERM)
            assert seen == []
    assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is as_ctrl_c


def test_without_a_hold_the_blocks_change_nothing():
    with runtime.let_interrupts(), runtime.uninterrupted():
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _sleep_until_interrupted(started: str) -> str:
    """A pool task: says it started, then waits to be interrupted."""
    from pathlib import Path

    with runtime.let_interrupts():
        Path(started).write_text("")
        time.sleep(60)
    return "not interrupted"


def test_a_pool_stops_its_tasks_and_its_workers_end_though_the_interrupt_comes_again(tmp_path):
    # `timeout -s INT` signals the command, then its process group: the second SIGINT cut the parent's wait short,
    # its workers were killed while they recorded their trials, and a worker could hang the pool's exit for good.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    started = tmp_path / "started"
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=runtime.init_pool_worker,
                               initargs=(os.getpid(),))
    future = pool.submit(_sleep_until_interrupted, str(started))
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started.exists(), "the worker did not start"
    shutdown = pool.shutdown

    def interrupted_again(**kwargs):  # the repeated SIGINT, while the stop is under way
        os.kill(os.getpid(), signal.SIGINT)
        shutdown(**kwargs)

    pool.shutdown = interrupted_again
    began = time.monotonic()
    runtime.interrupt_workers(pool, grace_s=20)
    pool.shutdown = shutdown
    assert time.monotonic() - began < 15  # the task stopped; it was not waited out
    assert isinstance(future.exception(timeout=5), KeyboardInterrupt)  # in the task, which could record it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    pool.shutdown(wait=True)
