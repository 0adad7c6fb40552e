"""What each role asks of the cluster, and whether a cluster's nodes can hold it.

:func:`role_requests` lists, from the config alone (no model, no Ray), every group of resources the run
reserves: one per actor (rollout, reference, reward model, judge replicas), one per Ray Train worker, and one
per Serve LLM engine (its ``tensor_parallel_size`` GPU bundles on one node). :func:`place` packs them onto
nodes, for instance those of ``cluster/k8s/raycluster.yaml`` (:func:`kuberay_nodes`), and names what does not
fit. ``ouro config CONFIG --placement RAYCLUSTER.yaml`` prints both; tests also place them on a simulated
Ray cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ouro_ray.config import OuroConfig
from ouro_ray.config.learner import LearnerConfig


@dataclass(frozen=True)
class Request:
    """``count`` groups of ``bundles`` that the role ``role`` (set by config key ``key``) reserves; the bundles
    of one group share a node."""

    role: str
    key: str
    bundles: tuple[Mapping[str, float], ...]
    count: int


@dataclass
class Node:
    """A Ray node's logical resources (``CPU``, ``GPU``, custom), and what has been placed on it."""

    name: str
    resources: dict[str, float]
    used: dict[str, float] = field(default_factory=dict)

    def room(self, bundles: tuple[Mapping[str, float], ...]) -> bool:
        need: dict[str, float] = {}
        for bundle in bundles:
            for k, v in bundle.items():
                need[k] = need.get(k, 0.0) + v
        return all(self.used.get(k, 0.0) + v <= self.resources.get(k, 0.0) + 1e-9 for k, v in need.items())

    def take(self, bundles: tuple[Mapping[str, float], ...]) -> None:
        for bundle in bundles:
            for k, v in bundle.items():
                self.used[k] = self.used.get(k, 0.0) + v


def learner_worker_resources(cfg: LearnerConfig, use_gpu: bool) -> dict[str, float]:
    """What each Ray Train worker reserves: its CPUs, its GPUs when it trains on them, the custom resources."""
    return {"CPU": cfg.num_cpus_per_worker, **({"GPU": cfg.num_gpus_per_worker} if use_gpu else {}), **cfg.resources}


def _actor(num_cpus: float, num_gpus: float, resources: Mapping[str, float]) -> dict[str, float]:
    return {"CPU": num_cpus, **({"GPU": num_gpus} if num_gpus else {}), **resources}


def role_requests(cfg: OuroConfig, gpu_cluster: bool = True, at: Literal["start", "max"] = "start") -> list[Request]:
    """Every group of resources the run reserves; ``at``: the autoscaled roles (judges, Serve LLM engines) at
    their start size or their most; ``gpu_cluster``: what ``learner.use_gpu: auto`` decides."""
    from cluster.serve_llm import llm_config_kwargs

    out: list[Request] = []

    def actors(role: str, key: str, w: Any) -> None:
        if w.num_workers:
            out.append(Request(role, key, (_actor(w.num_cpus, w.num_gpus, w.resources),), w.num_workers))

    actors("rollout", "rollout.workers", cfg.rollout.workers)
    actors("reference", "reference.workers", cfg.reference.workers)
    lr = cfg.learner
    use_gpu = lr.use_gpu == "yes" or (lr.use_gpu == "auto" and gpu_cluster)
    if lr.num_workers:
        out.append(Request("learner", "learner.num_workers", (learner_worker_resources(lr, use_gpu),), lr.num_workers))
    rm = cfg.reward_model
    if rm.refit_every:
        actors("reward model", "reward_model.workers", rm.workers)
        if rm.learner_workers:
            out.append(Request("reward model learner", "reward_model.learner_workers",
                               (learner_worker_resources(lr, use_gpu),), rm.learner_workers))
    j = cfg.judges
    n_judges = j.min_workers if at == "start" else j.max_workers
    if j.max_workers and n_judges:
        out.append(Request("judges", "judges.num_cpus", (_actor(j.num_cpus, j.num_gpus, j.resources),), n_judges))
    s = j.serve_llm
    n_engines = max(1, s.min_replicas) if at == "start" else s.max_replicas
    if s.enabled:
        bundle = llm_config_kwargs(s)["placement_group_config"]["bundle_per_worker"]
        bundles = [dict(bundle) for _ in range(s.tensor_parallel_size)]
        bundles[0]["CPU"] = bundles[0].get("CPU", 0.0) + 1.0  # Serve LLM puts the replica actor (1 CPU) in bundle 0
        out.append(Request("judge engines (Serve LLM)", "judges.serve_llm", tuple(bundles), n_engines))
    return out


def place(requests: list[Request], nodes: list[Node]) -> tuple[dict[str, list[str]], list[str]]:
    """First-fit, largest GPU groups first: ``({role: [node of each group]}, problems)``. A problem names the
    role, its config key, the group and the nodes' free resources. First-fit can miss a packing that exists;
    what it places does fit."""
    where: dict[str, list[str]] = {}
    problems: list[str] = []
    order = sorted(requests, key=lambda r: -sum(b.get("GPU", 0.0) for b in r.bundles))
    for req in order:
        for i in range(req.count):
            node = next((n for n in nodes if n.room(req.bundles)), None)
            if node is None:
                free = "; ".join(f"{n.name}: " + _fmt({k: v - n.used.get(k, 0.0) for k, v in n.resources.items()})
                                 for n in nodes)
                problems.append(f"{req.key}: {req.role} group {i + 1} of {req.count} ({' + '.join(map(_fmt, req.bundles))}) "
                                f"fits on no node (free: {free}); fix: lower {req.key}'s resources or count, or give "
                                "the cluster a node with room")
                break
            node.take(req.bundles)
            where.setdefault(req.role, []).append(node.name)
    return where, problems


def _fmt(bundle: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in bundle.items()) + "}"


def _quantity(value: Any) -> float:
    """A Kubernetes CPU/GPU quantity (``"8"``, ``"500m"``) as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def kuberay_nodes(raycluster: Mapping[str, Any], scale: Literal["replicas", "maxReplicas"] = "replicas") -> list[Node]:
    """The Ray nodes a KubeRay ``RayCluster`` gives: the head, then each worker group's pods (``scale``: its
    initial or its most), each with the container's CPU and ``nvidia.com/gpu`` limits and the group's custom
    resources (the group's ``resources`` field, or ``rayStartParams.resources``)."""
    import json

    spec = raycluster["spec"]
    groups = [("head", spec["headGroupSpec"], 1)]
    groups += [(g["groupName"], g, int(g.get(scale, g.get("replicas", 1)))) for g in spec.get("workerGroupSpecs", [])]
    nodes = []
    for name, group, pods in groups:
        limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
        start = group.get("rayStartParams") or {}
        custom = group.get("resources") or json.loads(start.get("resources", "{}").strip("'\""))
        res = {"CPU": _quantity(start.get("num-cpus", limits.get("cpu", 0))),
               "GPU": _quantity(start.get("num-gpus", limits.get("nvidia.com/gpu", 0)))}
        res.update({k: _quantity(v) for k, v in custom.items()})
        nodes += [Node(f"{name}-{i}", dict(res)) for i in range(pods)]
    return nodes
