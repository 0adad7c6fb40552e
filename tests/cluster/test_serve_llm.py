"""The judge model on Ray Serve LLM (``judges.serve_llm``), and the HTTP judge pointed at it.

What runs here on CPU: the config → ``LLMConfig`` mapping (checked against Ray's own pydantic model), the
clear errors when ``ray.serve.llm`` or the GPUs are missing, and the deploy → route → HTTP judge path with
the project's own OpenAI-compatible CPU app standing in for Serve LLM's (same Serve, same route, same client).
Serving with vLLM engines needs ``ray[llm]`` and a GPU: that test is skipped here, with the reason.
"""

from __future__ import annotations

import dataclasses

import pytest
from _paths import REPO

from cluster.serve_llm import (
    APP,
    ServeLLMUnavailable,
    app_base_url,
    judges_with_serve_llm,
    llm_config_kwargs,
    serve_llm_status,
    start_judge_llm,
)
from ouro_ray.config import ConfigError, load_config
from ouro_ray.config.judges import JudgesConfig
from ouro_ray.config.serve_llm import ServeLLMConfig

GPU_YAML = REPO / "configs" / "gpu.yaml"


def _serve_llm(*overrides: str) -> ServeLLMConfig:
    return load_config(GPU_YAML, list(overrides)).judges.serve_llm


def test_the_config_maps_onto_llm_config_kwargs():
    kwargs = llm_config_kwargs(_serve_llm("judges.serve_llm.tensor_parallel_size=2",
                                          "judges.serve_llm.accelerator_type=H100"))
    assert kwargs["model_loading_config"] == {"model_id": "ouro-judge", "model_source": "/models/Qwen2.5-7B-Instruct"}
    assert kwargs["engine_kwargs"] == {"tensor_parallel_size": 2, "dtype": "bfloat16", "gpu_memory_utilization": 0.9,
                                       "max_model_len": 4096}
    assert kwargs["accelerator_type"] == "H100"
    # one GPU bundle per tensor-parallel rank, each carrying the judge nodes' resource; one node per engine
    assert kwargs["placement_group_config"] == {"bundle_per_worker": {"CPU": 1.0, "GPU": 1.0, "judge_node": 0.01},
                                                "strategy": "STRICT_PACK"}
    assert kwargs["deployment_config"] == {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 2, "initial_replicas": 1,
                               "target_ongoing_requests": 16.0},
        "max_ongoing_requests": 64}
    assert "accelerator_type" not in llm_config_kwargs(_serve_llm())  # null: any GPU


def test_rays_own_llm_config_accepts_the_kwargs():
    try:  # ray.serve.llm itself needs vLLM to import; its config model does not
        from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    except ImportError as exc:
        pytest.skip(f"Ray's LLMConfig model does not import here: {exc}")
    config = LLMConfig(**llm_config_kwargs(_serve_llm("judges.serve_llm.accelerator_type=A100-80G")))
    assert config.model_id == "ouro-judge"
    assert config.deployment_config["autoscaling_config"]["max_replicas"] == 2
    with pytest.raises(ValueError, match="H900"):
        LLMConfig(**llm_config_kwargs(_serve_llm("judges.serve_llm.accelerator_type=H900")))


def _importable():
    return None


def test_missing_ray_serve_llm_is_a_clear_error():
    def no_vllm():
        raise ImportError("Neither vLLM nor SGLang is installed.\nmore")

    ok, reason = serve_llm_status(_serve_llm(), {"GPU": 8.0}, importer=no_vllm)
    assert not ok
    assert reason.startswith("ray.serve.llm does not import (Neither vLLM nor SGLang is installed.)")
    assert "pip install -e '.[serve-llm]'" in reason


def test_missing_gpus_type_or_resource_is_a_clear_error():
    s = _serve_llm("judges.serve_llm.tensor_parallel_size=2")
    ok, reason = serve_llm_status(s, {"CPU": 16.0, "GPU": 1.0, "judge_node": 1.0}, importer=_importable)
    assert not ok and "1 GPU(s)" in reason and "tensor_parallel_size = 2" in reason
    s = _serve_llm("judges.serve_llm.accelerator_type=H100")
    ok, reason = serve_llm_status(s, {"GPU": 4.0, "accelerator_type:A10G": 1.0, "judge_node": 1.0}, importer=_importable)
    assert not ok and "'H100'" in reason and "A10G" in reason
    ok, reason = serve_llm_status(_serve_llm(), {"GPU": 4.0}, importer=_importable)
    assert not ok and "judge_node" in reason
    assert serve_llm_status(_serve_llm(), {"GPU": 4.0, "judge_node": 1.0}, importer=_importable) == (
        True, "4 GPU(s) on the cluster")


