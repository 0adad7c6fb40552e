"""A load test of ``ouro serve``'s app under abuse: many clients at once, half of their requests malformed.

The server is the very ASGI app a Serve replica runs (:func:`~ouro_ray.serving.http.create_app`), under
uvicorn in a child process on loopback, with an API key, so its memory is measured alone. ``clients``
threads send ``requests`` requests, alternating a good one (completions or chat, with and without
logprobs) and a bad one (each kind in :func:`bad_probes`: bad JSON, wrong types, unknown fields, bodies
over the limit with and without a Content-Length, caps exceeded, missing or wrong key, …). It passes
when every good request is answered 200 with a well-formed OpenAI answer, every bad one with exactly
its 4xx, no connection drops, and the server's RSS grows by less than the bound.

    python -m ouro_ray.serving.loadtest --model MODEL_DIR --requests 2000 --clients 100
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import secrets
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from ouro_ray.serving.limits import MIB, ServeLimits

HOST = "127.0.0.1"
MODEL = "load-test"
RSS_GROWTH_BOUND_MIB = 16.0
"""Most the server's RSS may grow over a run after the warm-up (about 4 % of the tiny model's server)."""


@dataclass(frozen=True)
class Probe:
    """One request of the mix and the answer it must get."""

    kind: str
    expect: int
    """The HTTP status it must be answered with."""
    body: bytes | None = None
    method: str = "POST"
    path: str = "/v1/completions"
    chunked: bool = False
    """Send the body in chunks without a Content-Length."""
    key: str = "right"
    """'right', 'wrong' or 'none': which Authorization header to send."""
    choices: int = 0
    """For a good probe, how many choices the answer must hold."""


def _json(body: dict) -> bytes:
    return json.dumps(body).encode()


def good_probes() -> list[Probe]:
    """The well-formed requests: both routes, one and several choices, with and without logprobs."""
    hi = [{"role": "user", "content": "Hello"}]
    return [
        Probe("completion", 200, _json({"model": MODEL, "prompt": "The reactor", "max_tokens": 8}), choices=1),
        Probe("completion-logprobs", 200, _json({"prompt": ["Hello", "The reactor"], "max_tokens": 6, "n": 2,
                                                 "logprobs": 5, "seed": 1}), choices=4),
        Probe("chat", 200, _json({"messages": hi, "max_tokens": 8}), path="/v1/chat/completions", choices=1),
        Probe("chat-logprobs", 200, _json({"messages": hi, "max_tokens": 6, "temperature": 0, "logprobs": True,
                                           "top_logprobs": 3}), path="/v1/chat/completions", choices=1),
    ]


def bad_probes(limits: ServeLimits) -> list[Probe]:
    """One malformed request of each kind, with the status it must get."""
    over = limits.max_body_bytes + 1024
    padded = _json({"prompt": "x" * over})
    return [
        Probe("bad-json", 400, b'{"prompt": "The reactor", "max_tokens": '),
        Probe("deep-json", 400, b"[" * min(100_000, limits.max_body_bytes)),
        Probe("wrong-type", 400, _json({"prompt": 5})),
        Probe("wrong-type-max-tokens", 400, _json({"prompt": "hi", "max_tokens": "many"})),
        Probe("unknown-field", 400, _json({"prompt": "hi", "tempreature": 0})),
        Probe("max-tokens-over-cap", 400, _json({"prompt": "hi", "max_tokens": limits.max_tokens + 1})),
        Probe("n-over-cap", 400, _json({"prompt": "hi", "n": limits.max_n + 1})),
        Probe("too-many-prompts", 400, _json({"prompt": ["hi"] * (limits.max_prompts + 1)})),
        Probe("prompt-past-context", 400, _json({"prompt": "word " * 5000, "max_tokens": 4})),
        Probe("chat-bad-role", 400, _json({"messages": [{"role": "robot", "content": "hi"}]}),
              path="/v1/chat/completions"),
        Probe("body-over-limit", 413, padded),
        Probe("body-over-limit-chunked", 413, padded, chunked=True),
        Probe("no-key", 401, _json({"prompt": "hi"}), key="none"),
        Probe("wrong-key", 401, _json({"prompt": "hi"}), key="wrong"),
        Probe("unknown-model", 404, _json({"prompt": "hi", "model": "other"})),
        Probe("unknown-route", 404, None, method="GET", path="/v1/nothing"),
        Probe("wrong-method", 405, None, method="GET"),
    ]


def schedule(total: int, limits: ServeLimits) -> list[Probe]:
    """``total`` probes, good and bad alternating, each list cycled."""
    good, bad = good_probes(), bad_probes(limits)
    return [good[i // 2 % len(good)] if i % 2 == 0 else bad[i // 2 % len(bad)] for i in range(total)]


# --- the client -----------------------------------------------------------------------------------------


def send(port: int, probe: Probe, key: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of ``probe`` sent on a fresh connection; a dropped connection raises."""
    headers = {"Content-Type": "application/json"}
    if probe.key != "none":
        headers["Authorization"] = f"Bearer {key if probe.key == 'right' else key[::-1]}"
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = probe.body
        if probe.chunked and body is not None:
            body = iter([body[i:i + 65536] for i in range(0, len(body), 65536)])  # http.client sends it chunked
        conn.request(probe.method, probe.path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def check_answer(probe: Probe, body: bytes) -> str | None:
    """Why a 200 answer to a good probe is not a valid OpenAI answer, or None."""
    answer = json.loads(body)
    chat = probe.path.endswith("/chat/completions")
    if answer.get("object") != ("chat.completion" if chat else "text_completion"):
        return f"object is {answer.get('object')!r}"
    choices = answer.get("choices", [])
    if [c.get("index") for c in choices] != list(range(probe.choices)):
        return f"choices {[c.get('index') for c in choices]}, expected {probe.choices}"
    usage = answer.get("usage", {})
    if usage.get("total_tokens") != usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0):
        return f"usage does not add up: {usage}"
    for choice in choices:
        text = choice["message"]["content"] if chat else choice["text"]
        if not isinstance(text, str) or choice.get("finish_reason") not in ("stop", "length"):
            return f"bad choice {choice!r:.200}"
        logprobs = choice.get("logprobs")
        if logprobs is not None and not chat and len(logprobs["tokens"]) != len(logprobs["top_logprobs"]):
            return "logprobs tokens and top_logprobs differ in length"
    return None


