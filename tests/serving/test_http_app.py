"""The ASGI app a replica runs, under a real uvicorn on loopback: the body limit, the API key, refusals
while a generation runs, the bounded line and its timeouts, and 500s that keep internals to the log."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from email.message import Message

import pytest

from ouro_ray.serving import CompletionEngine, ServeLimits, create_app
from ouro_ray.serving.auth import key_digest

KEY = "sk-test-0123456789abcdef"
HI = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> CompletionEngine:
    return CompletionEngine.from_dir(tiny_model_dir, name="tiny-http")


def call(server, method: str, path: str, body=None, headers=None, timeout: float = 60) -> tuple[int, Message, dict]:
    """(status, headers, JSON body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        return answer.status, answer.headers, json.loads(answer.read())
    finally:
        conn.close()


def raw(server, head: bytes) -> tuple[int, dict]:
    """(status, JSON body) of the bytes ``head`` sent as is, the answer read without sending anything more."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, json.loads(answer.read())


def test_both_routes_answer_and_refusals_are_openai_errors(engine, serve_app) -> None:
    server = serve_app(create_app(engine, ServeLimits()))
    status, _, body = call(server, "POST", "/v1/completions", {"prompt": "The reactor", "max_tokens": 3, "logprobs": 2})
    assert status == 200 and body["object"] == "text_completion" and len(body["choices"][0]["logprobs"]["tokens"]) >= 1
    status, _, body = call(server, "POST", "/v1/chat/completions", {"messages": HI, "max_tokens": 3})
    assert status == 200 and body["object"] == "chat.completion"
    assert call(server, "GET", "/v1/models")[2]["data"][0]["id"] == "tiny-http"
    for method, path, status, said in [("GET", "/v1/nothing", 404, "no route '/v1/nothing'"),
                                       ("GET", "/v1/completions", 405, "does not take GET; it takes POST"),
                                       ("POST", "/v1/completions", 400, "the body is not JSON")]:
        got, _, body = call(server, method, path, b"{not json" if method == "POST" else None)
        assert got == status and said in body["error"]["message"] and body["error"]["type"] == "invalid_request_error"
    got, _, body = call(server, "POST", "/v1/completions", b"[" * 50_000)  # nested past Python's recursion limit
    assert got == 400 and "nested too deeply" in body["error"]["message"]


# --- the body limit -------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413_and_never_parsed(engine, serve_app) -> None:
    limit = 2048
    server = serve_app(create_app(engine, ServeLimits(max_body_bytes=limit)))
    not_json = b"x" * (limit + 1)  # parsed, it would be a 400
    status, _, body = call(server, "POST", "/v1/completions", not_json)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert f"Content-Length is {limit + 1} bytes" in body["error"]["message"] and "--max-body-bytes" in body["error"]["message"]
    # No Content-Length (chunked): counted while reading, refused once past the limit.
    status, _, body = call(server, "POST", "/v1/completions", iter([not_json[:1000], not_json[1000:]]))
    assert status == 413 and f"passed {limit} bytes" in body["error"]["message"]
    # At the limit exactly: read and parsed (a bad-JSON 400, not a 413).
    assert call(server, "POST", "/v1/completions", b"x" * limit)[0] == 400


def test_a_huge_content_length_is_refused_before_any_byte_is_read(engine, serve_app) -> None:
    server = serve_app(create_app(engine, ServeLimits(max_body_bytes=2048)))
    status, body = raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 10000000000\r\n\r\n")  # and no body: the answer must not wait for it
    assert status == 413 and "Content-Length is 10000000000 bytes" in body["error"]["message"]


def test_a_body_that_never_arrives_is_a_408_at_the_timeout(engine, serve_app) -> None:
    server = serve_app(create_app(engine, ServeLimits(request_timeout_s=0.5)))
    started = time.monotonic()
    status, body = raw(server, b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt"')
    assert status == 408 and "did not arrive within the request timeout" in body["error"]["message"]
    assert time.monotonic() - started < 5


# --- the API key ----------------------------------------------------------------------------------------


def test_a_key_guards_every_route_but_health(engine, serve_app) -> None:
    server = serve_app(create_app(engine, ServeLimits(), api_key_digest=key_digest(KEY)))
    request = {"prompt": "Hello", "max_tokens": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}):
        status, answer_headers, body = call(server, "POST", "/v1/completions", request, headers)
        assert status == 401 and answer_headers.get("WWW-Authenticate") == "Bearer"
        assert body["error"]["code"] == "invalid_api_key" and "Authorization: Bearer" in body["error"]["message"]
        assert KEY not in json.dumps(body)
    assert call(server, "GET", "/v1/nothing")[0] == 401  # without the key, not even which routes exist
    assert call(server, "GET", "/health")[0] == 200
    auth = {"Authorization": f"Bearer {KEY}"}
    assert call(server, "POST", "/v1/completions", request, auth)[0] == 200
    assert call(server, "GET", "/v1/models", headers=auth)[0] == 200
    assert call(server, "GET", "/v1/nothing", headers=auth)[0] == 404


def test_without_a_key_no_header_is_needed(engine, serve_app) -> None:
    server = serve_app(create_app(engine, ServeLimits()))
    assert call(server, "POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 2})[0] == 200


# --- errors ---------------------------------------------------------------------------------------------


def test_an_engine_failure_is_a_500_with_an_id_and_the_trace_only_in_the_log(engine, serve_app, caplog) -> None:
    broken = CompletionEngine(engine.model, engine.tokenizer, name="tiny-http")

    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory at /secret/path/weights.bin")

    broken._generate = fail
    server = serve_app(create_app(broken, ServeLimits()))
    with caplog.at_level(logging.ERROR, logger="ouro_ray.serving.http"):
        status, _, body = call(server, "POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 2})
    assert status == 500 and body["error"]["type"] == "server_error" and body["error"]["code"] == "internal_error"
    message = body["error"]["message"]
    assert message.startswith("internal error (id ") and "secret" not in message and "RuntimeError" not in message
    error_id = message.split("(id ")[1].split(")")[0]
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert "/secret/path/weights.bin" in caplog.text and record.exc_info[0] is RuntimeError
    # A validation error keeps its precise 4xx (it never reaches the engine).
    status, _, body = call(server, "POST", "/v1/completions", {"prompt": "Hello", "n": 0})
    assert status == 400 and body["error"]["param"] == "n"


# --- a busy replica --------------------------------------------------------------------------------------


class Blocked:
    """The engine's generation held until :attr:`release` is set; :attr:`started` once the first one runs."""

    def __init__(self, engine: CompletionEngine):
        self.engine = CompletionEngine(engine.model, engine.tokenizer, name="tiny-http")
        self.started, self.release = threading.Event(), threading.Event()
        generate = self.engine._generate

        def held(*args, **kwargs):
            self.started.set()
            self.release.wait(30)
            return generate(*args, **kwargs)

        self.engine._generate = held


def _in_thread(fn) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def _wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the server"
        time.sleep(0.02)


def test_while_a_generation_runs_health_and_refusals_answer_and_the_line_is_bounded(engine, serve_app) -> None:
    blocked = Blocked(engine)
    app = create_app(blocked.engine, ServeLimits(max_waiting=1, max_tokens=32))
    server = serve_app(app)
    good = {"prompt": "Hello", "max_tokens": 2}
    first, first_result = _in_thread(lambda: call(server, "POST", "/v1/completions", good))
    assert blocked.started.wait(20)
    second, second_result = _in_thread(lambda: call(server, "POST", "/v1/chat/completions",
                                                    {"messages": HI, "max_tokens": 2}))
    _wait_for(lambda: app.state.gate.waiting == 1)
    started = time.monotonic()
    assert call(server, "GET", "/health", timeout=5)[0] == 200
    assert call(server, "POST", "/v1/completions", {"prompt": "Hello", "max_tokens": 33}, timeout=5)[0] == 400
    assert call(server, "POST", "/v1/completions", {"prompt": "word " * 400}, timeout=5)[0] == 400  # past the context
    status, headers, body = call(server, "POST", "/v1/completions", good, timeout=5)
    assert status == 429 and body["error"]["code"] == "queue_full" and int(headers["Retry-After"]) >= 1
    assert "1 requests already wait" in body["error"]["message"]
    assert time.monotonic() - started < 5  # none of them waited for the generation
    blocked.release.set()
    first.join(30), second.join(30)
    assert first_result[0][0] == 200 and second_result[0][0] == 200


def test_past_the_timeout_waiting_and_generating_requests_get_503(engine, serve_app) -> None:
    blocked = Blocked(engine)
    server = serve_app(create_app(blocked.engine, ServeLimits(request_timeout_s=1.0)))
    good = {"prompt": "Hello", "max_tokens": 2}
    first, first_result = _in_thread(lambda: call(server, "POST", "/v1/completions", good))
    assert blocked.started.wait(20)
    status, headers, body = call(server, "POST", "/v1/completions", good)  # waits 1 s for the slot, then gives up
    assert status == 503 and body["error"]["code"] == "timeout" and "waited" in body["error"]["message"]
    assert int(headers["Retry-After"]) >= 1
    blocked.release.set()  # the first one's deadline has passed too: its generation stops at the first step
    first.join(30)
    status, _, body = first_result[0]
    assert status == 503 and "while generating" in body["error"]["message"] and "max_tokens" in body["error"]["message"]
