"""Glue: the Serve deployment that runs ``ouro serve``'s ASGI app (:mod:`ouro_ray.serving.http`) in each replica.

As with Ray roles, :class:`CompletionsServer` is a plain class (it loads the engine and builds the app);
:func:`build_app` makes it a deployment with ``@serve.ingress`` and the resources given at build time
(the class carries none). Each replica answers up to ``max_waiting + 1 +`` :data:`REFUSAL_SLOTS` requests
at once (those waiting for the model, the one generating, and room to answer health checks and refusals
meanwhile); past that Serve holds at most :data:`SERVE_QUEUE` more per replica, then answers 503 itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ouro_ray.serving.auth import key_digest
from ouro_ray.serving.completions import CompletionEngine
from ouro_ray.serving.http import create_app
from ouro_ray.serving.limits import ServeLimits

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from cluster.serving import ServeInfo

REFUSAL_SLOTS = 64
"""Requests a replica takes beyond the generation line, so health checks and refusals never wait behind it."""
SERVE_QUEUE = 64
"""Requests Serve's router holds for a replica whose slots are all taken (``max_queued_requests``)."""


class CompletionsServer:
    """One Serve replica: the engine over ``model_dir`` and the HTTP app around it."""

    def __init__(self, model_dir: str, model_name: str, *, dtype: str = "float32", device: str = "cpu",
                 truncate_prompts: bool = False, limits: ServeLimits | None = None,
                 api_key_digest: bytes | None = None):
        self.engine = CompletionEngine.from_dir(model_dir, name=model_name, dtype=dtype, device=device,
                                                truncate_prompts=truncate_prompts)
        self.limits = limits or ServeLimits()
        self._api_key_digest = api_key_digest

    def __serve_build_asgi_app__(self) -> "Starlette":
        """Serve's hook (``@serve.ingress()`` without an app): the ASGI app this replica runs."""
        return create_app(self.engine, self.limits, api_key_digest=self._api_key_digest)

    def check_health(self) -> None:
        """Serve's replica health check: the engine must still hold a model."""
        if self.engine.model is None:
            raise RuntimeError("the completions engine lost its model")


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
              limits: ServeLimits | None = None, api_key: str | None = None):
    """The Serve application (unstarted): :class:`CompletionsServer` with these resources per replica.

    ``api_key``: requests must send it as a bearer token (only its digest reaches the replicas).
    """
    from ray import serve

    _check_resources(num_replicas, num_cpus, num_gpus)
    limits = limits or ServeLimits()
    deployment = serve.deployment(
        serve.ingress()(CompletionsServer), name="completions", num_replicas=num_replicas,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        max_ongoing_requests=limits.max_waiting + 1 + REFUSAL_SLOTS, max_queued_requests=SERVE_QUEUE,
        max_constructor_retry_count=2,
    )
    device = "cuda" if num_gpus > 0 else "cpu"
    return deployment.bind(str(model_dir), model_name, dtype=dtype, device=device, truncate_prompts=truncate_prompts,
                           limits=limits, api_key_digest=None if api_key is None else key_digest(api_key))


def deploy_completions(model_dir: Path | str, *, name: str, route_prefix: str = "/", model_name: str | None = None,
                       num_replicas: int = 1, num_cpus: float = 1.0, num_gpus: float = 0.0, dtype: str = "float32",
                       truncate_prompts: bool = False, limits: ServeLimits | None = None,
                       api_key: str | None = None) -> ServedModel:
    """Deploy the completions app ``name`` at ``route_prefix`` on the running Serve; return when it is up.

    ``model_name`` (default ``name``) is what requests must send as ``model``. ``model_dir`` must be
    readable at that path on the nodes that run replicas. Start Serve first (``cluster.serving.ensure_serve``).
    ``limits`` bound each request (default :class:`ServeLimits`); ``api_key`` makes every route but ``/health``
    require ``Authorization: Bearer <api_key>``.
    """
    from ray import serve

    if not isinstance(route_prefix, str) or not route_prefix.startswith("/"):
        raise ValueError(f"route_prefix={route_prefix!r} must start with '/', e.g. '/' or '/judge'")
    if not (Path(model_dir) / "config.json").is_file():
        raise ValueError(f"model_dir={str(model_dir)!r} has no config.json; pass a Hugging Face model directory")
    app = build_app(model_dir, model_name=model_name or name, num_replicas=num_replicas, num_cpus=num_cpus,
                    num_gpus=num_gpus, dtype=dtype, truncate_prompts=truncate_prompts, limits=limits, api_key=api_key)
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False)
    return ServedModel(app_name=name, route_prefix=route_prefix, model=model_name or name)


def _check_resources(num_replicas: int, num_cpus: float, num_gpus: float) -> None:
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(f"num_replicas={num_replicas!r} must be an integer >= 1")
    if not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        raise ValueError(f"num_cpus={num_cpus!r} must be > 0 (e.g. 0.25 on a small test cluster)")
    if not isinstance(num_gpus, (int, float)) or num_gpus < 0:
        raise ValueError(f"num_gpus={num_gpus!r} must be >= 0")
