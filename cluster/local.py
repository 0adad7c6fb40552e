"""Start a local Ray cluster or join an existing one, from the config's cluster values.

One entry point for the CLI, the loop and the test suite's session fixture, so a run, a test and a
cluster job reach Ray the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class ClusterInfo:
    """What a run needs to know about the cluster it is on."""

    address: str
    started_here: bool
    namespace: str
    dashboard_url: str | None
    resources: Mapping[str, float] = field(default_factory=dict)
    token_auth: bool = False
    """Ray's token authentication is on (``RAY_AUTH_MODE=token``: Ray 2.60's default for a local cluster)."""

    def describe(self) -> str:
        how = "started a local Ray cluster" if self.started_here else "joined the Ray cluster"
        res = ", ".join(
            f"{k}={v / 2**30:.1f} GiB" if k == "memory" else f"{k}={v:g}"
            for k, v in sorted(self.resources.items()) if k in ("CPU", "GPU", "memory")
        )
        dash = f"; dashboard {self.dashboard_url}" if self.dashboard_url else ""
        access = f"\n{dashboard_access(self.dashboard_url, self.address)}" if self.dashboard_url and self.token_auth else ""
        return f"{how} at {self.address} (namespace {self.namespace!r}; {res}){dash}{access}"


def dashboard_access(url: str, address: str) -> str:
    """How to open Ray's dashboard and reach the cluster with token authentication on: where the token is
    (Ray reads $RAY_AUTH_TOKEN, else the file $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        token, show = "the token in $RAY_AUTH_TOKEN", 'echo "$RAY_AUTH_TOKEN"'
    else:
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token"
        token, show = f"the token in {path}", f"cat {path}"
    return (f"Ray dashboard: open {url} and paste {token} when it asks (`{show}` or `ray get-auth-token` prints "
            f"it); the ray CLI needs RAY_AUTH_MODE=token (`RAY_AUTH_MODE=token ray status --address {address}`), an "
            "HTTP client the header `Authorization: Bearer TOKEN`")


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_mb: int | None = None,
    dashboard: bool = True,
    namespace: str = "ouro",
    env_vars: Mapping[str, str] | None = None,
    log_to_driver: bool = True,
) -> ClusterInfo:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local cluster; reuse one already up.

    ``num_cpus``/``num_gpus``/``object_store_mb``/``dashboard`` size a local cluster and are refused
    when joining one, since a running cluster's resources are not this process's to set.
    """
    import ray

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        if ctx.namespace != namespace:
            raise RuntimeError(
                f"Ray is already connected in namespace {ctx.namespace!r}, not {namespace!r}; "
                "fix: call ray.shutdown() first or use the same cluster.namespace"
            )
        return _info(started_here=False, namespace=namespace)
    target = address or os.environ.get("RAY_ADDRESS") or None
    # Ray Train's report() blocks until its controller polls (default every 2 s): poll every 0.1 s.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.1")
    # glibc gives every thread that allocates its own heap arena (up to 8 per core) and rarely returns their
    # memory: a judge replica answering from Serve's threads grew 677 -> 1330 MiB over a 30-round soak with the
    # default, and stayed at 620-720 MiB with 2 arenas (`ouro bench soak`). A local cluster's processes inherit
    # it from here; a joined cluster's workers get it through the job's runtime env.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    env_vars = {k: os.environ[k] for k in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "MALLOC_ARENA_MAX")} | dict(env_vars or {})
    runtime_env = {"env_vars": dict(env_vars)}
    if target:
        sized = {k: v for k, v in (("num_cpus", num_cpus), ("num_gpus", num_gpus),
                                   ("object_store_mb", object_store_mb)) if v is not None}
        if sized:
            raise ValueError(
                f"cluster.{next(iter(sized))} sizes a local cluster, but the run joins {target!r}; "
                "fix: remove it, or set cluster.address=null to start a local cluster"
            )
        token_from = _token_source(target)
        try:
            ray.init(address=target, namespace=namespace, runtime_env=runtime_env, log_to_driver=log_to_driver)
        except ConnectionError as e:
            raise ConnectionError(join_failure(target, token_from, e)) from e
        return _info(started_here=False, namespace=namespace)
    ray.init(
        address="local",  # a new instance: without it Ray attaches to the last `ray start` cluster on this machine
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        object_store_memory=object_store_mb * 2**20 if object_store_mb else None,
        include_dashboard=dashboard,
        namespace=namespace,
        runtime_env=runtime_env,
        log_to_driver=log_to_driver,
    )
    return _info(started_here=True, namespace=namespace)


def _token_source(target: str) -> str | None:
    """Where the token sent to ``target`` comes from (None: none found, or ``RAY_AUTH_MODE`` says not to send one).

    Ray 2.60 sends the token only in token mode, and turns that on by itself only for a cluster it finds
    (``address=auto``), never for an address it is given: a run joining a head by its address (token
    authentication on, Ray's default) was refused. As ``ray start --address`` does, a token that is there turns
    token mode on for this process and what it starts, unless ``RAY_AUTH_MODE`` is set."""
    from cluster.jobs import find_token

    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        return None
    found = find_token()
    if found is not None and mode is None and target != "auto":
        _enable_token_mode()
    return found.source if found is not None else None


def _enable_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process and what it starts, and Ray's config, read when ``ray`` was
    imported, read again (as Ray's own ``_enable_token_auth`` does; without it the mode stays 'disabled')."""
    from ray._raylet import Config

    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")


def join_failure(target: str, token: str | None, error: Exception) -> str:
    """Why joining ``target`` failed and the fix: a wrong address, or the cluster's token authentication."""
    from cluster.jobs import GET_TOKEN

    sent = (f"the token from {token} was sent and may not be this cluster's" if token else
            "no token was sent (none in $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, or "
            "RAY_AUTH_MODE is not token)")
    return (f"could not join the Ray cluster at {target} ({error}); {sent}. Fix: check the address (the head's "
            f"`ray start --head` prints it) and, as Ray 2.60 turns token authentication on by default, give this "
            f"process the cluster's token: {GET_TOKEN}")


def _info(*, started_here: bool, namespace: str) -> ClusterInfo:
    import ray

    ctx = ray.get_runtime_context()
    address = ctx.gcs_address
    url = ray.worker.get_dashboard_url() if hasattr(ray, "worker") else None
    resources: dict[str, Any] = dict(ray.cluster_resources())
    token_auth = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"  # ray.init sets it when it turns auth on
    return ClusterInfo(address, started_here, namespace, f"http://{url}" if url else None, resources, token_auth)


def shutdown() -> None:
    """Disconnect (and stop a cluster this process started)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
