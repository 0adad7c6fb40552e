"""The judge group in process and on Ray Serve: same verdicts, elastic resize, replica death, exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pyarrow as pa
import pytest
from _roles import rollout_cfg

from actors.judge import JudgeGroup, JudgeWriter
from actors.judge_worker import JudgeWorker
from actors.rollout import RolloutGroup
from ouro_ray.config.judges import JudgesConfig, LLMJudgeConfig
from ouro_ray.judges.items import judge_items


def slow_judge(delay_s: float):
    """A judge that takes ``delay_s`` per item and notes the process that scored it.

    Built inside a function so Ray pickles the class by value (workers cannot import test modules).
    """
    import os

    from ouro_ray.judges.protocol import JudgeScore

    class SlowJudge:
        name, rater = "slow", "rule"

        def score(self, items):
            time.sleep(delay_s * len(items))
            return [JudgeScore(i.prompt_id, i.candidate_id, "rule", "slow", {"x": 0.5}, 0.5, f"pid {os.getpid()}")
                    for i in items]

    return SlowJudge()


def synthetic_items(n: int) -> pa.Table:
    cands = pa.table({"prompt_id": [f"p{i}" for i in range(n)], "candidate_id": ["c0"] * n,
                      "text": [f"answer {i}." for i in range(n)]})
    prompts = pa.table({"prompt_id": [f"p{i}" for i in range(n)], "prompt": ["q?"] * n, "label": ["safe"] * n})
    return judge_items(cands, prompts)


def group_cfg(**kw) -> JudgesConfig:
    base = dict(rules=("safety",), llm=LLMJudgeConfig(enabled=False), num_cpus=0.1, chunk_size=2,
                upscale_delay_s=0.0, downscale_delay_s=600.0, call_timeout_s=120.0, metrics_interval_s=0.1,
                look_back_period_s=0.5)
    return JudgesConfig(**(base | kw))


def keys(out) -> Counter:
    t = out.scores
    return Counter(zip(t.column("prompt_id").to_pylist(), t.column("candidate_id").to_pylist(),
                       t.column("teacher").to_pylist()))


def test_judge_items_join_prompts_and_targets(prompts):
    cands = pa.table({"prompt_id": ["p1", "p0"], "candidate_id": ["c0", "c0"], "text": ["a", "b"]})
    items = judge_items(cands, prompts)
    assert items.column("prompt").to_pylist() == [prompts.column("prompt")[1].as_py(), prompts.column("prompt")[0].as_py()]
    assert [t["behavior"] for t in items.column("target").to_pylist()] == ["answer", "answer"]
    with pytest.raises(KeyError, match="p9"):
        judge_items(pa.table({"prompt_id": ["p9"], "candidate_id": ["c0"], "text": ["a"]}), prompts)


def test_worker_scores_every_candidate_with_every_teacher(tiny_model_dir, prompts):
    cands = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0).generate(prompts, seed=1)
    worker = JudgeWorker(JudgesConfig(max_workers=0), tiny_model_dir)
    out = worker.score(judge_items(cands, prompts))
    assert worker.teachers() == ["safety", "persona", "facts", "llm-judge"]
    assert out.scores.num_rows == cands.num_rows * 4
    assert set(keys(out).values()) == {1}
    rewards = out.scores.column("reward").to_pylist()
    assert all(-1.0 <= r <= 1.0 for r in rewards)


@pytest.mark.ray
def test_serve_group_gives_the_in_process_verdicts(serve_info, tiny_model_dir, prompts):
    cands = RolloutGroup(tiny_model_dir, rollout_cfg(num_workers=0), seed=0).generate(prompts, seed=1)
    items = judge_items(cands, prompts)
    cfg = JudgesConfig(llm=LLMJudgeConfig(batch_size=4), num_cpus=0.1, chunk_size=3, min_workers=2, max_workers=2)
    in_process = JudgeGroup(JudgesConfig(max_workers=0), model_dir=tiny_model_dir)
    local = in_process.score(items)
    asks = prompts.column("prompt").to_pylist() * 2  # 2 chunks of 3, and a rest
    group = JudgeGroup(cfg, model_dir=tiny_model_dir, prefix="t-same")
    try:
        served = group.score(items)
        assert group.replicas() == 2
        summaries = JudgeWriter(group, max_new_tokens=8).complete(asks)  # stage 2's AI summariser, on the replicas
        half = items.num_rows // 2  # the evaluator's pairwise verdicts and contradiction checks, on the replicas
        first, second = items.slice(0, half), items.slice(half, half)
        served_prefer = group.prefer(first, second)
        texts = items.column("candidate").to_pylist()
        served_contradicts = group.contradicts(list(zip(texts[:half], texts[half:])))
    finally:
        group.close()
    assert served_prefer == pytest.approx(in_process.prefer(first, second), abs=1e-5) and len(served_prefer) == half
    assert served_contradicts == in_process.contradicts(list(zip(texts[:half], texts[half:])))
    assert in_process.pairwise_judges() == ["llm-judge"]
    assert summaries == JudgeWriter(in_process, max_new_tokens=8).complete(asks)  # greedy: the same text, in order
    assert len(summaries) == len(asks)
    sort = [("teacher", "ascending"), ("prompt_id", "ascending"), ("candidate_id", "ascending")]
    a, b = local.scores.sort_by(sort), served.scores.sort_by(sort)
    assert a.column("reward").to_pylist() == pytest.approx(b.column("reward").to_pylist(), abs=1e-5)
    assert a.column("notes").to_pylist() == b.column("notes").to_pylist()


def _score_in_background(group: JudgeGroup, items: pa.Table) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run():
        try:
            box["out"] = group.score(items)
        except BaseException as exc:  # surfaced by the test below
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def _finish(thread: threading.Thread, box: dict):
    thread.join(timeout=120)
    if "error" in box:
        raise box["error"]
    return box["out"]


@pytest.mark.ray
def test_resized_mid_batch_every_item_is_scored_exactly_once(serve_info):
    items = synthetic_items(80)  # 8 s of work for one replica; a new replica starts in a few seconds
    group = JudgeGroup(group_cfg(min_workers=1, max_workers=1), judges=[slow_judge(0.1)], prefix="t-resize")
    try:
        thread, box = _score_in_background(group, items)
        time.sleep(0.5)
        group.resize(3, 3)  # grow while the batch is in flight
        out = _finish(thread, box)
        assert group.replicas() == 3
        thread, box = _score_in_background(group, items)
        time.sleep(0.5)
        group.resize(1, 1)  # and shrink while the next batch is in flight
        again = _finish(thread, box)
    finally:
        group.close()
    assert keys(out) == Counter({(f"p{i}", "c0", "slow"): 1 for i in range(80)})
    assert keys(again) == keys(out)


@pytest.mark.ray
def test_autoscaling_adds_replicas_under_load(serve_info):
    items = synthetic_items(120)  # 12 s of work for one replica
    cfg = group_cfg(min_workers=1, max_workers=3, target_ongoing_requests=1.0)
    group = JudgeGroup(cfg, judges=[slow_judge(0.1)], prefix="t-autoscale")
    try:
        thread, box = _score_in_background(group, items)
        seen = 1
        while thread.is_alive():  # Serve's own decision, read while the batch is in flight
            seen = max(seen, group.replicas(starting=True))
            time.sleep(0.2)
        out = _finish(thread, box)
    finally:
        group.close()
    assert keys(out) == Counter({(f"p{i}", "c0", "slow"): 1 for i in range(120)})
    assert seen >= 2  # Serve scaled out on queue depth


@pytest.mark.ray
def test_a_killed_replica_is_replaced_and_its_items_scored_once(serve_info):
    import ray

    items = synthetic_items(40)
    group = JudgeGroup(group_cfg(min_workers=2, max_workers=2), judges=[slow_judge(0.05)], prefix="t-kill")
    try:
        thread, box = _score_in_background(group, items)
        time.sleep(0.6)
        replicas = [a for a in ray.util.list_named_actors(all_namespaces=True)
                    if a["name"].startswith("SERVE_REPLICA::t-kill-judges#judge")]
        ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
        out = _finish(thread, box)
        # Serve's router or this group resent the dead replica's in-flight chunks …
        deadline = time.monotonic() + 60
        while group.replicas() < 2 and time.monotonic() < deadline:  # … and Serve replaced it
            time.sleep(0.5)
        assert group.replicas() == 2
        alive = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
        assert replicas[0]["name"] not in alive
    finally:
        group.close()
    assert keys(out) == Counter({(f"p{i}", "c0", "slow"): 1 for i in range(40)})  # none lost, none twice


class _FakeResponse:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error

    def result(self, timeout_s=None):
        if self.error is not None:
            raise self.error
        return self.value


class _FakeHandle:
    """A Serve handle whose first ``score_rows`` request dies with its replica, the rest answer."""

    def __init__(self, error):
        self.sent, self.error = [], error
        self.score_rows = self

    def remote(self, box, start, stop, revise=True):
        self.sent.append((start, stop))
        from actors.judge_worker import JudgeOutput

        if len(self.sent) == 1:
            return _FakeResponse(error=self.error)
        return _FakeResponse(value=JudgeOutput(pa.table({"row": list(range(start, stop))}), pa.table({})))


def _fake_group(handle, max_retries=2):
    group = JudgeGroup.__new__(JudgeGroup)
    group.cfg, group.app, group.resubmitted = group_cfg(max_retries=max_retries, chunk_size=2), "fake-judges", 0
    group._local, group._handle = None, handle
    return group


def test_a_chunk_whose_replica_died_is_resent_and_accepted_once(ray_cluster):
    import ray.exceptions as rex

    handle = _FakeHandle(rex.ActorDiedError())
    group = _fake_group(handle)
    out = group.score(pa.table({"x": list(range(5))}))
    assert out.scores.column("row").to_pylist() == [0, 1, 2, 3, 4]  # every row once, in order
    assert handle.sent == [(0, 2), (2, 4), (4, 5), (0, 2)] and group.resubmitted == 1
    handle = _FakeHandle(ValueError("bad item"))  # an application error is not resent
    with pytest.raises(ValueError, match="bad item") as err:
        _fake_group(handle).score(pa.table({"x": list(range(5))}))
    assert handle.sent == [(0, 2), (2, 4), (4, 5)]
    assert any("fake-judges" in n and "score rows 0..2" in n for n in err.value.__notes__)


def test_the_summariser_needs_an_llm_judge(tiny_model_dir):
    worker = JudgeWorker(JudgesConfig(max_workers=0, llm=LLMJudgeConfig(enabled=False)), tiny_model_dir)
    with pytest.raises(ValueError, match="judges.llm.enabled=true, or distill.use_ai=false"):
        worker.complete(["Summarise: hello"], 8)
