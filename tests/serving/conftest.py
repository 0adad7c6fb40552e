"""``ouro serve``'s ASGI app under a real uvicorn on loopback, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time

import pytest


class AppServer:
    """One app under uvicorn on a free loopback port; :attr:`port` once started."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AppServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve_app():
    """Start ``serve_app(app)`` under uvicorn; every server started is stopped after the test."""
    servers: list[AppServer] = []

    def start(app) -> AppServer:
        servers.append(AppServer(app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()

