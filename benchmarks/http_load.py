"""A bounded HTTP load on loopback, for benchmarks.serve_load: `fmnist serve` in its own process, clients in this one.

Each client holds a keep-alive connection and sends its requests one after another (a new connection when the
server closed one, as it does after refusing a body); every load has a fixed number of requests and a time limit,
so it stops by itself. Requests are prebuilt bytes, so the client does little besides waiting.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

BOUNDARY = "fmnistbenchboundary"


def bomb_png(width: int, height: int) -> bytes:
    """A PNG that declares width x height grayscale pixels but holds almost no data: a decompression bomb's
    header, a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def multipart(filename: str, data: bytes, content_type: str) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post(path: str, body: bytes, content_type: str | None = None, content_length: int | None = None) -> bytes:
    """The bytes of an HTTP/1.1 POST to `path` (multipart with our boundary unless `content_type` is given)."""
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    length = len(body) if content_length is None else content_length
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


@dataclass
class Request:
    """One request to send: `data` (sent at once), then `trickle` bytes one chunk at a time, `pause_s` apart."""

    kind: str
    data: bytes
    trickle: list[bytes] = field(default_factory=list)
    pause_s: float = 0.0


@dataclass
class LoadResult:
    seconds: float
    latencies: dict[str, list[float]]  # by request kind, seconds
    statuses: dict[str, Counter]  # by request kind
    errors: int  # connection failures, timeouts: no HTTP status
    stopped_early: bool
    errors_by_kind: Counter = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(sum(c.values()) for c in self.statuses.values()) + self.errors

    def rps(self) -> float:
        return self.count / self.seconds

    def quantiles_ms(self, kind: str = "normal") -> tuple[float, float, float]:
        lat = sorted(self.latencies.get(kind, []))
        if len(lat) < 2:
            return (float("nan"),) * 3
        q = statistics.quantiles(lat, n=100, method="inclusive")
        return q[49] * 1e3, q[94] * 1e3, q[98] * 1e3

    def count_status(self, predicate) -> int:
        return sum(n for c in self.statuses.values() for s, n in c.items() if predicate(s))


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection open) of one response, its body read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return status, not re.search(rb"(?i)\r\nconnection: *close", head)


async def _client(host: str, port: int, requests: list[Request], result: LoadResult, deadline: float,
                  timeout_s: float) -> None:
    conn = None
    for req in requests:
        if time.perf_counter() > deadline:
            result.stopped_early = True
            break
        start = time.perf_counter()
        response = None
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            writer.write(req.data)
            response = asyncio.ensure_future(_read_response(reader))
            for chunk in req.trickle:  # a slow body: stop sending once the server has answered
                await asyncio.wait([response], timeout=req.pause_s)
                if response.done():
                    break
                writer.write(chunk)
                await writer.drain()
            status, keep = await asyncio.wait_for(response, timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError, ValueError):
            result.errors += 1
            result.errors_by_kind[req.kind] += 1
            keep, status = False, None
            if response is not None:
                response.cancel()
        if status is not None:
            result.statuses.setdefault(req.kind, Counter())[status] += 1
            result.latencies.setdefault(req.kind, []).append(time.perf_counter() - start)
        if not keep and conn is not None:
            conn[1].close()
            conn = None
    if conn is not None:
        conn[1].close()


def run_load(url: str, per_client: list[list[Request]], max_seconds: float = 120.0, timeout_s: float = 30.0) -> LoadResult:
    """Send every client's requests (one asyncio task per client) and time the whole."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = LoadResult(0.0, {}, {}, 0, False)

    async def main() -> None:
        deadline = time.perf_counter() + max_seconds
        await asyncio.gather(*[_client(host, int(port), reqs, result, deadline, timeout_s) for reqs in per_client])

    start = time.perf_counter()
    runner(main())
    result.seconds = time.perf_counter() - start
    return result


class Server:
    """`fmnist serve MODEL --port 0 ...` in a child process, ready when /readyz says so."""

    def __init__(self, model: Path, *options: str, startup_s: float = 120.0) -> None:
        cmd = [sys.executable, "-m", "fmnist", "serve", str(model), "--port", "0", *options]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + startup_s
        self.url = None
        lines = []
        while self.url is None:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError(f"fmnist serve exited ({self.proc.wait()}): {''.join(lines)[-2000:]}")
            lines.append(line)
            found = re.search(r"on (http://[\d.]+:\d+)/", line)
            self.url = found.group(1) if found else None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("fmnist serve did not become ready")

    def rss_mb(self) -> float:
        """The server's resident memory, MB (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, and the exit code once it has stopped."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.terminate(15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit("benchmarks.http_load is a helper module of benchmarks.serve_load, not a script; the scripts are the other "
                     "modules of benchmarks/ (`python -m benchmarks.NAME --help`)")
