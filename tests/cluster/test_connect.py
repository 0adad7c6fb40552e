"""Reaching Ray: a local cluster from config values, reuse of a live connection, refused sizing."""

from __future__ import annotations

import pytest

from cluster import connect


@pytest.mark.ray
def test_local_cluster_has_the_requested_cpus(ray_cluster) -> None:
    assert ray_cluster.resources["CPU"] == 2
    assert ray_cluster.namespace == "ouro-test"
    assert "started a local Ray cluster" in ray_cluster.describe()


@pytest.mark.ray
def test_second_connect_reuses_the_live_cluster(ray_cluster) -> None:
    again = connect(namespace="ouro-test")
    assert again.address == ray_cluster.address
    assert not again.started_here


@pytest.mark.ray
def test_connecting_in_another_namespace_is_refused(ray_cluster) -> None:
    with pytest.raises(RuntimeError, match="namespace 'ouro-test'"):
        connect(namespace="elsewhere")


def test_sizing_a_joined_cluster_is_refused(monkeypatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(ValueError, match="cluster.num_cpus sizes a local cluster"):
        connect("ray://example:10001", num_cpus=4)


@pytest.mark.parametrize("mode, has_token, sent", [
    (None, True, True),          # the case Ray leaves out: an address given, a token there, no mode set
    (None, False, False),
    ("token", True, True),
    ("disabled", True, False),   # the user's choice stands
])
def test_joining_by_address_sends_the_token_it_finds_unless_told_not_to(monkeypatch, tmp_path, mode, has_token,
                                                                         sent) -> None:
    import os

    import ray

    from cluster import local

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(var, raising=False)
    if mode is not None:
        monkeypatch.setenv("RAY_AUTH_MODE", mode)
    if has_token:
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("t0ken\n")
    seen = {}

    def refused(**kwargs):  # what Ray raises after ~20 s of "InvalidAuthToken" from a head it cannot join
        seen["mode"] = os.environ.get("RAY_AUTH_MODE")
        raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    # not Ray's config of this process, which the session's cluster shares (tests/cluster/test_submit.py joins a
    # real token cluster in a child process)
    monkeypatch.setattr(local, "_enable_token_mode", lambda: monkeypatch.setenv("RAY_AUTH_MODE", "token"))
    with pytest.raises(ConnectionError) as caught:
        connect("10.0.0.5:6379")
    message = str(caught.value)
    assert message.startswith("could not join the Ray cluster at 10.0.0.5:6379 (Failed to connect")
    assert "ray get-auth-token" in message and "check the address" in message
    assert (seen["mode"] == "token") == sent
    if sent:
        assert f"the token from {tmp_path / '.ray' / 'auth_token'} was sent" in message
    else:
        assert "no token was sent" in message
