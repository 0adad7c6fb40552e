"""`ouro bench`: the harness's arithmetic, the registry, and one quick suite end to end (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import harness
from benchmarks.cli import SUITES, available, run_suites


def test_alternate_interleaves_and_ratio_stats_are_per_repetition():
    calls = []
    a, b = harness.alternate(lambda: calls.append("a") or 2.0, lambda: calls.append("b") or 4.0, reps=3, warmup=1)
    assert calls == ["a", "b"] * 4  # one warm-up pair, then a, b, a, b, a, b
    assert a == [2.0] * 3 and b == [4.0] * 3
    assert harness.ratio_stats([1.0, 3.0, 2.0], [1.0, 1.0, 2.0]) == {"median": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    with pytest.raises(ValueError, match="--reps"):
        harness.alternate(lambda: 1.0, lambda: 1.0, reps=0)


def test_every_offered_suite_has_its_name_and_a_run_function_and_unknown_ones_are_refused(tmp_path):
    import importlib

    assert {"loop-overhead", "demo", "data-plane", "weight-sync", "rollout", "learner"} <= set(available())
    for name, module in available().items():  # the --help list is what runs
        suite = importlib.import_module(module)
        assert suite.SUITE == name and callable(suite.run) and name in SUITES
    with pytest.raises(ValueError, match="unknown suite"):
        run_suites(["warp-drive"], tmp_path, quick=True, reps=1)


@pytest.mark.ray
def test_quick_data_plane_suite_writes_bench_json(ray_cluster, tmp_path):
    report = run_suites(["data-plane"], tmp_path, quick=True, reps=1, namespace="ouro-test")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["suites"].keys() == report["suites"].keys() == {"data-plane"}
    section = saved["suites"]["data-plane"]
    assert {"suite", "ratio_name", "ratio", "absolute", "params", "better", "seconds"} <= set(section)
    assert {"median", "min", "max", "n"} == set(section["ratio"]) and section["ratio"]["n"] == 1
    assert section["ratio"]["min"] <= section["ratio"]["median"] <= section["ratio"]["max"]
    assert saved["machine"]["cpus"] >= 1 and "gpu" in saved["machine"]
    assert (tmp_path / "data-plane.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failing_suite_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch):
    import sys
    import types

    from benchmarks import cli

    broken = types.ModuleType("benchmarks._broken")
    broken.run = lambda ctx: (_ for _ in ()).throw(ImportError("no trl; fix: pip install -e .[bench]"))
    fine = types.ModuleType("benchmarks._fine")
    fine.run = lambda ctx: harness.section("fine", ratio_name="x", ratio=harness.ratio_stats([1.0], [2.0]),
                                           absolute={}, params={})
    broken.RAY = fine.RAY = False  # neither needs the cluster
    monkeypatch.setitem(sys.modules, "benchmarks._broken", broken)
    monkeypatch.setitem(sys.modules, "benchmarks._fine", fine)
    monkeypatch.setattr(cli, "available", lambda: {"broken": "benchmarks._broken", "fine": "benchmarks._fine"})
    report = cli.run_suites(["broken", "fine"], tmp_path, quick=True, reps=1)
    assert report["suites"]["broken"]["error"].startswith("ImportError: no trl")
    assert report["suites"]["fine"]["ratio"]["median"] == 0.5
    assert (tmp_path / "fine.png").is_file() and not (tmp_path / "broken.png").exists()


def test_ray_suites_share_one_cluster_and_a_suite_without_ray_gets_the_machine(tmp_path, monkeypatch):
    import contextlib
    import sys
    import types

    from benchmarks import cli

    events = []

    @contextlib.contextmanager
    def fake_cluster(ctx):
        events.append("open")
        yield None
        events.append("close")

    def suite(name: str, ray: bool):
        module = types.ModuleType(f"benchmarks._{name}")
        module.RAY = ray
        module.run = lambda ctx: events.append(name) or harness.section(
            name, ratio_name="x", ratio=harness.ratio_stats([1.0], [1.0]), absolute={}, params={})
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return module.__name__

    names = {"a": suite("a", True), "b": suite("b", True), "solo": suite("solo", False), "c": suite("c", True)}
    monkeypatch.setattr(harness, "ray_cluster", fake_cluster)
    monkeypatch.setattr(cli, "available", lambda: names)
    cli.run_suites(["a", "b", "solo", "c"], tmp_path, quick=True, reps=1)
    assert events == ["open", "a", "b", "close", "solo", "open", "c", "close"]


def test_bad_reps_and_latencies_are_refused_before_any_suite_runs(tmp_path, monkeypatch):
    from benchmarks import cli

    monkeypatch.setattr(cli, "available", lambda: {"data-plane": "benchmarks.data_plane"})
    for kwargs, flag in (({"reps": 0}, "--reps"), ({"reps": 1, "judge_latency_s": -0.1}, "--judge-latency"),
                         ({"reps": 1, "async_latency_s": float("nan")}, "--async-latency")):
        with pytest.raises(ValueError, match=flag):
            run_suites(["data-plane"], tmp_path, quick=True, **kwargs)
    assert not (tmp_path / "bench.json").exists()


def test_cli_flags_reach_the_suites(monkeypatch, tmp_path):
    import argparse

    from benchmarks import cli

    seen = {}
    monkeypatch.setattr(cli, "run_suites", lambda names, out, quick, reps, **kw: seen.update(kw, names=names) or
                        {"suites": {}})
    parser = argparse.ArgumentParser()
    cli.add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "judge-scaling", "--judge-latency", "0.01", "--async-latency", "0.5",
                              "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert seen["judge_latency_s"] == 0.01 and seen["async_latency_s"] == 0.5 and seen["names"] == ["judge-scaling"]


def test_each_suite_gets_its_default_repetitions_and_its_cap(tmp_path, monkeypatch):
    import sys
    import types

    from benchmarks import cli

    seen = {}

    def suite(name: str, **attrs):
        module = types.ModuleType(f"benchmarks._{name}")
        module.RAY = False
        vars(module).update(attrs)
        module.run = lambda ctx: seen.update({name: ctx.reps}) or harness.section(
            name, ratio_name="x", ratio=harness.ratio_stats([1.0], [1.0]), absolute={}, params={})
        monkeypatch.setitem(sys.modules, module.__name__, module)
        return module.__name__

    names = {"plain": suite("plain"), "long": suite("long", FULL_REPS=5), "capped": suite("capped", MAX_REPS=2),
             "once": suite("once", QUICK_REPS=1, FULL_REPS=1)}
    monkeypatch.setattr(cli, "available", lambda: names)
    cli.run_suites(list(names), tmp_path, quick=False, reps=None)
    assert seen == {"plain": 3, "long": 5, "capped": 2, "once": 1}
    cli.run_suites(list(names), tmp_path, quick=True, reps=None)
    assert seen == {"plain": 2, "long": 2, "capped": 2, "once": 1}
    cli.run_suites(list(names), tmp_path, quick=True, reps=4)
    assert seen == {"plain": 4, "long": 4, "capped": 2, "once": 4}


def test_soak_growth_is_measured_from_the_end_of_round_1_by_hand(tmp_path):
    from benchmarks.soak import growth, plot

    mib = 2**20
    result = {"samples": [{"t": 0.0, "rss": {"python": 100 * mib}},
                          {"t": 5.0, "rss": {"python": 300 * mib, "ray::RolloutWorker": 100 * mib}},  # round 1 ends
                          {"t": 9.0, "rss": {"python": 320 * mib, "ray::RolloutWorker": 120 * mib}},  # round 2 ends
                          {"t": 10.0, "rss": {"python": 90 * mib}}],  # the run shutting down: not the soak
              "round_ends": {"0": 1.0, "1": 5.5, "2": 9.5}, "seconds": 10.0}
    g = growth(result)
    # 400 MiB at the end of round 1, 440 MiB at the end: a growth of 10 %
    assert g["after_round_mib"] == 400 and g["end_mib"] == 440 and g["ratio"] == pytest.approx(1.10)
    assert g["per_process"]["ray::RolloutWorker"] == {"after_round_mib": 100, "end_mib": 120}
    plot(result, tmp_path / "soak.png")
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text('{"round": -1, "stage": "evaluate", "start": 100.0, "end": 101.0}\n'
                        '{"round": 0, "stage": "dialogue", "start": 101.0, "end": 102.0}\n'
                        '{"round": 0, "stage": "evaluate", "start": 102.0, "end": 104.5}\n')
    from benchmarks.soak import round_ends

    assert round_ends(timeline, start=100.0) == {0: 1.0, 1: 4.5}  # round 1 of metrics.json: training round 0
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"


def test_a_suite_without_its_extra_is_refused_up_front_naming_the_extra(tmp_path, monkeypatch):
    import importlib.util

    from benchmarks import cli

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real_find_spec(name, *a))
    with pytest.raises(ValueError) as refused:
        run_suites(["data-plane", "learner"], tmp_path / "out", quick=True, reps=1)
    assert str(refused.value) == ("suite learner needs trl, which is not installed; fix: pip install -e '.[bench]' "
                                  "(or make bench); or run the others: ouro bench data-plane")
    assert not (tmp_path / "out").exists()  # nothing ran
    assert cli.missing_extras(["data-plane", "rollout"]) == []
