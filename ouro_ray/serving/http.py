"""Glue: the ASGI app one ``ouro serve`` replica runs (Serve mounts it with ``@serve.ingress``; tests run it
under uvicorn), OpenAI-compatible routes over one :class:`~ouro_ray.serving.completions.CompletionEngine`.

Routes, relative to the app's route prefix: ``POST /v1/completions``, ``POST /v1/chat/completions``,
``GET /v1/models``, ``GET /health``. Every refusal is OpenAI's error object
(``{"error": {"message", "type", "param", "code"}}``):

- 401 without ``Authorization: Bearer <key>`` when the server has a key (every route but ``/health``);
- 413 for a body over ``max_body_bytes`` (by its Content-Length, or counted while reading), never parsed;
- 400 for a bad field or one over a cap, 404 for an unknown model or route, 405 for a wrong method;
- 429 with Retry-After when too many requests already wait for the model; 503 (code ``timeout``) past
  the request timeout; 408 when the body does not arrive within it;
- 500 ``internal error (id …)`` for anything unexpected: the traceback goes to the replica's log under
  the same id, nothing of it to the client.

A request is checked in full (auth, size, JSON, fields, model, context) before it waits for the model,
so a bad one is refused at once however busy the replica is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ouro_ray.serving.auth import BearerAuth
from ouro_ray.serving.chat import parse_chat_request, prepare_chat
from ouro_ray.serving.completions import CompletionEngine, Job
from ouro_ray.serving.gate import GenerationGate
from ouro_ray.serving.limits import FLAGS, ServeLimits
from ouro_ray.serving.parse import CompletionRequestError, parse_request

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health"})
"""Routes answered without the API key (liveness probes carry no secret)."""


def create_app(engine: CompletionEngine, limits: ServeLimits, *, api_key_digest: bytes | None = None) -> Starlette:
    """The replica's ASGI app; ``api_key_digest`` (:func:`~ouro_ray.serving.auth.key_digest`) turns on the key check."""
    gate = GenerationGate(limits.max_waiting)

    def generation_route(parse: Callable[[Any, ServeLimits], Any], prepare: Callable[[Any], Job]):
        async def answer(request: Request) -> Response:
            deadline = time.monotonic() + limits.request_timeout_s
            parsed = parse(await _read_json(request, limits.max_body_bytes, deadline), limits)
            job = await asyncio.to_thread(prepare, parsed)  # tokenizing a long prompt must not stall the loop
            return JSONResponse(await gate.run(lambda: engine.run(job, deadline), deadline))
        return _guarded(answer)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [engine.model_card()]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": engine.name})

    routes = [
        Route("/v1/completions", generation_route(parse_request, engine.prepare), methods=["POST"]),
        Route("/v1/chat/completions", generation_route(parse_chat_request, lambda chat: prepare_chat(engine, chat)),
              methods=["POST"]),
        Route("/v1/models", _guarded(models), methods=["GET"]),
        Route("/health", _guarded(health), methods=["GET"]),
    ]
    middleware = [] if api_key_digest is None else [Middleware(BearerAuth, key_digest=api_key_digest,
                                                               open_paths=OPEN_PATHS)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: _http_refusal})
    app.state.gate = gate  # how busy the replica is (read by tests and by whoever debugs a replica)
    return app


def error_response(refused: CompletionRequestError) -> Response:
    """The OpenAI error object with the refusal's status (and Retry-After when it says when to retry)."""
    headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
    return JSONResponse(refused.body(), status_code=refused.status, headers=headers)


def _guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` answering its refusals with their status, and anything unexpected with a 500 that names an
    error id and nothing else (the traceback goes to the log under that id)."""
    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except CompletionRequestError as refused:
            return error_response(refused)
        except Exception:
            error_id = uuid.uuid4().hex[:16]
            log.exception("%s %s failed: internal error id %s", request.method, request.url.path, error_id)
            return error_response(CompletionRequestError(
                f"internal error (id {error_id}); the server's log has the details under this id", None,
                status=500, kind="server_error", code="internal_error"))
    return guarded


ROUTES = ("POST /v1/completions", "POST /v1/chat/completions", "GET /v1/models", "GET /health")
"""What the app answers (named in a 404)."""


async def _http_refusal(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such route, wrong method) as OpenAI error objects."""
    if exc.status_code == 404:
        message = f"no route {request.url.path!r}; this server answers {', '.join(ROUTES)}"
    elif exc.status_code == 405:
        message = f"{request.url.path} does not take {request.method}; it takes {(exc.headers or {}).get('Allow', '?')}"
    else:
        message = exc.detail
    return JSONResponse(CompletionRequestError(message, None, status=exc.status_code).body(),
                        status_code=exc.status_code, headers=exc.headers)


async def _read_json(request: Request, max_bytes: int, deadline: float) -> Any:
    """The JSON body, read only while it stays within ``max_bytes`` and arrives before ``deadline``."""
    try:
        raw = await asyncio.wait_for(read_body(request, max_bytes), timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise CompletionRequestError(
            f"the request body did not arrive within the request timeout ({FLAGS['request_timeout_s']}); "
            "fix: send the whole body at once, with a Content-Length that matches it", None, status=408,
            code="timeout") from None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise CompletionRequestError(f"the body is not JSON ({reason}); send a JSON object", None) from None


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body: refused (413) by its declared Content-Length before any byte is read, or as soon as the
    bytes read pass ``max_bytes`` (a missing or lying Content-Length)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise CompletionRequestError(f"Content-Length {declared[:40]!r} is not a byte count", None)
        if int(declared) > max_bytes:
            raise _too_large(f"the body's Content-Length is {int(declared)} bytes", max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(f"the body passed {max_bytes} bytes and was not read further", max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, max_bytes: int) -> CompletionRequestError:
    return CompletionRequestError(
        f"{what}; this server reads at most {max_bytes} bytes a request; fix: send a smaller body (fewer or shorter "
        f"prompts), or serve with a higher {FLAGS['max_body_bytes']}", None, status=413, code="body_too_large")