def check_refusal(probe: Probe, status: int, body: bytes) -> str | None:
    """Why a refusal is not the expected status with an OpenAI error object, or None."""
    if status != probe.expect:
        return f"status {status}, expected {probe.expect}: {body[:200]!r}"
    error = json.loads(body).get("error", {})
    if not isinstance(error.get("message"), str) or not error["message"]:
        return f"no error message in {body[:200]!r}"
    return None


@dataclass
class Outcome:
    """What the clients saw."""

    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    """Per probe kind, how many answers had each status."""
    failures: list[str] = field(default_factory=list)
    """Each answer that was not the expected one, and each dropped connection (the first 20 kept)."""
    failure_count: int = 0
    bad_refused: int = 0
    """Malformed requests answered with exactly their 4xx and an error object."""
    good_latency_s: list[float] = field(default_factory=list)
    """Seconds each good request took that was answered 200 with a valid answer."""


def fire(port: int, probes: list[Probe], clients: int, key: str, timeout: float = 300.0) -> Outcome:
    """Send ``probes`` from ``clients`` threads at once; what came back."""
    outcome, lock, counts = Outcome(), threading.Lock(), {}

    def one(probe: Probe) -> None:
        started = time.monotonic()
        try:
            status, body = send(port, probe, key, timeout)
            problem = check_refusal(probe, status, body) if probe.expect != 200 else (
                check_answer(probe, body) if status == 200 else f"status {status}: {body[:200]!r}")
        except Exception as exc:  # a dropped connection, a timeout, an unreadable answer: all failures
            status, problem = 0, f"{type(exc).__name__}: {exc}"
        with lock:
            counts.setdefault(probe.kind, Counter())[status] += 1
            if problem is None and probe.expect == 200:
                outcome.good_latency_s.append(time.monotonic() - started)
            elif problem is None:
                outcome.bad_refused += 1
            else:
                outcome.failure_count += 1
                if len(outcome.failures) < 20:
                    outcome.failures.append(f"{probe.kind}: {problem}")

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, probes))
    outcome.statuses = {kind: dict(sorted(c.items())) for kind, c in sorted(counts.items())}
    return outcome


# --- the server, in a child process ---------------------------------------------------------------------


