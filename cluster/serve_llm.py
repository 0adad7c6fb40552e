"""The judge model on GPUs as a Ray Serve LLM app, and the HTTP judge pointed at it.

Ray Serve LLM (``ray.serve.llm``, the ``ray[llm]`` extra) runs vLLM engines behind an OpenAI-compatible,
autoscaled Serve app with its own metrics. At run start (``judges.serve_llm.enabled``) the driver deploys
that app on the cluster's Serve, at ``judges.serve_llm.route_prefix``, and the judge group's existing HTTP
judge (:mod:`ouro_ray.judges.http`) calls it: no second client, and ``ouro serve`` stays the CPU path.

:func:`llm_config_kwargs` is the config → ``LLMConfig`` mapping (pure, tested on CPU);
:func:`serve_llm_status` says whether the package and the GPUs are there; :func:`start_judge_llm` deploys.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, Callable

from ouro_ray.config.judges import JudgesConfig
from ouro_ray.config.serve_llm import ServeLLMConfig

log = logging.getLogger(__name__)

APP = "ouro-judge-llm"
"""The Serve application's name (``serve status``, the dashboard's Serve tab)."""


class ServeLLMUnavailable(RuntimeError):
    """``judges.serve_llm.enabled: true`` on a cluster or install that cannot run it."""


def llm_config_kwargs(cfg: ServeLLMConfig) -> dict[str, Any]:
    """The keyword arguments of ``ray.serve.llm.LLMConfig`` for ``judges.serve_llm``.

    One engine spans ``tensor_parallel_size`` GPUs, each in its own placement bundle that also carries the
    custom resources (``{judge_node: 0.01}``); STRICT_PACK keeps an engine's GPUs on one node."""
    engine: dict[str, Any] = {"tensor_parallel_size": cfg.tensor_parallel_size, "dtype": cfg.dtype,
                              "gpu_memory_utilization": cfg.gpu_memory_utilization}
    if cfg.max_model_len is not None:
        engine["max_model_len"] = cfg.max_model_len
    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": cfg.model_id, "model_source": cfg.model},
        "engine_kwargs": engine,
        "placement_group_config": {"bundle_per_worker": {"CPU": cfg.num_cpus, "GPU": 1.0, **cfg.resources},
                                   "strategy": "STRICT_PACK"},
        "deployment_config": {
            "autoscaling_config": {"min_replicas": cfg.min_replicas, "max_replicas": cfg.max_replicas,
                                   "initial_replicas": max(1, cfg.min_replicas),
                                   "target_ongoing_requests": cfg.target_ongoing_requests},
            "max_ongoing_requests": cfg.max_ongoing_requests,
        },
    }
    if cfg.accelerator_type is not None:
        kwargs["accelerator_type"] = cfg.accelerator_type
    return kwargs


def serve_llm_status(cfg: ServeLLMConfig, cluster_resources: dict[str, float] | None = None,
                     importer: Callable[[], Any] | None = None) -> tuple[bool, str]:
    """``(usable, reason)``: Ray Serve LLM needs ``ray.serve.llm`` with an engine (vLLM) and, on the cluster,
    the GPUs one engine spans (of ``accelerator_type`` when set). ``cluster_resources``: default
    ``ray.cluster_resources()``; ``importer``: default imports ``ray.serve.llm``."""
    try:
        (importer or _import_serve_llm)()
    except ImportError as exc:
        return False, (f"ray.serve.llm does not import ({str(exc).splitlines()[0]}); fix: install the serve-llm extra "
                       "(pip install -e '.[serve-llm]', ray[llm] with vLLM) on a CUDA machine")
    if cluster_resources is None:
        import ray

        cluster_resources = ray.cluster_resources()
    gpus = float(cluster_resources.get("GPU", 0.0))
    if gpus < cfg.tensor_parallel_size:
        return False, (f"the cluster has {gpus:g} GPU(s) and one judge engine spans judges.serve_llm."
                       f"tensor_parallel_size = {cfg.tensor_parallel_size}; fix: add GPU nodes, or lower it")
    if cfg.accelerator_type is not None and f"accelerator_type:{cfg.accelerator_type}" not in cluster_resources:
        kinds = sorted(k.split(":", 1)[1] for k in cluster_resources if k.startswith("accelerator_type:"))
        return False, (f"judges.serve_llm.accelerator_type = {cfg.accelerator_type!r}, and the cluster's GPUs are "
                       f"{', '.join(kinds) or 'of no type Ray knows'}; fix: set it to one of those, or null")
    missing = [k for k in cfg.resources if k not in cluster_resources]
    if missing:
        return False, (f"judges.serve_llm.resources asks for {', '.join(missing)}, which no node declares; fix: give "
                       "the judge GPU nodes that resource (cluster/k8s), or remove it")
    return True, f"{gpus:g} GPU(s) on the cluster"


