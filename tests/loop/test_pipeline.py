"""Async mode's glue: rounds made ahead only as far as the staleness bound allows; failures surface."""

from __future__ import annotations

import threading
import time

import pytest

from ouro_ray.loop.pipeline import Ahead, StageClock


class FakeLoop:
    """The main thread's side of async mode: take round r's experience, 'train' on it, mark it trained."""

    def __init__(self, staleness: int, first: int = 0):
        self.staleness = staleness
        self.updated_through = first - 1
        self.started: dict[int, int] = {}  # round -> updated_through when its experience started
        self.lock = threading.Lock()

    def produce(self, r: int) -> str:
        with self.lock:
            self.started[r] = self.updated_through
        time.sleep(0.01)
        return f"experience {r}"

    def may_start(self, r: int) -> bool:
        return self.updated_through >= r - 1 - self.staleness


@pytest.mark.parametrize("staleness", [1, 2])
def test_experience_starts_only_within_the_staleness_bound(staleness):
    loop = FakeLoop(staleness)
    with Ahead(loop.produce, 0, 6, loop.may_start) as ahead:
        for r in range(6):
            assert ahead.take(r) == f"experience {r}"
            time.sleep(0.05)  # the update: long enough for the thread to run ahead as far as allowed
            loop.updated_through = r
            ahead.poke()
    # round r's experience never started before round r-1-staleness had trained ...
    assert all(loop.started[r] >= r - 1 - staleness for r in range(6))
    # ... and it did run ahead: round r started while round r-1 was still training (no lock-step)
    assert any(loop.started[r] < r - 1 for r in range(1, 6))


def test_a_resumed_pipeline_starts_at_the_first_unfinished_round():
    loop = FakeLoop(1, first=3)
    with Ahead(loop.produce, 3, 5, loop.may_start) as ahead:
        assert ahead.take(3) == "experience 3"
        with pytest.raises(ValueError, match="round 2 is not one this pipeline makes"):
            ahead.take(2)
    assert set(loop.started) <= {3, 4}


def test_a_failure_ahead_is_raised_in_the_main_thread_with_its_round():
    def produce(r):
        if r == 1:
            raise RuntimeError("judge endpoint down")
        return r

    with Ahead(produce, 0, 3, lambda r: True) as ahead:
        assert ahead.take(0) == 0
        with pytest.raises(RuntimeError, match="judge endpoint down") as info:
            ahead.take(1)
    assert "round 1's experience" in "".join(info.value.__notes__)


def test_close_stops_before_the_next_round():
    started = []
    gate = threading.Event()

    def produce(r):
        started.append(r)
        return r

    ahead = Ahead(produce, 0, 10, lambda r: r == 0 or gate.is_set())
    with ahead:
        assert ahead.take(0) == 0
    gate.set()
    ahead.poke()
    time.sleep(0.05)
    assert started == [0]  # closed while round 1 waited at the gate: it never started


def test_stage_clock_keeps_rounds_and_lanes_apart():
    clock = StageClock()
    clock.start("regenerate", 1, "ahead")
    time.sleep(0.02)
    clock.stop()

    def main_lane():
        clock.start("update", 0, "main")
        time.sleep(0.03)
        clock.start("evaluate", 0, "main")  # ends update
        clock.stop()

    thread = threading.Thread(target=main_lane)
    thread.start()
    thread.join()
    clock.add(0, "wait_experience", 0.5)
    seconds, rows = clock.take(0)
    assert set(seconds) == {"seconds_update", "seconds_evaluate", "seconds_wait_experience"}
    assert seconds["seconds_update"] == pytest.approx(0.03, abs=0.02)
    assert seconds["seconds_wait_experience"] == 0.5
    assert [(r["lane"], r["stage"]) for r in rows] == [("main", "update"), ("main", "evaluate"),
                                                       ("main", "wait_experience")]
    assert rows[0]["end"] <= rows[1]["start"] + 1e-3
    seconds1, rows1 = clock.take(1)
    assert list(seconds1) == ["seconds_regenerate"] and rows1[0]["lane"] == "ahead"
    assert clock.take(0) == ({}, [])  # taken once


def test_loop_mode_config_is_checked_up_front():
    from ouro_ray.config import ConfigError, load_config

    assert load_config(None, ["loop.mode=async", "loop.max_staleness=2"]).loop.max_staleness == 2
    with pytest.raises(ConfigError, match="loop.max_staleness = 2 bounds async mode only"):
        load_config(None, ["loop.max_staleness=2"])  # sync mode: the bound would do nothing
    with pytest.raises(ConfigError, match="loop.max_staleness"):
        load_config(None, ["loop.mode=async", "loop.max_staleness=0"])  # 0 is sync mode: say loop.mode=sync
    with pytest.raises(ConfigError, match="'sync' | 'async'"):
        load_config(None, ["loop.mode=pipelined"])


def test_the_ai_summariser_needs_the_judge_groups_llm_when_stage_2_runs():
    from ouro_ray.config import ConfigError, load_config
    from ouro_ray.loop.run import check_run_config

    with pytest.raises(ConfigError, match="judges.llm.enabled=true, or distill.use_ai=false"):
        check_run_config(load_config(None, ["distill.use_ai=true", "judges.llm.enabled=false"]))
    check_run_config(load_config(None, ["distill.use_ai=true", "judges.llm.enabled=false",
                                        "data.prompts=data/examples/behavior_prompts.jsonl"]))  # stage 2 skipped
    check_run_config(load_config(None, ["distill.use_ai=false", "judges.llm.enabled=false"]))
