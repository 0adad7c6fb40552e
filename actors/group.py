"""A group of actors of one role, or the role in-process: naming, resources, fan-out, errors.

Glue, not algorithm. The role class stays plain; this module applies ``ray.remote`` with the
resources from config, names each actor ``<prefix>/<role>/<i>`` for the dashboard, declares restarts
and retries, and fans calls out through :func:`actors.fanout.fan_out` (each slice within ``call_timeout_s``
of the one before; a row slice whose actor died for good is resent to the next actor; a failed call comes back as the original
exception with the role, actor and method attached as a note). ``num_workers == 0`` keeps one instance in the driver with the same
API, which is what the in-process vs. actor equivalence tests compare.

Tables go through the object store once: :meth:`ActorGroup.map_rows` ``ray.put``s a table and sends
every actor the reference plus a row range; the actor slices its zero-copy view.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import pyarrow as pa

from actors.fanout import chunks, fan_out, role_error
from ouro_ray.config.roles import RoleResources
from ouro_ray.seeding import derive_seed

log = logging.getLogger(__name__)


def _call_on_rows(self, method: str, table: pa.Table, start: int, stop: int, kwargs: dict) -> Any:
    return getattr(self, method)(table.slice(start, stop - start), **kwargs)


def _node_id(self) -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def _hosted(cls: type) -> type:
    """``cls`` plus glue methods: run a method on a row range of a shared table; report the node.

    A subclass keeps the role's own class name on the dashboard and in logs.
    """
    return type(cls.__name__, (cls,), {"ouro_rows": _call_on_rows, "ouro_node": _node_id, "__module__": cls.__module__})


class ActorGroup:
    """``resources.num_workers`` actors of ``cls`` (or one local instance when it is 0)."""

    def __init__(self, role: str, cls: type, resources: RoleResources, *args: Any, prefix: str = "ouro",
                 namespace: str | None = None, **kwargs: Any):
        self.role, self.resources = role, resources
        self.timeout_s = resources.call_timeout_s
        if resources.num_workers == 0:
            self.names = [f"{prefix}/{role}/local"]
            self._local = _hosted(cls)(*args, worker_index=0, **kwargs)
            self._local_lock = threading.Lock()  # one call at a time, as an actor runs them (async mode has two threads)
            self.actors: list[Any] = []
            return
        import ray

        remote_cls = ray.remote(_hosted(cls))
        self._local = None
        self.names = [f"{prefix}/{role}/{i}" for i in range(resources.num_workers)]
        self.actors = [
            remote_cls.options(
                name=name, namespace=namespace, num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                resources=dict(resources.resources), max_restarts=resources.max_restarts,
                max_task_retries=resources.max_task_retries,
            ).remote(*args, worker_index=i, **kwargs)
            for i, name in enumerate(self.names)
        ]

    @property
    def local(self) -> bool:
        return self._local is not None

    def __len__(self) -> int:
        return len(self.names)

    def __enter__(self) -> "ActorGroup":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Kill the group's actors (no restart); the local instance is simply dropped."""
        if self.actors:
            import ray

            for actor in self.actors:
                ray.kill(actor, no_restart=True)
        self.actors, self._local = [], None

    # ------------------------------------------------------------------ calls

    def call_all(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``method(*args, **kwargs)`` on every actor (or the local instance); results in actor order."""
        if self._local is not None:
            return [self._call_local(method, *args, **kwargs)]
        return self._fan_out(len(self.actors), lambda k, attempt: getattr(self.actors[k], method).remote(*args, **kwargs),
                             lambda k, attempt: self.names[k], method, max_retries=0)  # each actor's own call

    def _fan_out(self, n: int, submit, worker, method: str, max_retries: int) -> list[Any]:
        import ray

        def resent(k: int, attempt: int, exc: BaseException) -> None:
            log.warning("role %r: %s on %s failed with %s; sending it again (attempt %d) to %s", self.role, method,
                        worker(k, attempt - 1), type(exc).__name__, attempt + 1, worker(k, attempt))

        return fan_out(n, submit, lambda ref, timeout_s: ray.get(ref, timeout=timeout_s), role=self.role,
                       worker=worker, call=method, timeout_s=self.timeout_s,
                       timeout_key=f"{self.role}.workers.call_timeout_s", max_retries=max_retries, on_resend=resent)

    def _call_local(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._local_lock:
                return getattr(self._local, method)(*args, **kwargs)
        except Exception as exc:
            raise role_error(exc, self.role, self.names[0], method)

    def nodes(self) -> list[str]:
        """The Ray node id each actor runs on, in actor order ('local' in process)."""
        return self.call_all("ouro_node")

    def map_rows(self, method: str, table: pa.Table, *, seed: int | None = None,
                 merge: Callable[[list[Any]], Any] = pa.concat_tables, **kwargs: Any) -> Any:
        """``method(slice, **kwargs)`` over row slices of ``resources.batch_size``; results merged in row order.

        With ``seed``, slice k gets ``seed=derive_seed(seed, 'slice', k)``: the result depends on the
        seed and the batch size only, not on how many actors share the work.
        """
        bounds = chunks(table.num_rows, self.resources.batch_size)
        slice_kwargs = [kwargs | ({"seed": derive_seed(seed, "slice", k)} if seed is not None else {})
                        for k in range(len(bounds))]
        if self._local is not None:
            parts = [self._call_local("ouro_rows", method, table, a, b, kw) for (a, b), kw in zip(bounds, slice_kwargs)]
        else:
            import ray

            ref = ray.put(table)  # once; every actor reads the same shared-memory buffers
            n = len(self.actors)

            def submit(k: int, attempt: int):  # slice k on actor k mod n; a resend goes to the next one
                return self.actors[(k + attempt) % n].ouro_rows.remote(method, ref, *bounds[k], slice_kwargs[k])

            parts = self._fan_out(len(bounds), submit, lambda k, attempt: self.names[(k + attempt) % n], method,
                                  max_retries=n - 1)
        return merge(parts) if parts else merge([])
