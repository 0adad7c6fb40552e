"""Serve's proxy beyond loopback exposes every app on the cluster: ensure_serve says so."""

from __future__ import annotations

import logging

from cluster.serving import _warn_if_exposed


def test_a_proxy_beyond_loopback_is_warned_about_and_loopback_is_not(caplog):
    with caplog.at_level(logging.WARNING, logger="cluster.serving"):
        _warn_if_exposed("127.0.0.1", 8000)
        _warn_if_exposed("localhost", 8000)
        _warn_if_exposed("::1", 8000)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="cluster.serving"):
        _warn_if_exposed("0.0.0.0", 8000)
    assert "listens on 0.0.0.0:8000, beyond this machine" in caplog.text and "judge group" in caplog.text
