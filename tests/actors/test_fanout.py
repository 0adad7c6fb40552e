"""The one fan-out under every group (actors/fanout.py): order, a deadline that moves with progress, resend when a
worker dies.

Pure: the chunks are fake handles, so each failure the mechanism claims to survive is injected, not
hoped for from Ray's or Serve's timing."""

from __future__ import annotations

import time

import pytest
import ray.exceptions as rex

from actors.fanout import chunks, fan_out


class Handle:
    """A chunk in flight: its value, or the error waiting for it raises, after ``delay_s``."""

    def __init__(self, value=None, error: BaseException | None = None, delay_s: float = 0.0):
        self.value, self.error, self.delay_s = value, error, delay_s


def wait(handle: Handle, timeout_s: float):
    if handle.delay_s > timeout_s:
        time.sleep(timeout_s)
        raise TimeoutError("fake timeout")
    if handle.error is not None:
        raise handle.error
    return handle.value


def run(submit, **kw):
    n = kw.pop("n", 3)
    defaults = dict(role="judge", worker=lambda k, a: f"w{(k + a) % 3}", call="score", timeout_s=5.0,
                    timeout_key="judges.call_timeout_s")
    return fan_out(n, submit, wait, **(defaults | kw))


def test_chunks_cover_the_rows_in_order():
    assert chunks(5, 2) == [(0, 2), (2, 4), (4, 5)] and chunks(0, 2) == [] and chunks(2, 8) == [(0, 2)]


def test_values_come_back_in_chunk_order():
    assert run(lambda k, a: Handle(value=k * 10)) == [0, 10, 20]


def test_a_chunk_whose_worker_died_is_resent_elsewhere_and_accepted_once():
    sent, resent = [], []

    def submit(k, attempt):
        sent.append((k, attempt))
        if k == 1 and attempt == 0:
            return Handle(error=rex.ActorDiedError())
        return Handle(value=(k, attempt))

    out = run(submit, max_retries=2, on_resend=lambda k, a, e: resent.append((k, a)))
    assert out == [(0, 0), (1, 1), (2, 0)]  # chunk 1 answered once, by its resend
    assert sent == [(0, 0), (1, 0), (2, 0), (1, 1)] and resent == [(1, 1)]


def test_resends_stop_at_max_retries_and_the_error_names_the_worker():
    with pytest.raises(rex.ActorDiedError) as err:
        run(lambda k, a: Handle(error=rex.ActorDiedError()) if k == 0 else Handle(value=k), max_retries=1)
    assert any("in role 'judge', actor 'w1', method 'score'" in n for n in err.value.__notes__)  # the second try


def test_an_unreachable_worker_is_asked_again_paced_beyond_max_retries_and_answers_once():
    """A lost node's actor answers ActorUnavailableError until Ray declares the node dead and restarts it."""
    sent = []

    def submit(k, attempt):
        sent.append((k, attempt))
        if k == 0 and attempt < 2:  # unreachable twice, then restarted elsewhere
            return Handle(error=rex.ActorUnavailableError("connection refused", None))
        return Handle(value=(k, attempt))

    started = time.monotonic()
    out = run(submit, max_retries=0, pause_s=0.1)
    assert out == [(0, 2), (1, 0), (2, 0)]  # chunk 0 accepted once, from its third send
    assert sent == [(0, 0), (1, 0), (2, 0), (0, 1), (0, 2)]
    assert time.monotonic() - started >= 0.2  # a pause before each resend, not a busy loop


def test_a_worker_unreachable_until_the_deadline_fails_with_its_error_and_name():
    started = time.monotonic()
    with pytest.raises(rex.ActorUnavailableError) as err:
        run(lambda k, a: Handle(error=rex.ActorUnavailableError("connection refused", None)), timeout_s=0.5,
            pause_s=0.1)
    assert 0.5 <= time.monotonic() - started < 2.0  # asked again until the call's deadline, then given up
    assert any("in role 'judge'" in n and "method 'score'" in n for n in err.value.__notes__)


