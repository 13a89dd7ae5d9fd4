"""Running the app under uvicorn: in the foreground for `fmnist serve`, or in a thread for tests and benchmarks.

The socket is bound here (so port 0 picks a free port, and a port in use is one sentence, not a traceback).
On SIGINT or SIGTERM uvicorn stops accepting connections, answers the requests in flight (up to
GRACEFUL_S), then the app's shutdown stops the batcher.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from fmnist.errors import UsageError

GRACEFUL_S = 10  # seconds in-flight requests get to finish at shutdown
KEEP_ALIVE_S = 5
MAX_CONNECTIONS = 2048  # uvicorn answers 503 beyond this many concurrent connections and requests


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use; stop what runs there or pick another with --port") from None
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(e, socket.gaierror):
            raise UsageError(f"cannot listen on {host}: no such address on this machine; try --host 127.0.0.1") from None
        if e.errno == errno.EACCES:
            raise UsageError(f"port {port} needs privileges; use a port above 1023") from None
        raise
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=GRACEFUL_S,
                            timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS, lifespan="on")
    return uvicorn.Server(config)


def serve(app, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve `app` on the bound `sock` until SIGINT or SIGTERM."""
    _server(app, log_level).run(sockets=[sock])


@contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """`app` served from a background thread while the block runs; yields its base URL once it has started."""
    sock = bind(host, port)
    server = _server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="fmnist-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(GRACEFUL_S + 5)
        sock.close()
