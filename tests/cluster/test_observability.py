"""The Grafana dashboard charts exactly the metrics the project emits, under the names Ray exports them by;
`ouro run`'s cluster line says how to open Ray's dashboard when token authentication is on."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from _paths import REPO

from cluster import telemetry
from cluster.local import ClusterInfo

DASHBOARD = REPO / "cluster" / "grafana" / "ouro-dashboard.json"
QUERIED = re.compile(r"\bray_(ouro_[a-z0-9_]+)")


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _queried(dashboard: dict) -> set[str]:
    """The project's metrics (``telemetry`` names) the panels' PromQL reads."""
    return {name for panel in dashboard["panels"] for target in panel["targets"] for name in QUERIED.findall(target["expr"])}


def test_every_dashboard_query_reads_an_emitted_metric_and_every_metric_has_a_panel():
    assert _queried(_dashboard()) == set(telemetry._SPECS)


def test_every_panel_reads_one_metric_from_the_chosen_prometheus_and_session():
    dashboard = _dashboard()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource", "SessionName"]
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        (target,) = panel["targets"]
        assert len(set(QUERIED.findall(target["expr"]))) == 1, panel["title"]
        assert 'SessionName=~"$SessionName"' in target["expr"], panel["title"]
        name = QUERIED.search(target["expr"]).group(1)
        counter = telemetry._SPECS[name][0] == "Counter"
        assert ("rate(" in target["expr"]) == counter, f"{panel['title']}: a counter is charted as a rate, a gauge as is"
        assert name in panel["description"], panel["title"]


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


@pytest.mark.ray
def test_ray_exports_every_metric_under_the_name_the_dashboard_queries(ray_cluster):
    """Each metric recorded once, then read from this node's Prometheus endpoint (Ray exports every ~10 s)."""
    import ray

    for name, (_kind, _doc, tags) in telemetry._SPECS.items():
        assert telemetry.record(name, 1.0, **{tag: "observability-test" for tag in tags})
    port = ray._private.worker.global_worker.node.metrics_export_port
    want = {f"ray_{name}" for name in _queried(_dashboard())}
    deadline, found = time.monotonic() + 90, set()
    while time.monotonic() < deadline and found != want:
        text = _scrape(port)
        found = {m for m in want if re.search(rf"^{m}\{{[^}}]*observability-test", text, re.M)}
        time.sleep(2)
    assert found == want
    for name, (kind, _doc, _tags) in telemetry._SPECS.items():  # a Counter is a Prometheus counter, a Gauge a gauge
        assert f"# TYPE ray_{name} {kind.lower()}" in text


def test_the_cluster_line_says_how_to_open_the_dashboard_with_the_token(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    info = ClusterInfo("10.0.0.5:6379", True, "ouro", "http://127.0.0.1:8265", {"CPU": 2.0}, token_auth=True)
    line = info.describe()
    assert line.startswith("started a local Ray cluster at 10.0.0.5:6379") and "dashboard http://127.0.0.1:8265" in line
    assert "open http://127.0.0.1:8265 and paste the token in ~/.ray/auth_token" in line
    assert "RAY_AUTH_MODE=token ray status --address 10.0.0.5:6379" in line
    assert "Authorization: Bearer TOKEN" in line
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/etc/ray/token")
    assert "paste the token in /etc/ray/token" in info.describe()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token-value")
    assert "paste the token in $RAY_AUTH_TOKEN" in info.describe()
    assert "s3cr3t-token-value" not in info.describe()  # where the token is, never the token


def test_no_dashboard_or_no_token_auth_adds_no_line():
    bare = ClusterInfo("10.0.0.5:6379", True, "ouro", None, {}, token_auth=True)
    open_ = ClusterInfo("10.0.0.5:6379", True, "ouro", "http://127.0.0.1:8265", {}, token_auth=False)
    assert "\n" not in bare.describe() and "\n" not in open_.describe()