def test_enabled_without_the_package_fails_naming_it_and_auto_goes_without():
    cfg = load_config(GPU_YAML).judges
    try:
        import ray.serve.llm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray.serve.llm imports here: the missing-package path cannot be shown")
    with pytest.raises(ServeLLMUnavailable, match=r"judges.serve_llm.enabled = true, but ray.serve.llm does not import"):
        start_judge_llm(cfg, "127.0.0.1", 8000)
    said = []
    auto = dataclasses.replace(cfg, serve_llm=dataclasses.replace(cfg.serve_llm, enabled="auto"))
    assert start_judge_llm(auto, "127.0.0.1", 8000, say=said.append) == (auto, None)
    assert said[0].startswith("judges.serve_llm.enabled = auto: no Serve LLM judge (ray.serve.llm does not import")
    off = JudgesConfig()
    assert start_judge_llm(off, "127.0.0.1", 8000, say=said.append) == (off, None) and len(said) == 1


def test_the_http_judge_is_pointed_at_the_apps_route():
    cfg = load_config(GPU_YAML).judges
    url = app_base_url(cfg.serve_llm, "0.0.0.0", 8000, node_ip="10.0.0.5")
    assert url == "http://10.0.0.5:8000/ouro-judge-llm"  # judge replicas on other nodes reach the head's proxy
    assert app_base_url(cfg.serve_llm, "127.0.0.1", 8123, node_ip="10.0.0.5") == "http://127.0.0.1:8123/ouro-judge-llm"
    own = dataclasses.replace(cfg.serve_llm, base_url="http://judge.internal:9000/")
    assert app_base_url(own, "0.0.0.0", 8000, node_ip="10.0.0.5") == "http://judge.internal:9000"
    pointed = judges_with_serve_llm(cfg, url)
    assert (pointed.http.base_url, pointed.http.model, pointed.http.api) == (url, "ouro-judge", "completions")

    from actors.judge_worker import build_judges

    judges, _ = build_judges(dataclasses.replace(pointed, serve_llm=ServeLLMConfig()), None)
    assert [j.url for j in judges] == ["http://10.0.0.5:8000/ouro-judge-llm/v1/completions"]


@pytest.mark.parametrize("override, key", [
    ("judges.serve_llm.model=''", "judges.serve_llm.model"),
    ("judges.http.base_url=http://elsewhere:8000", "judges.serve_llm.enabled"),
    ("judges.serve_llm.enabled=1", "judges.serve_llm.enabled"),
    ("judges.serve_llm.min_replicas=3", "judges.serve_llm.min_replicas"),
    ("judges.serve_llm.route_prefix=judge", "judges.serve_llm.route_prefix"),
])
def test_bad_serve_llm_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(GPU_YAML, [override])
    assert f"{key}" in str(err.value) and "fix:" in str(err.value)


@pytest.mark.ray
def test_deployed_app_is_reached_by_the_http_judge_through_serve(serve_info, tiny_model_dir, monkeypatch):
    """The deploy → route → HTTP judge path on CPU: the project's OpenAI-compatible app stands in for Serve LLM's."""
    from _fake_http import item

    import cluster.serve_llm as serve_llm
    from actors.judge_worker import build_judges
    from ouro_ray.serving.app import build_app

    model_dir = tiny_model_dir
    monkeypatch.setattr(serve_llm, "serve_llm_status", lambda s: (True, "stand-in"))
    cfg = load_config(GPU_YAML, [f"judges.serve_llm.model={model_dir}", "judges.serve_llm.deploy_timeout_s=300"]).judges
    pointed, app = start_judge_llm(cfg, serve_info.host, serve_info.port,
                                   build_app=lambda s: build_app(s.model, model_name=s.model_id, num_cpus=0.25,
                                                                 truncate_prompts=True))
    try:
        assert pointed.http.base_url == f"{serve_info.base_url}/ouro-judge-llm"
        judges, _ = build_judges(dataclasses.replace(pointed, serve_llm=ServeLLMConfig()), None)
        scores = judges[0].score([item(1), item(2)])  # through Serve's proxy, at the app's route
        assert [s.candidate_id for s in scores] == ["c1", "c2"]
    finally:
        app.close()
    from ray import serve

    assert APP not in serve.status().applications


def test_judge_engines_on_gpus_with_ray_serve_llm(request):
    try:
        import ray.serve.llm  # noqa: F401
        import torch
    except ImportError as exc:
        pytest.skip(f"needs ray[llm] with vLLM and a CUDA GPU; here: {exc}")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU for the vLLM engines; this machine has none")
    from _fake_http import item

    from actors.judge_worker import build_judges
    from cluster import connect
    from cluster.serving import ensure_serve
    from ouro_ray.world_judge.choice import sibling_judge

    connect(namespace="ouro-test")
    # the tiny world's judge (a 512-token context holds the judge prompts), built only where this test runs
    judge_dir = sibling_judge(request.getfixturevalue("tiny_model_dir"))
    cfg = load_config(GPU_YAML, [f"judges.serve_llm.model={judge_dir}", "judges.serve_llm.resources={}",
                                 "judges.serve_llm.max_model_len=null", "judges.serve_llm.dtype=float32",
                                 "judges.serve_llm.gpu_memory_utilization=0.3"]).judges
    info = ensure_serve("127.0.0.1", 8000)
    pointed, app = start_judge_llm(cfg, info.host, info.port)
    try:
        judges, _ = build_judges(dataclasses.replace(pointed, serve_llm=ServeLLMConfig()), None)
        assert [s.candidate_id for s in judges[0].score([item(1)])] == ["c1"]
    finally:
        app.close()


