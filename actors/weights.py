"""The versioned weight store: the learner publishes, rollout and reward workers pull.

``WeightStore`` is a plain class; as an actor it is named ``<prefix>/weights``. The store actor
``ray.put``s each payload it receives, so the object is *owned by the store*: a published version
outlives a learner that restarts, and a worker that restarts finds the latest version before it takes
work. (Ray 2.56 removed ``ray.put(..., _owner=…)``, which would have saved the one extra copy.)
The store keeps only the latest version; older objects are freed by Ray's reference
counting once no worker holds them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ouro_ray.weights import WeightPayload, pack_weights


class WeightStore:
    """The latest published policy version: ``(version, payload)`` or a boxed object reference."""

    def __init__(self) -> None:
        self._latest: tuple[int, list[Any]] | None = None
        """(version, box), replaced whole: a reader on another thread never sees a mixed pair."""

    def publish(self, version: int, payload: WeightPayload) -> int:
        """Record ``version``; inside an actor the payload is put into the object store, owned here."""
        if version < self.version():
            raise ValueError(f"version {version} published after {self.version()}: versions must not go back; "
                             "fix: publish with the learner's update count")
        # The same version again is a restarted learner republishing what it holds: keep the newer copy.
        self._latest = (version, [_own(payload)])
        return version

    def latest(self) -> tuple[int, list[Any]] | None:
        """``(version, box)`` of the newest version, or None before the first publish."""
        return self._latest  # the ref is boxed in a list: Ray passes it on unresolved

    def version(self) -> int:
        latest = self._latest
        return -1 if latest is None else latest[0]


def _own(payload: WeightPayload) -> Any:
    """The payload itself in process; an object reference owned by this actor inside Ray."""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
        return ray.put(payload)
    return payload


def _is_actor(store: Any) -> bool:
    return not isinstance(store, WeightStore)


def publish_weights(store: Any, model: torch.nn.Module, version: int, timeout_s: float = 120.0) -> WeightPayload:
    """Pack ``model`` as ``version`` and publish it to ``store`` (a ``WeightStore`` or its actor handle)."""
    payload = pack_weights(model, version)
    if not _is_actor(store):
        store.publish(version, payload)
        return payload
    import ray

    ray.get(store.publish.remote(version, payload), timeout=timeout_s)
    return payload


class WeightClient:
    """A worker's view of the store: has a newer version appeared, and fetch it (zero-copy)."""

    def __init__(self, store: Any, timeout_s: float = 120.0):
        self.store, self.timeout_s = store, timeout_s

    def newer_than(self, version: int) -> WeightPayload | None:
        """The latest payload if its version is above ``version``, else None."""
        if not _is_actor(self.store):
            latest = self.store.latest()
            return latest[1][0] if latest and latest[0] > version else None
        import ray

        latest = ray.get(self.store.latest.remote(), timeout=self.timeout_s)
        if latest is None or latest[0] <= version:
            return None
        return ray.get(latest[1][0], timeout=self.timeout_s)


def start_weight_store(prefix: str = "ouro", namespace: str | None = None, local: bool = False) -> Any:
    """A ``WeightStore`` in process (``local``) or as the named actor ``<prefix>/weights``."""
    if local:
        return WeightStore()
    import ray

    # Restarted when it dies (empty: the learner publishes again, `LearnerGroup.republish_if_lost`); a call in
    # flight is retried on the restarted store (every method is safe to repeat) rather than failing its caller.
    return ray.remote(WeightStore).options(
        name=f"{prefix}/weights", namespace=namespace, num_cpus=0, max_restarts=-1, max_task_retries=-1,
        get_if_exists=True,
    ).remote()


class WeightFollower:
    """A worker's versioned weights: takes payloads (pushed, or pulled from the store) and tracks the version."""

    def __init__(self, store: Any, apply: Callable[[WeightPayload], Any]):
        self.client = WeightClient(store) if store is not None else None
        self.apply = apply
        self.version = 0

    def take(self, payload: WeightPayload) -> int:
        """Apply ``payload`` and hold its version."""
        self.apply(payload)
        self.version = payload.version
        return self.version

    def sync(self) -> int:
        """Take the newest published version if it is newer than the one held; the version now held."""
        payload = self.client.newer_than(self.version) if self.client else None
        return self.take(payload) if payload is not None else self.version
