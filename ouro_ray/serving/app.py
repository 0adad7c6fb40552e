"""Glue: the Serve deployment that puts a :class:`CompletionEngine` behind OpenAI-compatible HTTP routes.

Routes, relative to the app's route prefix: ``POST /v1/completions``, ``POST /v1/chat/completions`` (messages
rendered with the model's chat template), ``GET /v1/models``, ``GET /health``.
Refused requests answer with OpenAI's error object (``{"error": {"message", "type", "param"}}``): 400
for a bad field, 404 for an unknown model or route, 405 for a wrong method; an engine failure is a 500,
which ``HTTPJudge`` retries.

As with Ray roles, :class:`CompletionsServer` is a plain class; :func:`build_app` makes it a deployment
with the resources given at build time (the class carries none).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ouro_ray.serving.chat import complete_chat, parse_chat_request
from ouro_ray.serving.completions import CompletionEngine, CompletionRequestError, parse_request

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from cluster.serving import ServeInfo

log = logging.getLogger(__name__)

ROUTES = {"/v1/completions": "POST", "/v1/chat/completions": "POST", "/v1/models": "GET", "/health": "GET"}
"""Each route and the one method it answers."""


class CompletionsServer:
    """One Serve replica: HTTP routing and JSON around one :class:`CompletionEngine`."""

    def __init__(self, model_dir: str, model_name: str, *, dtype: str = "float32", device: str = "cpu",
                 truncate_prompts: bool = False):
        self.engine = CompletionEngine.from_dir(model_dir, name=model_name, dtype=dtype, device=device,
                                                truncate_prompts=truncate_prompts)

    async def __call__(self, request: "Request") -> "Response":
        path = _relative_path(request)
        method = ROUTES.get(path)
        if method is None:
            return _error(CompletionRequestError(f"no route {path!r}; this server answers {sorted(ROUTES)}", None,
                                                 status=404))
        if request.method != method:
            return _error(CompletionRequestError(f"{path} takes {method}, not {request.method}", None, status=405))
        if path == "/v1/models":
            return _json({"object": "list", "data": [self.engine.model_card()]})
        if path == "/health":
            return _json({"status": "ok", "model": self.engine.name})
        if path == "/v1/chat/completions":
            return await self._answer(request, path, parse_chat_request, lambda chat: complete_chat(self.engine, chat))
        return await self._answer(request, path, parse_request, self.engine.complete)

    async def _answer(self, request: "Request", path: str, parse: Callable[[Any], Any],
                      answer: Callable[[Any], dict[str, Any]]) -> "Response":
        try:
            parsed = parse(await _json_body(request))
            # In a thread: generation is blocking, and the replica's event loop must keep answering /health.
            return _json(await asyncio.to_thread(answer, parsed))
        except CompletionRequestError as refused:
            return _error(refused)
        except Exception as exc:  # the client gets a retryable 500 with the reason; the log keeps the trace
            log.exception("%s request failed", path)
            return _error(CompletionRequestError(f"{type(exc).__name__}: {exc}", None, status=500,
                                                 kind="server_error"))

    def check_health(self) -> None:
        """Serve's replica health check: the engine must still hold a model."""
        if self.engine.model is None:
            raise RuntimeError("the completions engine lost its model")


async def _json_body(request: "Request") -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CompletionRequestError(f"the body is not JSON ({exc}); send a JSON object", None) from exc


def _relative_path(request: "Request") -> str:
    """The path after the app's route prefix (ASGI puts the prefix in ``root_path``; the path may include it)."""
    path, root = request.url.path, request.scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return "/" + path.strip("/")


def _json(body: dict[str, Any], status: int = 200) -> "Response":
    from starlette.responses import JSONResponse

    return JSONResponse(body, status_code=status)


def _error(refused: CompletionRequestError) -> "Response":
    return _json(refused.body(), status=refused.status)


# --- building and deploying ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """A deployed completions app: its Serve name, route prefix and the model name clients send."""

    app_name: str
    route_prefix: str
    model: str

    def base_url(self, serve_info: "ServeInfo") -> str:
        """What ``HTTPJudge`` takes as ``base_url`` (it appends ``/v1/completions`` or ``/v1/chat/completions``;
        the openai client takes this plus ``/v1``)."""
        return serve_info.base_url + self.route_prefix.rstrip("/")

    def delete(self) -> None:
        """Take the app down (its replicas stop; Serve keeps running)."""
        from ray import serve

        serve.delete(self.app_name)


def build_app(model_dir: Path | str, *, model_name: str, num_replicas: int = 1, num_cpus: float = 1.0,
              num_gpus: float = 0.0, dtype: str = "float32", truncate_prompts: bool = False,
              max_ongoing_requests: int = 8):
    """The Serve application (unstarted): :class:`CompletionsServer` with these resources per replica."""
    from ray import serve

    _check_resources(num_replicas, num_cpus, num_gpus)
    deployment = serve.deployment(
        CompletionsServer, name="completions", num_replicas=num_replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        max_ongoing_requests=max_ongoing_requests, max_constructor_retry_count=2,
    )
    device = "cuda" if num_gpus > 0 else "cpu"
    return deployment.bind(str(model_dir), model_name, dtype=dtype, device=device,
                           truncate_prompts=truncate_prompts)


def deploy_completions(model_dir: Path | str, *, name: str, route_prefix: str = "/", model_name: str | None = None,
                       num_replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0, dtype: str = "float32",
                       truncate_prompts: bool = False) -> ServedModel:
    """Deploy the completions app ``name`` at ``route_prefix`` on the running Serve; return when it is up.

    ``model_name`` (default ``name``) is what requests must send as ``model``. ``model_dir`` must be
    readable at that path on the nodes that run replicas. Start Serve first (``cluster.serving.ensure_serve``).
    """
    from ray import serve

    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise ValueError(f"route_prefix={route_prefix!r} must start with '/', e.g. '/' or '/judge'")
    if not (Path(model_dir) / "config.json").is_file():
        raise ValueError(f"model_dir={str(model_dir)!r} has no config.json; pass a Hugging Face model directory")
    app = build_app(model_dir, model_name=model_name or name, num_replicas=num_replicas, num_cpus=num_cpus,
                    num_gpus=num_gpus, dtype=dtype, truncate_prompts=truncate_prompts)
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False)
    return ServedModel(app_name=name, route_prefix=route_prefix, model=model_name or name)


def _check_resources(num_replicas: int, num_cpus: float, num_gpus: float) -> None:
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(f"num_replicas={num_replicas!r} must be an integer >= 1")
    if not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        raise ValueError(f"num_cpus={num_cpus!r} must be > 0 (e.g. 0.25 on a small test cluster)")
    if not isinstance(num_gpus, (int, float)) or num_gpus < 0:
        raise ValueError(f"num_gpus={num_gpus!r} must be >= 0")
