"""Checks of the cluster files (cluster/k8s, cluster/launcher) against a schema and against a run config.

Schema: a Kubernetes CRD's ``openAPIV3Schema`` read with Kubernetes' meaning, for ``jsonschema``:
``nullable: true`` admits null; ``x-kubernetes-int-or-string`` nodes already carry ``anyOf: [integer, string]``;
``x-kubernetes-preserve-unknown-fields`` keeps any key; every other object schema with ``properties`` admits only
those keys (the API server would prune an unknown key silently, which is how a misspelled field goes unseen).
CEL rules (``x-kubernetes-validations``) are not evaluated: :func:`cel_paths` lists where they sit.

Nodes: the node types Ray's autoscaler derives from a RayCluster (:func:`kuberay_node_types`), as
``cluster.placement`` nodes at their replica bounds (:func:`nodes_at`), for its ``role_requests`` and ``place``.
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml


def kubernetes_schema(path: Path) -> dict[str, Any]:
    """The vendored ``openAPIV3Schema`` (``.json.gz``) with Kubernetes' semantics made explicit for jsonschema."""
    return _strict(json.loads(gzip.decompress(path.read_bytes())))


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    keeps_unknown = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not keeps_unknown:
        out["additionalProperties"] = False
    return out


def cel_paths(schema: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Dotted paths of the schema nodes that carry CEL rules (``x-kubernetes-validations``)."""
    if "x-kubernetes-validations" in schema:
        yield path
    for name, sub in schema.get("properties", {}).items():
        yield from cel_paths(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from cel_paths(schema["items"], f"{path}[]")


def schema_problems(path: Path, schema: Mapping[str, Any], doc_index: int = 0) -> list[str]:
    """Every way document ``doc_index`` of the YAML file breaks ``schema``, as ``FILE:LINE: key: problem``
    (each problem located at the deepest YAML node that exists on its path)."""
    text = path.read_text(encoding="utf-8")
    node = list(yaml.compose_all(text))[doc_index]
    doc = list(yaml.safe_load_all(text))[doc_index]
    validator = jsonschema.Draft7Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        keys = list(error.absolute_path)
        where = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in keys).replace(".[", "[") or "(top)"
        message, at = error.message, keys
        if error.validator == "additionalProperties":
            unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            known = ", ".join(sorted(error.schema.get("properties", {})))
            message, at = f"unknown field(s) {unknown}; the fields here are: {known}", keys + unknown[:1]
        problems.append(f"{path}:{_line(node, at)}: {where}: {message}")
    return problems


def _line(node: yaml.Node, keys: list[str | int]) -> int:
    """1-based line of the value at ``keys`` (its key's line, where it has one), or of its deepest existing
    ancestor."""
    line = node.start_mark.line
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            pair = (node.value[key], node.value[key])
        else:
            pair = None
        if pair is None:
            break
        line, node = pair[0].start_mark.line, pair[1]
    return line + 1


def kuberay_node_types(cluster_spec: Mapping[str, Any], name: str = "ouro") -> dict[str, dict[str, Any]]:
    """The node types Ray's autoscaler derives from a RayCluster spec (the code that runs on the head pod:
    resources from the group's ``resources`` field, ``rayStartParams`` and the container limits); it also
    validates the result against Ray's cluster schema."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cr = {"metadata": {"name": name, "namespace": "default"}, "spec": copy.deepcopy(dict(cluster_spec))}
    return _derive_autoscaling_config_from_ray_cr(cr)["available_node_types"]


def nodes_at(node_types: Mapping[str, Mapping[str, Any]], at: str) -> list[Any]:
    """``cluster.placement.Node`` s of every node type at its ``min`` or ``max`` worker count (``at``), plus one head
    (the KubeRay head group or the launcher's ``head`` type)."""
    from cluster.placement import Node

    nodes = []
    for name, node_type in node_types.items():
        count = 1 if name in ("headgroup", "head") else node_type.get(f"{at}_workers", 0)
        nodes += [Node(f"{name}-{i}", {k: float(v) for k, v in node_type["resources"].items()}) for i in range(count)]
    return nodes
