"""The elastic judge group: a Ray Serve deployment of ``JudgeWorker`` replicas that autoscales.

Why Serve and not a home-made pool: Serve already does what an elastic judge group needs — it
counts ongoing requests per replica and adds or removes replicas within ``[min_workers,
max_workers]`` (``autoscaling_config``), drains a replica before removing it (no request lost on
downscale), health-checks and replaces dead replicas, and routes each request to a replica with
room (power-of-two choices). New nodes for new replicas come from the Ray autoscaler, which acts on
the pending replicas' resource demands. What Serve does not do is resend a request whose replica
died mid-flight; the project's one fan-out (:func:`actors.fanout.fan_out`, also under every
:class:`~actors.group.ActorGroup`) does that, per chunk, so every item is scored exactly once in the
output: verdicts are collected by chunk index, a failed chunk is resent whole, and a chunk is never
accepted twice.

The batch is ``ray.put`` once; each request carries the boxed reference and a row range, and the
replica slices its zero-copy view. ``max_workers: 0`` runs one ``JudgeWorker`` in the driver.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Sequence

import pyarrow as pa

from actors.fanout import chunks, fan_out, flatten, role_error
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

    def score_rows(self, box: list[Any], start: int, stop: int, revise: bool = True) -> JudgeOutput:
        import ray

        table = ray.get(box[0], timeout=self.cfg.call_timeout_s)
        return self.score(table.slice(start, stop - start), revise)


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

    def score(self, items: pa.Table, revise: bool = True) -> JudgeOutput:
        """Verdicts for every row of ``items`` (a ``judge_items`` table), each exactly once, in row order
        (``revise=False``: the constitution rates the answers without writing revisions, as held-out scoring does)."""
        if self._local is not None:
            try:
                with self._local_lock:
                    return self._local.score(items, revise)
            except Exception as exc:
                raise role_error(exc, "judge", self._local.name, "score")
        import ray

        bounds = chunks(items.num_rows, self.cfg.chunk_size)
        box = [ray.put(items)]  # once; each request carries the boxed reference and a row range
        gauge = lambda pending: telemetry.record("ouro_judge_queue_depth", pending, app=self.app)  # noqa: E731
        gauge(len(bounds))
        parts = self._fan_out(len(bounds), lambda k: self._handle.score_rows.remote(box, *bounds[k], revise),
                              lambda k: f"score rows {bounds[k][0]}..{bounds[k][1]}", on_collect=gauge)
        telemetry.record("ouro_judge_items_total", items.num_rows, app=self.app)
        self._record_replicas()
        return JudgeOutput.merge(parts)

    def _record_replicas(self) -> None:
        """The dashboard's replica gauge. Telemetry never fails a verdict: Serve's status can lag a deploy or a
        deletion, and a stand-in handle has no Serve app at all."""
        try:
            running = self.replicas()
        except Exception as exc:  # a gauge left unset, said in the log
            log.debug("judge replicas not read for the telemetry gauge: %r", exc)
            return
        telemetry.record("ouro_judge_replicas", running, app=self.app)

    def _fan_out(self, n: int, submit: Callable[[int], Any], call: Callable[[int], str],
                 on_collect: Callable[[int], None] | None = None) -> list[Any]:
        """``n`` chunks through :func:`~actors.fanout.fan_out`: each chunk within ``judges.call_timeout_s`` of the
        one before, a chunk whose replica died resent up to ``judges.max_retries`` times (Serve routes it to a live replica)."""
        def resent(k: int, attempt: int, exc: BaseException) -> None:
            self.resubmitted += 1
            log.warning("judge replica died with %s in flight; resending (attempt %d)", call(k), attempt)

        return fan_out(n, lambda k, attempt: submit(k), lambda response, timeout_s: response.result(timeout_s=timeout_s),
                       role="judge", worker=lambda k, attempt: f"{self.app}/judge", call=call,
                       timeout_s=self.cfg.call_timeout_s, timeout_key="judges.call_timeout_s",
                       max_retries=self.cfg.max_retries, on_resend=resent, on_collect=on_collect)

    def complete(self, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """Greedy completions of ``prompts`` by the replicas' LLM judge (stage 2's AI summariser), in order."""
        return self._rows_out("complete", list(prompts), max_new_tokens)

    def prefer(self, first: pa.Table, second: pa.Table) -> list[float]:
        """P(first is better) per row pair of two ``judge_items`` tables (the evaluator's pairwise judge)."""
        if self._local is not None:
            return self._call_local("prefer", first, second)
        bounds = chunks(first.num_rows, self.cfg.chunk_size)
        return flatten(self._fan_out(len(bounds), lambda k: self._handle.prefer.remote(
            first.slice(bounds[k][0], bounds[k][1] - bounds[k][0]), second.slice(bounds[k][0], bounds[k][1] - bounds[k][0])),
            lambda k: f"prefer rows {bounds[k][0]}..{bounds[k][1]}"))

    def contradicts(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Whether each pair of answers contradicts itself, by the replicas' LLM judge."""
        return self._rows_out("contradicts", list(pairs))

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

    def _rows_out(self, method: str, rows: list, *args: Any) -> list:
        """``method(chunk, *args)`` over ``judges.chunk_size`` chunks of ``rows`` on the replicas; results in order."""
        if self._local is not None:
            return self._call_local(method, rows, *args)
        bounds = chunks(len(rows), self.cfg.chunk_size)
        return flatten(self._fan_out(len(bounds), lambda k: getattr(self._handle, method).remote(
            rows[bounds[k][0]:bounds[k][1]], *args), lambda k: f"{method} rows {bounds[k][0]}..{bounds[k][1]}"))

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
