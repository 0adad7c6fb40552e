"""Serving the studio with uvicorn: on a socket bound first (a port in use fails before anything starts,
with the fix), in the foreground for ``ouro studio`` or on a thread for tests and screenshots."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator

LOCAL_HOSTS = ("localhost",)


class PortInUseError(OSError):
    """The port is taken; the message names it and the fix."""


def is_local(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (loopback)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); :class:`PortInUseError` with the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is in use (another studio, or another server); fix: pass "
                                 f"another port, e.g. --port {port + 1}, or stop what listens there") from None
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; fix: pass a --host this machine has "
                      "(127.0.0.1 for this machine only)") from None
    sock.listen(128)
    return sock


def _server(app, sock: socket.socket):
    import uvicorn

    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM."""
    _server(app, sock).run(sockets=[sock])


@contextmanager
def serving_in_thread(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on a thread while the block runs; yields the base URL (``http://host:port``)."""
    sock = bind(host, port)
    server = _server(app, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="ouro-studio", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the studio did not start on {host}:{sock.getsockname()[1]} within {timeout:.0f} s")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