def test_an_application_error_is_not_resent_and_keeps_its_type():
    sent = []

    def submit(k, attempt):
        sent.append(k)
        return Handle(error=ValueError("bad item")) if k == 2 else Handle(value=k)

    with pytest.raises(ValueError, match="bad item") as err:
        run(submit, max_retries=3, call=lambda k: f"score rows {k * 4}..{k * 4 + 4}")
    assert sent == [0, 1, 2]
    assert any("method 'score rows 8..12'" in n for n in err.value.__notes__)


class Queued:
    """A chunk behind others on one worker: its answer is ready at ``ready_at`` (monotonic seconds)."""

    def __init__(self, value, ready_at: float):
        self.value, self.ready_at = value, ready_at


def wait_queued(handle: Queued, timeout_s: float):
    left = handle.ready_at - time.monotonic()
    if left > timeout_s:
        time.sleep(timeout_s)
        raise TimeoutError("fake timeout")
    time.sleep(max(0.0, left))
    return handle.value


def test_a_call_longer_than_the_timeout_passes_while_every_chunk_answers_in_time():
    """Four chunks queued on one worker, 0.1 s each: the call takes 0.4 s, each chunk 0.1 s after the one before
    (a round of 330 candidates on one judge replica, 6 chunks of about 100 s, once failed a 600 s call deadline)."""
    start = time.monotonic()
    out = fan_out(4, lambda k, a: Queued(k, start + 0.1 * (k + 1)), wait_queued, role="judge",
                  worker=lambda k, a: "w0", call="score", timeout_s=0.25, timeout_key="judges.call_timeout_s")
    assert out == [0, 1, 2, 3] and time.monotonic() - start >= 0.4


def test_a_chunk_that_stops_answering_fails_timeout_s_after_the_one_before_and_names_the_fix():
    start = time.monotonic()
    ready = [start + 0.1, start + 0.2, float("inf")]  # the worker hangs on the third chunk
    with pytest.raises(TimeoutError, match=r"role 'judge', actor 'w2': score gave no answer within 0.25 s of the "
                                           r"chunk before it \(chunk 3 of 3\); fix: raise judges.call_timeout_s"):
        fan_out(3, lambda k, a: Queued(k, ready[k]), wait_queued, role="judge", worker=lambda k, a: f"w{k}",
                call="score", timeout_s=0.25, timeout_key="judges.call_timeout_s")
    assert 0.2 + 0.25 <= time.monotonic() - start < 1.0  # counted from the second chunk's answer, not the start


def test_the_collect_callback_counts_down():
    seen = []
    run(lambda k, a: Handle(value=k), on_collect=seen.append)
    assert seen == [2, 1, 0]


class _Doubler:
    """A role for the group test: doubles a column of its row slice."""

    def __init__(self, worker_index: int = 0):
        self.worker_index = worker_index

    def double(self, table, seed=None):
        import pyarrow as pa
        import pyarrow.compute as pc

        return pa.table({"x": pc.multiply(table.column("x"), 2)})


def test_an_actor_group_resends_a_slice_to_the_next_actor_when_one_died_for_good(ray_cluster):
    """Two actors without restarts; one is killed; every slice still comes back once, in row order."""
    import pyarrow as pa
    import ray

    from actors.group import ActorGroup
    from ouro_ray.config.roles import RoleResources

    resources = RoleResources(num_workers=2, num_cpus=0.1, max_restarts=0, max_task_retries=0, batch_size=2,
                              call_timeout_s=60.0)
    with ActorGroup("doubler", _Doubler, resources, prefix="t-fanout", namespace="ouro-test") as group:
        table = pa.table({"x": list(range(7))})
        assert group.map_rows("double", table).column("x").to_pylist() == [0, 2, 4, 6, 8, 10, 12]
        ray.kill(group.actors[1], no_restart=True)
        assert group.map_rows("double", table).column("x").to_pylist() == [0, 2, 4, 6, 8, 10, 12]
