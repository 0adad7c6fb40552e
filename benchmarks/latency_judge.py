"""A loopback completions endpoint with a set latency: the remote judge the benchmarks wait on.

``LatencyJudgeServer(latency_s)`` runs a stdlib ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0) in a
thread of the benchmark's own process and answers ``POST /v1/completions`` the way
:class:`ouro_ray.judges.http.HTTPJudge` expects (the OpenAI completions format): one choice per
prompt, with ``index``, the sampled ``text`` and ``logprobs.top_logprobs[0]`` over the verdict tokens,
``"1"`` … ``"5"`` for a rubric prompt and ``"1"``/``"2"`` for a pairwise one. Each request sleeps
``latency_s`` before it answers, however many prompts it carries, as a remote model's queue and
network would, while taking no CPU. The answers are a deterministic function of the prompt text (a
hash), so two runs score alike.

    server = LatencyJudgeServer(0.05)
    with server as base_url:
        judge = HTTPJudge(base_url, "latency-judge")
        ...
        server.counts()   # {"requests": …, "prompts": …, "peak_in_flight": …}
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAIRWISE_MARK = "Better answer (1 or 2):"
"""How the rubric's pairwise prompt ends (``ouro_ray.judges.rubric.pairwise_prompt``)."""
MODEL = "latency-judge"
"""The model name the benchmarks send (the server accepts any)."""


def free_port() -> int:
    """A loopback port free just now (for Serve's HTTP proxy: 8000 may be another run's)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def verdict_logprobs(prompt: str) -> tuple[dict[str, float], str]:
    """``(top_logprobs, sampled text)`` for one prompt: a peaked distribution picked by the prompt's hash."""
    tokens = ("1", "2") if prompt.rstrip().endswith(PAIRWISE_MARK) else ("1", "2", "3", "4", "5")
    digest = hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).digest()
    top = digest[0] % len(tokens)
    weights = [4.0 if i == top else 1.0 + digest[1 + i] / 255.0 for i in range(len(tokens))]
    total = sum(weights)
    logprobs = {t: math.log(w / total) for t, w in zip(tokens, weights)}
    return logprobs, tokens[top]


def completions_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The completions JSON for one request body (``prompt``: a string or a list of strings)."""
    prompts = body.get("prompt")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts or [])
    choices = []
    for index, prompt in enumerate(prompts):
        top, text = verdict_logprobs(str(prompt))
        choices.append({"index": index, "text": text, "finish_reason": "length",
                        "logprobs": {"tokens": [text], "token_logprobs": [top[text]], "top_logprobs": [top],
                                     "text_offset": [0]}})
    return {"id": "cmpl-bench", "object": "text_completion", "model": body.get("model", MODEL), "choices": choices}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many judge workers connect at once; the default backlog of 5 drops SYNs (1 s stalls)


class LatencyJudgeServer:
    """The endpoint as a context manager; ``base_url`` is what ``judges.http.base_url`` takes."""

    def __init__(self, latency_s: float = 0.05):
        if isinstance(latency_s, bool) or not isinstance(latency_s, (int, float)) or not (
                math.isfinite(latency_s) and latency_s >= 0):
            raise ValueError(f"latency_s={latency_s!r} must be a finite number of seconds >= 0; fix: pass e.g. 0.05")
        self.latency_s = float(latency_s)
        self._lock = threading.Lock()
        self.requests = self.prompts = self.in_flight = self.peak_in_flight = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the latency judge server is not running; fix: use it inside `with`")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def counts(self) -> dict[str, int]:
        """A snapshot: requests and prompts answered, and the most requests held at once."""
        with self._lock:
            return {"requests": self.requests, "prompts": self.prompts, "peak_in_flight": self.peak_in_flight}

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = self.prompts = self.peak_in_flight = 0

    def __enter__(self) -> str:
        self._httpd = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="latency-judge", daemon=True)
        self._thread.start()
        return self.base_url

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _leave(self, prompts: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests += 1
            self.prompts += prompts


def _handler(server: LatencyJudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            server._enter()
            answer, prompts = {}, 0
            try:
                time.sleep(server.latency_s)
                if self.path == "/v1/completions":
                    answer = completions_answer(body)
                    prompts = len(answer["choices"])
            finally:
                server._leave(prompts)
            status = 200 if self.path == "/v1/completions" else 404
            data = json.dumps(answer if status == 200 else {"error": {"message": f"no route {self.path}"}}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout) and hung up
                pass

        def log_message(self, *args: object) -> None:
            pass

    return Handler