def _serve(model_dir: str, port: int, limits: ServeLimits, key: str) -> None:
    """The child: the replica's app over ``model_dir`` under uvicorn on loopback (no Ray)."""
    import uvicorn
    from transformers.utils import logging as hf_logging

    from ouro_ray.serving.auth import key_digest
    from ouro_ray.serving.completions import CompletionEngine
    from ouro_ray.serving.http import create_app

    hf_logging.disable_progress_bar()  # tqdm's lock is a semaphore the terminated child would leave behind
    hf_logging.set_verbosity_error()  # the too-long prompt probes would log a warning each
    engine = CompletionEngine.from_dir(model_dir, name=MODEL, truncate_prompts=False)
    uvicorn.run(create_app(engine, limits, api_key_digest=key_digest(key)), host=HOST, port=port,
                log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@contextmanager
def served(model_dir: str | Path, limits: ServeLimits, key: str, startup_s: float = 300.0) -> Iterator[tuple[int, int]]:
    """(port, pid) of the app serving ``model_dir`` in a child process, up and answering ``/health``."""
    port = _free_port()
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(str(model_dir), port, limits, key),
                                                         daemon=True)
    child.start()
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if not child.is_alive():
                raise RuntimeError(f"the load-test server exited with code {child.exitcode} before answering")
            try:
                if send(port, Probe("health", 200, method="GET", path="/health"), key, 5.0)[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the load-test server did not answer /health within {startup_s:.0f} s") from None
                time.sleep(0.2)
        yield port, child.pid
    finally:
        child.terminate()
        child.join(10)


# --- the measurement ------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """One load test: what was sent, what came back, and the server's memory."""

    requests: int
    clients: int
    seconds: float
    good: int
    """Good requests answered 200 with a valid answer."""
    bad: int
    """Malformed requests answered with exactly their 4xx."""
    failure_count: int
    failures: list[str]
    statuses: dict[str, dict[int, int]]
    good_p50_s: float
    good_p95_s: float
    rss_before_mib: float
    """The server's RSS after a warm-up run of the same mix (every code path allocated once)."""
    rss_after_mib: float
    rss_peak_mib: float

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_after_mib - self.rss_before_mib

    def summary(self) -> str:
        return (f"{self.requests} requests from {self.clients} clients in {self.seconds:.1f} s: {self.good} good "
                f"answered 200 (p50 {self.good_p50_s:.2f} s, p95 {self.good_p95_s:.2f} s), {self.bad} malformed "
                f"answered their 4xx, {self.failure_count} failures; server RSS {self.rss_before_mib:.0f} MiB "
                f"before, {self.rss_after_mib:.0f} MiB after ({self.rss_growth_mib:+.1f} MiB), peak "
                f"{self.rss_peak_mib:.0f} MiB")


def _rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / MIB


def load_test(model_dir: str | Path, *, requests: int, clients: int, limits: ServeLimits | None = None,
              warmup: int = 1000) -> LoadReport:
    """Serve ``model_dir`` in a child process and send it ``requests`` probes from ``clients`` threads.

    ``limits`` default to the server's own, except ``max_waiting`` = ``clients`` (every good request waits its
    turn; a full line is tested elsewhere). ``warmup`` probes run first, so the RSS baseline holds what the
    allocators keep once every path of the mix has run (measured here: RSS rises about 55 MiB over the first
    1000 requests, then about 0.5 MiB per 1000).
    """
    limits = limits or ServeLimits(max_waiting=clients)
    key = secrets.token_urlsafe(24)
    with served(model_dir, limits, key) as (port, pid):
        fire(port, schedule(warmup, limits), clients, key)
        before, peak = _rss_mib(pid), [0.0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.1):
                peak[0] = max(peak[0], _rss_mib(pid))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        outcome = fire(port, schedule(requests, limits), clients, key)
        seconds = time.monotonic() - started
        stop.set()
        watcher.join()
        after = _rss_mib(pid)
    latency = sorted(outcome.good_latency_s) or [0.0]
    return LoadReport(requests=requests, clients=clients, seconds=seconds, good=len(outcome.good_latency_s),
                      bad=outcome.bad_refused, failure_count=outcome.failure_count, failures=outcome.failures,
                      statuses=outcome.statuses,
                      good_p50_s=statistics.median(latency), good_p95_s=latency[int(0.95 * (len(latency) - 1))],
                      rss_before_mib=before, rss_after_mib=after, rss_peak_mib=max(peak[0], after))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ouro_ray.serving.loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a Hugging Face model directory (e.g. the tiny world's model)")
    p.add_argument("--requests", type=int, default=2000, help="requests after the warm-up (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1000, help="requests before the RSS baseline (default: %(default)s)")
    p.add_argument("--clients", type=int, default=100, help="concurrent clients (default: %(default)s)")
    p.add_argument("--max-rss-growth-mib", type=float, default=RSS_GROWTH_BOUND_MIB,
                   help="fail when the server's RSS grows by more (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    report = load_test(args.model, requests=args.requests, clients=args.clients, warmup=args.warmup)
    print(report.summary())
    for failure in report.failures:
        print(f"  failure: {failure}")
    if args.json:
        args.json.write_text(json.dumps(asdict(report) | {"rss_growth_mib": report.rss_growth_mib}, indent=2))
    return 0 if report.failure_count == 0 and report.rss_growth_mib <= args.max_rss_growth_mib else 1


if __name__ == "__main__":
    sys.exit(main())
