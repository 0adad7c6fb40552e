"""``ouro serve`` holds under abuse: 100 concurrent clients, half of their requests malformed, against the app a
replica runs (uvicorn in a child process, behind an API key). A bigger run:
``python -m ouro_ray.serving.loadtest --model MODEL_DIR --requests 10000``."""

from __future__ import annotations

from ouro_ray.serving.limits import ServeLimits
from ouro_ray.serving.loadtest import RSS_GROWTH_BOUND_MIB, bad_probes, load_test


def test_every_good_request_is_answered_every_bad_one_refused_and_memory_stays_flat(tiny_model_dir) -> None:
    report = load_test(tiny_model_dir, requests=1000, clients=100, warmup=1000)
    print(report.summary())
    assert report.failure_count == 0, report.failures  # a wrong status, an invalid answer or a dropped connection
    assert (report.good, report.bad) == (500, 500)
    # Every malformed kind was sent, and each got only its own 4xx: never a 5xx, never a dropped connection (0).
    expected = {p.kind: p.expect for p in bad_probes(ServeLimits(max_waiting=100))}
    assert {kind: set(statuses) for kind, statuses in report.statuses.items() if kind in expected} == \
        {kind: {status} for kind, status in expected.items()}
    assert report.rss_growth_mib < RSS_GROWTH_BOUND_MIB, report.summary()
