"""Ray Serve on the cluster: started once, with its HTTP proxy where the config says.

Serve is one instance per Ray cluster, and its HTTP options are fixed by whoever starts it first. So
every part of ouro-ray that deploys on Serve (the elastic judge group, ``ouro serve``) goes through
:func:`ensure_serve`, which starts it with the given proxy address or joins the running instance and
reports the address that is really in use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeInfo:
    """Where Serve's HTTP proxy listens (``base_url`` is what OpenAI-compatible clients take)."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def _running_http_options():
    from ray.serve.context import _get_global_client

    try:
        client = _get_global_client(raise_if_no_controller_running=False)
    except Exception:  # no controller yet (older Ray raises instead of returning None)
        return None
    if client is None:
        return None
    return client.http_config


def ensure_serve(host: str = "127.0.0.1", port: int = 8000) -> ServeInfo:
    """Start Serve with its proxy on ``host:port``, or join the running Serve and report its proxy."""
    from ray import serve

    running = _running_http_options()
    if running is not None:
        if (running.host, running.port) != (host, port):
            log.info("Serve already runs with its proxy on %s:%s (asked for %s:%s); using it",
                     running.host, running.port, host, port)
        _warn_if_exposed(running.host, running.port)
        return ServeInfo(running.host, running.port)
    serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
    _warn_if_exposed(host, port)
    return ServeInfo(host, port)


def _warn_if_exposed(host: str, port: int) -> None:
    """Serve's proxy beyond loopback serves every app on the cluster over HTTP, the judge group's included
    (it has no key of its own; `ouro serve` asks for one)."""
    import ipaddress

    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        log.warning("Serve's proxy listens on %s:%s, beyond this machine: every Serve app on the cluster is reachable "
                    "there, the judge group's too (no key); keep cluster.serve_host=127.0.0.1 unless a firewall or "
                    "TLS proxy guards the port", host, port)
