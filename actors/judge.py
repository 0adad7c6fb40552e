"""The elastic judge group: a Ray Serve deployment of ``JudgeWorker`` replicas that autoscales.

Why Serve and not a home-made pool: Serve already does what an elastic judge group needs — it
counts ongoing requests per replica and adds or removes replicas within ``[min_workers,
max_workers]`` (``autoscaling_config``), drains a replica before removing it (no request lost on
downscale), health-checks and replaces dead replicas, and routes each request to a replica with
room (power-of-two choices). New nodes for new replicas come from the Ray autoscaler, which acts on
the pending replicas' resource demands. What Serve does not do is resend a request whose replica
died mid-flight; this module does that, per chunk, so every item is scored exactly once in the
output: verdicts are collected by chunk index, a failed chunk is resent whole, and a chunk is never
accepted twice.

The batch is ``ray.put`` once; each request carries the boxed reference and a row range, and the
replica slices its zero-copy view. ``max_workers: 0`` runs one ``JudgeWorker`` in the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Sequence

import pyarrow as pa

from actors.group import role_error
from actors.judge_worker import JudgeOutput, JudgeWorker
from cluster import telemetry
from ouro_ray.config.judges import JudgesConfig
from ouro_ray.judges.protocol import Judge

log = logging.getLogger(__name__)


class ServedJudge(JudgeWorker):
    """A ``JudgeWorker`` as a Serve replica: named after its replica, reads row ranges of a shared batch."""

    def __init__(self, cfg: JudgesConfig, model_dir: str | None = None, judges: Sequence[Judge] | None = None):
        from ray import serve

        replica = serve.get_replica_context().replica_id.unique_id
        super().__init__(cfg, model_dir, judges, name=f"judge/{replica}")

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def score_rows(self, box: list[Any], start: int, stop: int) -> JudgeOutput:
        import ray

        table = ray.get(box[0], timeout=self.cfg.call_timeout_s)
        return self.score(table.slice(start, stop - start))


def autoscaling(cfg: JudgesConfig, min_workers: int | None = None, max_workers: int | None = None) -> dict[str, Any]:
    """Serve's ``autoscaling_config`` from the judges config (optionally resized)."""
    return {
        "min_replicas": cfg.min_workers if min_workers is None else min_workers,
        "max_replicas": cfg.max_workers if max_workers is None else max_workers,
        "initial_replicas": max(1, cfg.min_workers if min_workers is None else min_workers),
        "target_ongoing_requests": cfg.target_ongoing_requests,
        "upscale_delay_s": cfg.upscale_delay_s,
        "downscale_delay_s": cfg.downscale_delay_s,
        "metrics_interval_s": cfg.metrics_interval_s,
        "look_back_period_s": cfg.look_back_period_s,
    }


def _retryable(exc: BaseException) -> bool:
    import ray.exceptions as rex

    return isinstance(exc, (rex.RayActorError, rex.ActorUnavailableError))