def _import_serve_llm() -> Any:
    import ray.serve.llm

    return ray.serve.llm


def judges_with_serve_llm(cfg: JudgesConfig, base_url: str) -> JudgesConfig:
    """The judges config whose HTTP judge calls the Serve LLM app at ``base_url`` (completions with logprobs:
    the judge reads the score tokens' probabilities, and Serve LLM's vLLM engines return them)."""
    http = dataclasses.replace(cfg.http, base_url=base_url, model=cfg.serve_llm.model_id, api="completions")
    return dataclasses.replace(cfg, http=http)


def app_base_url(cfg: ServeLLMConfig, serve_host: str, serve_port: int, node_ip: str) -> str:
    """Where the judge replicas reach the app: ``judges.serve_llm.base_url``, else Serve's proxy (on the head,
    at ``node_ip`` when it listens on every interface, since replicas on other nodes must reach it) plus the
    app's route."""
    if cfg.base_url:
        return cfg.base_url.rstrip("/")
    host = node_ip if serve_host in ("0.0.0.0", "::") else serve_host
    return f"http://{host}:{serve_port}{cfg.route_prefix}"


@dataclasses.dataclass
class JudgeLLMApp:
    """The deployed Serve LLM judge app; :meth:`close` deletes it (the run's end, or a failed start)."""

    url: str

    def close(self) -> None:
        from ray import serve

        if APP in serve.status().applications:
            serve.delete(APP)


def openai_app(cfg: ServeLLMConfig) -> Any:
    """Ray Serve LLM's OpenAI-compatible app (ingress + autoscaled vLLM engines) for ``judges.serve_llm``."""
    from ray.serve.llm import LLMConfig, build_openai_app

    try:
        llm_config = LLMConfig(**llm_config_kwargs(cfg))
    except ValueError as exc:  # pydantic's ValidationError: e.g. an accelerator type Ray does not know
        raise ValueError(f"judges.serve_llm: Ray Serve LLM refuses the settings: {exc}; fix: correct the key it "
                         "names (`ouro config --explain` lists them)") from None
    return build_openai_app({"llm_configs": [llm_config]})


def start_judge_llm(cfg: JudgesConfig, serve_host: str, serve_port: int, say: Callable[[str], None] = log.info,
                    build_app: Callable[[ServeLLMConfig], Any] = openai_app) -> tuple[JudgesConfig, JudgeLLMApp | None]:
    """Deploy the Serve LLM judge app when ``judges.serve_llm`` asks for it. Returns the judges config the run
    uses (its HTTP judge pointed at the app) and the app, or ``(cfg, None)`` when nothing is deployed. Raises
    :class:`ServeLLMUnavailable` for ``enabled: true`` without the package or the GPUs, TimeoutError when the
    engines do not come up within ``deploy_timeout_s``. ``build_app``: the Serve application (tests deploy
    another OpenAI-compatible app here on CPU)."""
    s = cfg.serve_llm
    if not s.enabled:
        return cfg, None
    usable, reason = serve_llm_status(s)
    if not usable:
        if s.enabled == "auto":
            say(f"judges.serve_llm.enabled = auto: no Serve LLM judge ({reason})")
            return cfg, None
        raise ServeLLMUnavailable(f"judges.serve_llm.enabled = true, but {reason}")
    import ray
    from ray import serve

    from cluster.serving import ensure_serve

    info = ensure_serve(serve_host, serve_port)
    app = build_app(s)
    say(f"deploying the judge model {s.model!r} on Ray Serve LLM ({reason}); engines load, this takes minutes")
    failure: list[BaseException] = []

    def deploy() -> None:
        try:
            serve.run(app, name=APP, route_prefix=s.route_prefix)
        except BaseException as exc:  # re-raised in the driver's thread below
            failure.append(exc)

    thread = threading.Thread(target=deploy, name="ouro-serve-llm", daemon=True)
    thread.start()
    thread.join(s.deploy_timeout_s)
    if thread.is_alive():
        serve.delete(APP, _blocking=False)
        raise TimeoutError(f"the Serve LLM judge app did not come up within judges.serve_llm.deploy_timeout_s = "
                           f"{s.deploy_timeout_s:g} s; fix: check `serve status` and the replicas' logs (no GPU free for "
                           "its placement group? model not on the node?), or raise the timeout")
    if failure:
        raise RuntimeError(f"deploying the Serve LLM judge app {APP!r} failed: {failure[0]}") from failure[0]
    url = app_base_url(s, info.host, info.port, ray.util.get_node_ip_address())
    say(f"judge model served at {url}/v1 as {s.model_id!r}")
    return judges_with_serve_llm(cfg, url), JudgeLLMApp(url)
