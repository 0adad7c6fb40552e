"""The cluster files hold: cluster/k8s against the KubeRay CRD schema (v1.7.0, vendored in data/), the launcher
against Ray's own cluster schema, and both against the run configs (every custom resource a role asks for exists,
GPU roles get GPUs, the replica bounds hold every role's actors at the config's min and max).

No Kubernetes cluster here: these are the checks `kubectl apply` (schema, field validation) and Ray's autoscaler
(resources, bounds) would make, run offline.
"""

from __future__ import annotations

import gzip
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from _cluster_files import cel_paths, kuberay_node_types, kubernetes_schema, nodes_at, schema_problems
from _paths import REPO

from cluster.placement import kuberay_nodes, place, role_requests
from ouro_ray.cli import build_parser
from ouro_ray.config import load_config
from ouro_ray.models.resolve import RUN_MARKER

K8S = REPO / "cluster" / "k8s"
LAUNCHER = REPO / "cluster" / "launcher" / "ouro-aws.yaml"
DOCKERFILE = REPO / "cluster" / "docker" / "Dockerfile"
KUBERAY = "v1.7.0"
SCHEMAS = {kind: Path(__file__).with_name("data") / f"kuberay-{KUBERAY}-{kind.lower()}s-v1.json.gz"
           for kind in ("RayCluster", "RayJob")}
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
GPU_CONFIG = REPO / "configs" / "gpu.yaml"


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _cluster_spec() -> dict:
    return _load(K8S / "raycluster.yaml")["spec"]


def _pods(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("name, kind", [("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")])
def test_manifests_match_the_kuberay_crd_schema(name, kind):
    doc = _load(K8S / name)
    assert (doc["apiVersion"], doc["kind"]) == ("ray.io/v1", kind)
    assert schema_problems(K8S / name, kubernetes_schema(SCHEMAS[kind])) == []


@pytest.mark.parametrize("name, kind, before, after, expected", [
    # a misspelled field: the API server would drop it silently; here it is an error at its path and line
    ("raycluster.yaml", "RayCluster", "      rayStartParams: {}\n      template:\n        spec:\n          containers:",
     "      rayStartParams: {}\n      template:\n        spec:\n          contaners:",
     r"raycluster\.yaml:{line}: spec\.workerGroupSpecs\[0\]\.template\.spec: unknown field\(s\) \['contaners'\]; "
     r"the fields here are: .*containers"),
    ("rayjob.yaml", "RayJob", "  shutdownAfterJobFinishes: true", "  shutdownAfterJobFinished: true",
     r"rayjob\.yaml:{line}: spec: unknown field\(s\) \['shutdownAfterJobFinished'\]"),
    ("raycluster.yaml", "RayCluster", "    mode: token", "    mode: tokens",
     r"raycluster\.yaml:{line}: spec\.authOptions\.mode: 'tokens' is not one of \['disabled', 'token'\]"),
    ("raycluster.yaml", "RayCluster", "      maxReplicas: 2\n", "      maxReplicas: two\n",
     r"raycluster\.yaml:{line}: spec\.workerGroupSpecs\[1\]\.maxReplicas: 'two' is not of type 'integer'"),
    ("rayjob.yaml", "RayJob", "              limits: {cpu: \"4\", memory: 16Gi}",
     "              limits: {cpu: [4], memory: 16Gi}",
     r"rayjob\.yaml:{line}: spec\.rayClusterSpec\.workerGroupSpecs\[0\]\.template\.spec\.containers\[0\]\.resources"
     r"\.limits\.cpu: \[4\] is not valid under any of the given schemas"),
], ids=["misspelled-field", "misspelled-rayjob-field", "enum", "type", "int-or-string"])
def test_a_broken_manifest_is_an_error_naming_its_path_and_line(tmp_path, name, kind, before, after, expected):
    text = (K8S / name).read_text(encoding="utf-8")
    assert text.count(before) >= 1, f"the mutation's anchor is gone from {name}: {before!r}"
    broken = tmp_path / name
    broken.write_text(text.replace(before, after, 1), encoding="utf-8")
    problems = schema_problems(broken, kubernetes_schema(SCHEMAS[kind]))
    changed = next(i for i, (a, b) in enumerate(zip(text.splitlines(), broken.read_text().splitlines())) if a != b) + 1
    assert any(re.search(expected.format(line=changed), p) for p in problems), problems
    assert len(problems) <= 2, problems  # a misspelled required field is also reported missing


def test_the_schema_is_read_with_kubernetes_meaning(tmp_path):
    schema = {"type": "object", "properties": {
        "q": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
        "n": {"type": "string", "nullable": True},
        "free": {"type": "object", "properties": {"a": {"type": "integer"}}, "x-kubernetes-preserve-unknown-fields": True},
        "strict": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}}}}
    gz = tmp_path / "s.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(schema).encode()))
    strict = kubernetes_schema(gz)
    good = tmp_path / "good.yaml"
    good.write_text("q: 8\nn: null\nfree: {a: 1, anything: x}\nstrict: {a: 1}\nlabels: {x: y}\n")
    assert schema_problems(good, strict) == []
    good.write_text("q: 500m\n")
    assert schema_problems(good, strict) == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("q: [8]\nstrict: {a: 1, b: 2}\ntypo: 1\n")
    problems = schema_problems(bad, strict)
    assert [p.split(": ")[1] for p in problems] == ["(top)", "q", "strict"], problems
    assert problems[0].startswith(f"{bad}:3: (top): unknown field(s) ['typo']")
    assert problems[2].startswith(f"{bad}:2: strict: unknown field(s) ['b']")