@pytest.mark.parametrize("judges_fail", [False, True])
def test_the_run_deploys_the_app_before_the_judge_group_and_closes_it(monkeypatch, tmp_path, judges_fail):
    """build_roles (no Ray: the groups are stand-ins): the judge group gets the config pointed at the app, and the
    app is deleted with the roles, or when a later group fails to start."""
    import actors.judge
    import actors.learner_group
    import actors.reference
    import actors.rollout
    import actors.weights
    import cluster.serve_llm as serve_llm
    from ouro_ray.loop.roles import build_roles

    log: list[str] = []

    class App:
        def close(self):
            log.append("app closed")

    class Group:
        def __init__(self, name, *args, **kwargs):
            if name == "judges" and judges_fail:
                raise RuntimeError("judges could not start")
            self.name, self.version, self.cfg = name, 0, args[0] if args else None
            log.append(f"{name} started")

        def close(self):
            log.append(f"{self.name} closed")

    for module, cls, name in ((actors.rollout, "RolloutGroup", "rollout"), (actors.reference, "ReferenceGroup",
                                                                             "reference"),
                              (actors.learner_group, "LearnerGroup", "learner"), (actors.judge, "JudgeGroup", "judges")):
        monkeypatch.setattr(module, cls, lambda *a, _n=name, **k: Group(_n, *a, **k))
    monkeypatch.setattr(actors.weights, "start_weight_store", lambda *a, **k: "store")
    monkeypatch.setattr("ouro_ray.loop.roles.await_version", lambda *a, **k: None)

    def deploy(cfg, host, port, say):
        log.append(f"app deployed ({host}:{port})")
        return judges_with_serve_llm(cfg, f"http://10.0.0.5:{port}{cfg.serve_llm.route_prefix}"), App()

    monkeypatch.setattr(serve_llm, "start_judge_llm", deploy)
    cfg = load_config(GPU_YAML, ["learner.num_workers=0", "rollout.workers.num_workers=0", "reward_model.refit_every=0",
                                 "cluster.address=null"])
    if judges_fail:
        with pytest.raises(RuntimeError, match="judges could not start"):
            build_roles(cfg, "model", tmp_path, 0, lambda m: None)
        assert log[-1] == "app closed" and "app deployed (0.0.0.0:8000)" in log
        return
    roles = build_roles(cfg, "model", tmp_path, 0, lambda m: None)
    assert log.index("app deployed (0.0.0.0:8000)") < log.index("judges started")
    assert roles.judges.cfg.http.base_url == "http://10.0.0.5:8000/ouro-judge-llm"
    roles.close()
    assert log.index("judges closed") < log.index("app closed")


def test_ouro_eval_deploys_the_app_before_its_judge_group_and_closes_it(monkeypatch, tmp_path):
    """`ouro eval` (no Ray: the cluster, prompts, judge group and evaluation are stand-ins): the judge group gets
    the config pointed at the Serve LLM app, and the app is deleted after the judges, as in `ouro run`."""
    import argparse

    import actors.judge
    import cluster.serve_llm as serve_llm
    import ouro_ray.eval.report as report
    from ouro_ray.cli import eval as cli_eval

    log: list[str] = []

    class App:
        def close(self):
            log.append("app closed")

    class Judges:
        def __init__(self, cfg, **kwargs):
            self.cfg = cfg
            log.append(f"judges started ({cfg.http.base_url})")

        def close(self):
            log.append("judges closed")

    def deploy(cfg, host, port, say):
        log.append("app deployed")
        return judges_with_serve_llm(cfg, f"http://10.0.0.5:{port}{cfg.serve_llm.route_prefix}"), App()

    monkeypatch.setattr(serve_llm, "start_judge_llm", deploy)
    monkeypatch.setattr(actors.judge, "JudgeGroup", Judges)
    monkeypatch.setattr(cli_eval, "eval_judges", lambda cfg, policies, baseline: cfg.judges)
    monkeypatch.setattr(cli_eval, "_cluster", lambda cfg, say: None)
    monkeypatch.setattr(cli_eval, "eval_prompts", lambda args, cfg: ("prompts", "a test set"))
    monkeypatch.setattr(cli_eval, "evaluate", lambda *a: (log.append("evaluated") or {}, []))
    monkeypatch.setattr(report, "write_report", lambda *a: [])
    monkeypatch.setattr(cli_eval, "_print_summary", lambda *a: None)
    args = argparse.Namespace(config=str(GPU_YAML), args=[], out=str(tmp_path / "eval"), policy=["p"], baseline="b")
    assert cli_eval.main(args) == 0
    assert log == ["app deployed", "judges started (http://10.0.0.5:8000/ouro-judge-llm)", "evaluated",
                   "judges closed", "app closed"]
