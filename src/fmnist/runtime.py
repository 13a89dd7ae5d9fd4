"""The runtime: device, precision, threads and the allocator.

`resolve_device`, `resolve_precision` and `autocast` are pure choices a library call may make. `set_threads` and
`keep_freed_memory` change the whole process, so only the edges call them: the CLI's entry point and the
benchmark scripts' mains (a library user keeps their own process settings).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from typing import Any

import torch

from fmnist.errors import UsageError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; asking for CUDA without one is a usage error."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but PyTorch sees no CUDA device; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda")


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks and container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | None = None) -> int:
    """Use `threads` intra-op threads (default: every available core); returns the number set."""
    n = threads or available_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` (auto|bf16|fp32): None means plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if bf16_supported(device) else None
    raise UsageError(f"unknown precision {precision!r}; use auto, bf16 or fp32")


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_allocator_tuned = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed memory instead of returning it to the OS after every step.

    A training step allocates and frees the same activation buffers (a few MB each) every batch. With glibc's
    defaults, buffers above the dynamic mmap threshold are mmap'ed and munmap'ed each time, and freed heap
    tops are trimmed, so every step page-faults its memory back in. Measured on `baseline` (bf16, 2 cores):
    3.3 s/epoch with this against 4.4-7.2 s/epoch without, varying from run to run. Buffers above 32 MB
    (a batch of 1024 in MiniVGGNet) would still be mmap'ed, so mmap is switched off altogether: MiniVGGNet
    inference at batch 1024 went from 2,500 to 7,900 images/s. (glibc still falls back to mmap when the heap
    cannot grow.) Returns whether it was applied (only where the C library is glibc).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = (
        mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        and mallopt(_M_MMAP_MAX, 0)
        and mallopt(_M_TRIM_THRESHOLD, 1 << 30)
        and mallopt(_M_TOP_PAD, 64 << 20)
    )
    _allocator_tuned = bool(ok)
    return _allocator_tuned


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for `dtype` on `device`, or a no-op for fp32 (None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def configure_process(threads: int | None = None) -> int:
    """What a command-line entry point does once: intra-op threads (default every core) and, on glibc, malloc
    tuned to keep freed memory (see `keep_freed_memory`). Returns the thread count."""
    n = set_threads(threads)
    keep_freed_memory()
    return n


def exit_with_parent(parent: int, poll_s: float = 1.0) -> None:
    """In a worker process (a pool initializer, `parent` the pid of the process making the pool): exit as soon as
    that process is gone.

    A parent killed outright (SIGKILL) cannot shut its pool down, and its workers would otherwise wait on their
    task queue forever, adopted by init. A daemon thread watches the worker's parent pid and ends the worker with
    exit code 1 when it is no longer `parent` (also when the parent died before this ran)."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def init_pool_worker(parent: int) -> None:
    """A process-pool worker's set-up (the pool's initializer): it ends when `parent` (the pid of the process
    making the pool) is gone (exit_with_parent), and holds interrupts for good (`hold_interrupts`): SIGINT, also
    where it was started ignored (a background job), is a KeyboardInterrupt only inside its tasks'
    `let_interrupts` blocks, so interrupt_workers reaches a task and never the pool's own queue code (a worker
    ended there holding the queue's lock left the other workers and the pool's parent waiting on it for good)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _hold_signals()
    exit_with_parent(parent)


# Interrupts held back (see hold_interrupts): the handlers of the signals held, and those that came.
_HELD: dict[int, Any] = {}
_PENDING: list[int] = []


def _note(signum: int, frame: object) -> None:
    _PENDING.append(signum)


def _hold_signals() -> bool:
    """Hold SIGINT and SIGTERM where their handlers are Python's (which raise: KeyboardInterrupt for SIGINT, the
    command line's SIGTERM-as-Ctrl-C); False where that cannot be done here or is done already."""
    import threading

    if _HELD or threading.current_thread() is not threading.main_thread():
        return False
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if callable(handler):
            _HELD[signum] = handler
            signal.signal(signum, _note)
    return bool(_HELD)


