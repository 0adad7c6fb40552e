"""A loopback HTTP server for fake judge endpoints, and the judge items the HTTP judge tests send."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Iterator

from ouro_ray.judges.protocol import JudgeItem


@contextmanager
def serving(handler) -> Iterator[str]:
    """The base URL of ``handler`` served on a free loopback port; shut down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def item(i: int, candidate: str = "An answer.") -> JudgeItem:
    return JudgeItem(prompt_id=f"p{i}", candidate_id=f"c{i}", prompt=f"Request {i}", candidate=candidate)