def test_cel_rules_sit_only_on_fields_these_manifests_do_not_set():
    """jsonschema cannot evaluate Kubernetes' CEL rules; none applies, because none of their fields is set."""
    for name, kind in (("raycluster.yaml", "RayCluster"), ("rayjob.yaml", "RayJob")):
        doc = _load(K8S / name)
        schema = kubernetes_schema(SCHEMAS[kind])
        paths = list(cel_paths(schema))
        assert paths, "the CRD has CEL rules; if they are gone, drop this test"
        for path in paths:
            node = doc
            for key in path.replace("[]", "").split("."):
                node = node.get(key) if isinstance(node, dict) else None
            assert node is None, f"{name} sets {path}, which has a CEL rule this test cannot check"


def test_the_rayjob_runs_the_raycluster_spec():
    assert _load(K8S / "rayjob.yaml")["spec"]["rayClusterSpec"] == _cluster_spec()


def test_the_rayjob_entrypoint_starts_or_resumes_an_ouro_run_in_the_image():
    argv = shlex.split(_load(K8S / "rayjob.yaml")["spec"]["entrypoint"])  # what the submitter's shell passes on
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3
    script = argv[2]
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    m = re.fullmatch(r"cd (\S+) && if \[ -f (\S+) \]; then exec (ouro run [^;]+); else exec (ouro run [^;]+); fi", script)
    assert m, script
    cd, marker, resume, start = m.groups()
    assert cd == workdir
    resume_args = build_parser().parse_args(shlex.split(resume)[1:])
    start_args = build_parser().parse_args(shlex.split(start)[1:])
    assert start_args.args == ["configs/gpu.yaml"] and GPU_CONFIG.is_file()
    assert resume_args.resume == start_args.out and marker == f"{start_args.out}/{RUN_MARKER}"
    head = _cluster_spec()["headGroupSpec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in head["volumeMounts"]}
    assert any(start_args.out.startswith(f"{p}/") for p in mounts), f"{start_args.out} is not on a mounted volume"


def test_every_pod_mounts_the_shared_volume_and_runs_the_one_image():
    spec = _cluster_spec()
    pvc = _load(K8S / "storage.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    images = set()
    for pod in _pods(spec):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        container = pod["containers"][0]
        images.add(container["image"])
        shared = {m["mountPath"] for m in container["volumeMounts"] if claims.get(m["name"]) == pvc["metadata"]["name"]}
        assert shared == {"/models", "/runs"}, container["name"]
    assert len(images) == 1
    ray_version = spec["rayVersion"]
    assert re.search(rf"^ARG RAY_IMAGE=rayproject/ray:{re.escape(ray_version)}-py311-gpu$", DOCKERFILE.read_text(), re.M)
    assert f"ray[default,train,serve]=={ray_version}" in LAUNCHER.read_text()


def test_the_image_and_the_launcher_install_extras_the_project_has():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11+")
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    docker = re.search(r"^ARG EXTRAS=(\S+)$", DOCKERFILE.read_text(), re.M).group(1).split(",")
    launcher = re.search(r'ouro-ray\[([^\]]+)\]"', LAUNCHER.read_text()).group(1).split(",")
    assert docker == launcher and set(docker) <= extras, (docker, launcher, sorted(extras))


def test_token_auth_is_on_with_the_secret_the_readme_creates():
    auth = _cluster_spec()["authOptions"]
    assert auth["mode"] == "token"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"kubectl create secret generic {auth['secretName']} --from-literal=auth_token=" in readme
    launcher = _load(LAUNCHER)
    assert launcher["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for command in launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]:
        assert "RAY_AUTH_MODE=token" in command, command


def test_the_launcher_matches_rays_cluster_schema(tmp_path):
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    assert schema_problems(LAUNCHER, schema) == []
    validate_config(prepare_config(_load(LAUNCHER)))  # what `ray up` checks before it calls AWS: raises if wrong
    broken = tmp_path / "ouro-aws.yaml"
    broken.write_text(LAUNCHER.read_text().replace("head_start_ray_commands:", "head_start_ray_command:"))
    problems = schema_problems(broken, schema)
    assert len(problems) == 1 and "unknown field(s) ['head_start_ray_command']" in problems[0], problems


def _cluster_files() -> dict[str, dict]:
    """Node types as Ray's autoscaler sees them: derived from the RayCluster, or the launcher's own."""
    return {"cluster/k8s/raycluster.yaml": kuberay_node_types(_cluster_spec()),
            "cluster/launcher/ouro-aws.yaml": _load(LAUNCHER)["available_node_types"]}


BOUNDS = (("start", "min"), ("max", "max"))
"""The config's autoscaled roles at their start size on the groups' minReplicas pods, and at their most on the
maxReplicas pods."""


def test_placement_reads_a_raycluster_as_rays_autoscaler_does():
    """``cluster.placement.kuberay_nodes`` (what ``ouro config --placement`` uses) against Ray's own reading."""
    ray_view = kuberay_node_types(_cluster_spec())
    for node in kuberay_nodes({"spec": _cluster_spec()}, scale="maxReplicas"):
        group = node.name.rsplit("-", 1)[0]
        expected = {k: float(v) for k, v in ray_view["headgroup" if group == "head" else group]["resources"].items()
                    if k != "memory"}
        assert {k: v for k, v in node.resources.items() if v} == expected, group


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_every_custom_resource_a_role_asks_for_exists_in_a_worker_group(config):
    cfg = load_config(config)
    for where, node_types in _cluster_files().items():
        declared = {k for name, t in node_types.items() if name not in ("headgroup", "head") for k in t["resources"]}
        for req in role_requests(cfg, at="max"):
            missing = {k for bundle in req.bundles for k in bundle} - {"CPU", "GPU"} - declared
            assert not missing, (f"{config.name}: {req.key} asks for {sorted(missing)}, which no worker group of "
                                 f"{where} declares; fix: add it to a group's resources, or change {req.key}")


def test_gpu_roles_have_groups_with_gpus_and_the_bounds_hold_every_actor():
    cfg = load_config(GPU_CONFIG)
    requests = role_requests(cfg, at="max")
    gpu_roles = {r.role for r in requests if any(b.get("GPU") for b in r.bundles)}
    assert gpu_roles >= {"rollout", "reference", "learner", "judge engines (Serve LLM)"}, gpu_roles
    for where, node_types in _cluster_files().items():
        for req in requests:
            gpus = sum(b.get("GPU", 0.0) for b in req.bundles)
            custom = {k for b in req.bundles for k in b} - {"CPU", "GPU"}
            groups = [n for n, t in node_types.items() if custom and custom <= set(t["resources"])]
            if gpus:
                assert any(node_types[n]["resources"].get("GPU", 0) >= gpus for n in groups), \
                    f"{where}: {req.key} needs {gpus:g} GPUs on one node, and its groups {groups} have fewer"
        for at, bound in BOUNDS:
            where_placed, problems = place(role_requests(cfg, at=at), nodes_at(node_types, bound))
            assert problems == [], (where, bound, problems)
            assert set(where_placed) == {r.role for r in requests}


def test_the_judge_groups_autoscale_across_the_configs_judge_bounds():
    spec = _cluster_spec()
    cfg = load_config(GPU_CONFIG)
    assert spec["enableInTreeAutoscaling"] is True
    judge_groups = [g for g in spec["workerGroupSpecs"] if "judge_node" in g.get("resources", {})]
    assert {g["groupName"] for g in judge_groups} == {"judge", "judge-gpu"}
    assert cfg.judges.min_workers < cfg.judges.max_workers
    assert all(g["minReplicas"] < g["maxReplicas"] for g in judge_groups)
    gpu_group = next(g for g in judge_groups if g["groupName"] == "judge-gpu")
    serve = cfg.judges.serve_llm
    # one engine per judge-gpu pod at either bound: the group scales with the engines, not beyond them
    assert (gpu_group["minReplicas"], gpu_group["maxReplicas"]) == (serve.min_replicas, serve.max_replicas)


def test_the_placement_check_notices_a_cluster_too_small():
    cfg = load_config(GPU_CONFIG)
    spec = _cluster_spec()
    for group in spec["workerGroupSpecs"]:
        if group["groupName"] == "judge-gpu":
            group["maxReplicas"] = group["minReplicas"]
        if group["groupName"] == "rollout":
            for limits in group["template"]["spec"]["containers"][0]["resources"].values():
                limits.pop("nvidia.com/gpu")
    _, problems = place(role_requests(cfg, at="max"), nodes_at(kuberay_node_types(spec), "max"))
    assert any(p.startswith("judges.serve_llm: ") for p in problems), problems
    assert any(p.startswith("rollout.workers: ") for p in problems), problems
    _, problems = place(role_requests(cfg, at="start"), nodes_at(kuberay_node_types(spec), "min"))
    assert any(p.startswith("rollout.workers: ") for p in problems), problems