class JudgeGroup:
    """Judge items in, verdicts and pairs out; replicas grow and shrink with load (or by :meth:`resize`)."""

    def __init__(self, cfg: JudgesConfig, *, model_dir: str | None = None, judges: Sequence[Judge] | None = None,
                 prefix: str = "ouro", serve_host: str = "127.0.0.1", serve_port: int = 8000):
        """``serve_host``/``serve_port``: where Serve's proxy listens if this group starts Serve
        (``cluster.serve_host``/``cluster.serve_port``); a running Serve is joined as it is."""
        self.cfg, self.app, self._serve_at = cfg, f"{prefix}-judges", (serve_host, serve_port)
        self._args = (cfg, model_dir, list(judges) if judges is not None else None)
        self.resubmitted = 0
        if cfg.max_workers == 0:
            self._local: JudgeWorker | None = JudgeWorker(*self._args)
            self._local_lock = threading.Lock()  # one batch at a time, as a replica runs them
            self._handle = None
            return
        self._local = None
        self._deploy(autoscaling(cfg))

    def _deploy(self, scaling: dict[str, Any]) -> None:
        from ray import serve

        from cluster.serving import ensure_serve

        ensure_serve(*self._serve_at)
        per_replica = max(1, int(round(self.cfg.target_ongoing_requests * 2)))
        app = serve.deployment(ServedJudge).options(
            name="judge", autoscaling_config=scaling, max_ongoing_requests=per_replica,
            ray_actor_options={"num_cpus": self.cfg.num_cpus, "num_gpus": self.cfg.num_gpus,
                               "resources": dict(self.cfg.resources)},
        ).bind(*self._args)
        self._handle = serve.run(app, name=self.app, route_prefix=None)

    def resize(self, min_workers: int, max_workers: int) -> None:
        """New bounds for the replica count while requests keep flowing.

        Serve applies a Python-API redeploy as a rolling update: new replicas start, old ones drain
        their ongoing requests and stop, queued requests go to whichever replica is up. Nothing is
        lost; the replicas are new processes. Autoscaling within the bounds changes the count in place.
        """
        if self._handle is None:
            raise RuntimeError("an in-process judge group (judges.max_workers = 0) cannot be resized")
        if not 0 <= min_workers <= max_workers or max_workers < 1:
            raise ValueError(f"resize({min_workers}, {max_workers}): need 0 <= min <= max and max >= 1")
        self._deploy(autoscaling(self.cfg, min_workers, max_workers))

    def replicas(self, starting: bool = False) -> int:
        """Replicas running now (0 in process); with ``starting``, also those Serve is bringing up."""
        if self._handle is None:
            return 0
        from ray import serve

        states = serve.status().applications[self.app].deployments["judge"].replica_states
        return int(states.get("RUNNING", 0)) + (int(states.get("STARTING", 0)) if starting else 0)

    def nodes(self, samples: int = 8) -> set[str]:
        """Node ids the replicas answered from (``samples`` calls; 'local' in process)."""
        if self._handle is None:
            return {"local"}
        return {self._handle.node.remote().result(timeout_s=self.cfg.call_timeout_s) for _ in range(samples)}

    def score(self, items: pa.Table) -> JudgeOutput:
        """Verdicts for every row of ``items`` (a ``judge_items`` table), each exactly once, in row order."""
        if self._local is not None:
            try:
                with self._local_lock:
                    return self._local.score(items)
            except Exception as exc:
                raise role_error(exc, "judge", self._local.name, "score")
        import ray

        size = self.cfg.chunk_size
        bounds = [(s, min(s + size, items.num_rows)) for s in range(0, items.num_rows, size)]
        box = [ray.put(items)]
        pending = {k: self._submit(box, b) for k, b in enumerate(bounds)}
        results: dict[int, JudgeOutput] = {}
        attempts = {k: 0 for k in pending}
        deadline = time.monotonic() + self.cfg.call_timeout_s
        while pending:
            telemetry.record("ouro_judge_queue_depth", len(pending), app=self.app)
            k = min(pending)
            results[k] = self._collect(k, pending, attempts, box, bounds[k], deadline)
        telemetry.record("ouro_judge_queue_depth", 0, app=self.app)
        telemetry.record("ouro_judge_items_total", items.num_rows, app=self.app)
        return JudgeOutput.merge([results[k] for k in range(len(bounds))])

    def _submit(self, box: list[Any], bound: tuple[int, int]):
        return self._handle.score_rows.remote(box, *bound)

    def _collect(self, k, pending, attempts, box, bound, deadline) -> JudgeOutput:
        """Chunk k's verdicts; resent (up to ``max_retries``) when its replica died."""
        while True:
            try:
                out = pending[k].result(timeout_s=max(0.0, deadline - time.monotonic()))
                del pending[k]
                return out
            except TimeoutError as exc:
                raise TimeoutError(f"judge group {self.app!r}: rows {bound[0]}..{bound[1]} got no verdict within "
                                   f"{self.cfg.call_timeout_s:g} s; fix: raise judges.call_timeout_s or "
                                   "judges.max_workers") from exc
            except Exception as exc:
                if not _retryable(exc) or attempts[k] >= self.cfg.max_retries:
                    raise role_error(exc, "judge", f"{self.app}/judge", f"score rows {bound[0]}..{bound[1]}") from exc
                attempts[k] += 1
                self.resubmitted += 1
                log.warning("judge replica died with rows %s..%s in flight; resending (attempt %d)", *bound, attempts[k])
                pending[k] = self._submit(box, bound)

    def complete(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy completions of ``prompts`` by the replicas' LLM judge (stage 2's AI summariser), in order."""
        return self._fan_out("complete", list(prompts), max_new_tokens)

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]:
        """P(first is better) per row pair of two ``judge_items`` tables (the evaluator's pairwise judge)."""
        if self._local is not None:
            return self._call_local("prefer", first, second)
        size = self.cfg.chunk_size
        bounds = [(s, min(s + size, first.num_rows)) for s in range(0, first.num_rows, size)]
        pending = [self._handle.prefer.remote(first.slice(a, b - a), second.slice(a, b - a)) for a, b in bounds]
        return [p for part in self._results(pending, "prefer") for p in part]

    def contradicts(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether each pair of answers contradicts itself, by the replicas' LLM judge."""
        return self._fan_out("contradicts", list(pairs))

    def pairwise_judges(self) -> list[str]:
        if self._local is not None:
            return self._call_local("pairwise_judges")
        return self._handle.pairwise_judges.remote().result(timeout_s=self.cfg.call_timeout_s)

    def _call_local(self, method: str, *args: Any) -> Any:
        try:
            with self._local_lock:
                return getattr(self._local, method)(*args)
        except Exception as exc:
            raise role_error(exc, "judge", self._local.name, method)

    def _fan_out(self, method: str, rows: list, *args: Any) -> list:
        """``method(chunk, *args)`` over ``judges.chunk_size`` chunks of ``rows`` on the replicas; results in order."""
        if self._local is not None:
            return self._call_local(method, rows, *args)
        size = self.cfg.chunk_size
        pending = [getattr(self._handle, method).remote(rows[s:s + size], *args) for s in range(0, len(rows), size)]
        return [x for part in self._results(pending, method) for x in part]

    def _results(self, pending: list, method: str) -> list:
        deadline = time.monotonic() + self.cfg.call_timeout_s
        out = []
        for k, response in enumerate(pending):
            try:
                out.append(response.result(timeout_s=max(0.0, deadline - time.monotonic())))
            except TimeoutError as exc:
                raise TimeoutError(f"judge group {self.app!r}: {method} chunk {k} got no answer within "
                                   f"{self.cfg.call_timeout_s:g} s; fix: raise judges.call_timeout_s") from exc
            except Exception as exc:
                raise role_error(exc, "judge", f"{self.app}/judge", f"{method} chunk {k}") from exc
        return out

    def close(self) -> None:
        """Delete the Serve application (its replicas stop)."""
        if self._handle is not None:
            from ray import serve

            serve.delete(self.app)
            self._handle = None


class JudgeWriter:
    """The judge group's LLM as a :class:`~ouro_ray.judges.constitution.Writer` (stage 2's AI summariser)."""

    def __init__(self, judges: JudgeGroup, max_new_tokens: int):
        self.judges, self.max_new_tokens = judges, max_new_tokens

    def complete(self, prompts: Sequence[str]) -> list[str]:
        return self.judges.complete(list(prompts), self.max_new_tokens)
