"""Config of the judge model served by Ray Serve LLM on GPUs (``judges.serve_llm``).

On a GPU cluster the judge model runs as vLLM engines behind Ray Serve LLM's OpenAI-compatible, autoscaled
app (``ray.serve.llm``, the ``ray[llm]`` extra); the judge group's HTTP judge calls it. ``ouro serve`` stays
the CPU path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param


@dataclass(frozen=True)
class ServeLLMConfig:
    """The judge model as a Ray Serve LLM app that the HTTP judge calls."""

    enabled: Literal[False, "auto", True] = param(
        False, "serve the judge model with Ray Serve LLM at run start and point the HTTP judge at it: true (fail, "
               "naming what is missing, unless ray.serve.llm with vLLM imports and the cluster has GPUs), auto (only "
               "when both are there; else no Serve LLM judge, said at start), false")
    model: str = param("", "the judge model: a directory on the GPU nodes or a Hugging Face id (model_source)")
    model_id: str = param("ouro-judge", "the name the app serves the model under (the HTTP judge's model)")
    accelerator_type: str | None = param(None, "GPU type the engines must run on, as Ray names it (H100, A100-80G, "
                                               "L4, …; null: any GPU)")
    tensor_parallel_size: int = param(1, "GPUs one engine spans", ge=1)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = param("bfloat16", "the engines' weight dtype")
    gpu_memory_utilization: float = param(0.9, "share of each GPU vLLM may take for weights and KV cache",
                                          gt=0.0, le=1.0)
    max_model_len: int | None = param(None, "longest judge prompt + verdict in tokens (null: the model's)", ge=1)
    min_replicas: int = param(1, "fewest engine replicas (0: scale to zero when idle)", ge=0)
    max_replicas: int = param(2, "most engine replicas", ge=1)
    target_ongoing_requests: float = param(16.0, "Serve adds a replica when replicas average more requests than "
                                                 "this", gt=0.0)
    max_ongoing_requests: int = param(64, "most requests one replica takes at once (the rest queue)", ge=1)
    num_cpus: float = param(1.0, "CPUs each engine GPU worker reserves", ge=0.0)
    resources: dict[str, float] = param(factory=dict, doc="custom Ray resources each engine GPU worker needs, e.g. "
                                        "{judge_node: 0.01}: engines land only on nodes that declare them", ge=0.0)
    route_prefix: str = param("/ouro-judge-llm", "the app's route on Serve's proxy (the HTTP judge's base_url "
                                                 "ends with it)")
    base_url: str | None = param(None, "how the judge replicas reach the app (null: Serve's proxy on the head: "
                                       "its node IP when cluster.serve_host is 0.0.0.0, else 127.0.0.1)")
    deploy_timeout_s: float = param(1800.0, "longest wait for the engines to load before the run fails", gt=0.0)

    def checks(self) -> list[tuple[str, str]]:
        key = "judges.serve_llm"
        problems = []
        if type(self.enabled) is not bool and self.enabled != "auto":  # 0 and 1 equal False and True
            problems.append((f"{key}.enabled", f"{key}.enabled = {self.enabled!r}: must be true, auto or false; "
                             f"fix: set {key}.enabled=true"))
        if self.enabled and not self.model:
            problems.append((f"{key}.model", f"{key}.enabled = {self.enabled} but {key}.model is empty; fix: set it to "
                             "the judge model's directory on the GPU nodes (or a Hugging Face id)"))
        if self.min_replicas > self.max_replicas:
            problems.append((f"{key}.min_replicas", f"{key}.min_replicas = {self.min_replicas} exceeds max_replicas = "
                             f"{self.max_replicas}; fix: raise max_replicas or lower min_replicas"))
        if not self.route_prefix.startswith("/") or self.route_prefix == "/":
            problems.append((f"{key}.route_prefix", f"{key}.route_prefix = {self.route_prefix!r}: must start with '/' "
                             "and name a route of its own; fix: e.g. /ouro-judge-llm"))
        return problems