@contextlib.contextmanager
def hold_interrupts():
    """While the block runs, an interrupt (SIGINT; SIGTERM where the process takes it like one) is noted, not
    raised, except inside `let_interrupts` blocks; one noted is raised when the block ends, by the signal's own
    handler. A loop of trials or tasks lets interrupts into the work it can drop (the training) and not into its
    bookkeeping: raised while Optuna recorded a trial's end, an interrupt left the trial "running" in the study
    for good. `interrupt_pending` says whether one waits, so the loop can stop at its next turn."""
    if not _hold_signals():
        yield
        return
    try:
        yield
    except BaseException:
        _release()
        raise
    pending = _release()
    if pending:
        pending[1](pending[0], None)


def _release() -> tuple[int, Any] | None:
    """Give the held signals their handlers back; the first noted and its handler, if one was."""
    for signum, handler in _HELD.items():
        signal.signal(signum, handler)
    first = (_PENDING[0], _HELD[_PENDING[0]]) if _PENDING else None
    _HELD.clear()
    _PENDING.clear()
    return first


def interrupt_pending() -> bool:
    """Whether an interrupt was noted while held (hold_interrupts)."""
    return bool(_PENDING)


def _deliver(signum: int, frame: object) -> None:
    """Inside let_interrupts: raise the first interrupt by its signal's own handler, and note any after it (a
    second would land in the handling of the first)."""
    for held in _HELD:
        signal.signal(held, _note)
    _PENDING.append(signum)
    _HELD[signum](signum, frame)


@contextlib.contextmanager
def let_interrupts():
    """Inside hold_interrupts (or a pool worker): the block may be interrupted. One noted already is raised at
    its start, else the first that comes."""
    if not _HELD:
        yield
        return
    for signum in _HELD:
        signal.signal(signum, _deliver)
    try:
        if _PENDING:
            _HELD[_PENDING[0]](_PENDING[0], None)
        yield
    finally:
        for signum in _HELD:
            signal.signal(signum, _note)


@contextlib.contextmanager
def uninterrupted():
    """Inside let_interrupts: a stretch no interrupt may cut (a write to a database: cut, it left the session
    unable to record anything after); one that comes meanwhile is raised at its end."""
    if not _HELD:
        yield
        return
    letting = signal.getsignal(next(iter(_HELD))) is _deliver
    for signum in _HELD:
        signal.signal(signum, _note)
    before = len(_PENDING)
    try:
        yield
    finally:
        for signum in _HELD:
            signal.signal(signum, _deliver if letting else _note)
    if letting and len(_PENDING) > before:
        _HELD[_PENDING[before]](_PENDING[before], None)


POOL_STOP_GRACE_S = 20.0


def interrupt_workers(pool: Any, grace_s: float = POOL_STOP_GRACE_S) -> None:
    """Stop a ProcessPoolExecutor (its workers set up by init_pool_worker, their tasks in let_interrupts) on an
    interrupt: SIGINT to each worker (a KeyboardInterrupt in its task), the queued tasks cancelled, and a worker
    still there after `grace_s` seconds killed. Ctrl-C in a terminal reaches the workers with the parent, but a
    SIGTERM sent to the parent alone would leave them running their tasks to the end while the parent waits.
    Interrupts that come meanwhile are ignored: the same one sent again (`timeout` signals the command and then
    its process group) cut the wait short, and the workers, killed while recording their trials as failed, left
    them "running"."""
    import threading
    import time

    processes = list((getattr(pool, "_processes", None) or {}).values())
    main = threading.current_thread() is threading.main_thread()
    ignored = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, AttributeError):
                os.kill(process.pid, signal.SIGINT)
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        for signum, handler in ignored.items():
            signal.signal(signum, handler)


RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A UsageError, within `timeout_s` (and a name lookup), when nothing answers at a Ray cluster's HOST:PORT (or
    ray://HOST:PORT): ray.init itself retries an unreachable address for minutes. "auto", "local" and other schemes
    are left to Ray."""
    import socket

    scheme, _, rest = address.rpartition("://")
    if address.lower() in ("auto", "local") or scheme.lower() not in ("", "ray"):
        return  # Ray's own words, or another scheme (a hosted cluster's) that Ray resolves itself
    host, _, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--ray-address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the head node's address "
                         "that `ray start --head` printed, or ray://HOST:10001)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UsageError(f"nothing answers at the Ray cluster address {address} ({e.strerror or e}); start the "
                         "cluster with `ray start --head` on its head node, or check the address (`ray status` there)"
                         ) from None
