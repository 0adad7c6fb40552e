"""HTTPJudge against a real local completions server (stdlib ``ThreadingHTTPServer`` on port 0).

The fake server answers ``POST /v1/completions`` in the OpenAI format; a test controls what the "model"
puts in ``top_logprobs`` (a function of the prompt text), the latency, how many requests fail with
HTTP 500 first, and whether every request gets HTTP 400. It records the most requests it held at once.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Callable

import pytest
from _fake_http import item, serving

from ouro_ray.judges.http import HTTPJudge, JudgeHTTPError, merge_top_logprobs, read_choice
from ouro_ray.judges.protocol import Judge, PairwiseJudge

Respond = Callable[[str], "tuple[dict[str, float], str]"]
"""prompt text → (top_logprobs at the one generated position, the sampled text)."""


class FakeCompletions:
    """What the server does and what it saw; handlers read and write it under ``lock``."""

    def __init__(self) -> None:
        self.respond: Respond = lambda prompt: ({"3": 0.0}, "3")
        self.latency: Callable[[], float] = lambda: 0.0
        self.fail_first = 0
        self.always_400 = False
        self.shuffle = False
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.bodies: list[dict] = []

    def answer(self, body: dict) -> tuple[int, dict]:
        """(status, JSON body) for one request; failures are decided in arrival order."""
        with self.lock:
            self.requests += 1
            fail = self.fail_first > 0
            self.fail_first -= fail
        if self.always_400:
            return 400, {"error": {"message": "logprobs must be <= 5"}}
        if fail:
            return 500, {"error": {"message": "engine overloaded"}}
        choices = [self._choice(i, p) for i, p in enumerate(body["prompt"])]
        if self.shuffle:
            random.shuffle(choices)
        return 200, {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": choices}

    def _choice(self, index: int, prompt: str) -> dict:
        top, text = self.respond(prompt)
        logprobs = {"tokens": [text], "token_logprobs": [top.get(text, -9.0)], "top_logprobs": [top],
                    "text_offset": [0]}
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": "length"}


def _handler(state: FakeCompletions) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.headers.append(dict(self.headers))
                state.bodies.append(body)
            try:
                time.sleep(state.latency())
                status, answer = (404, {}) if self.path != "/v1/completions" else state.answer(body)
            finally:
                with state.lock:  # before replying, so the client's next request cannot overlap this count
                    state.in_flight -= 1
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client timed out and hung up
                pass

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    """(state, base_url) of a fresh fake server; shut down after the test."""
    state = FakeCompletions()
    with serving(_handler(state)) as base_url:
        yield state, base_url


_item = item


def _judge(base_url: str, **kwargs) -> HTTPJudge:
    kwargs.setdefault("backoff_s", 0.01)
    return HTTPJudge(base_url, "judge-model", **kwargs)


def test_satisfies_the_judge_protocols(server):
    _, url = server
    judge = _judge(url)
    assert isinstance(judge, Judge) and isinstance(judge, PairwiseJudge)
    assert judge.rater == "ai" and judge.name == "http-judge"


def test_expected_score_hand_checked(server):
    state, url = server
    # P(4) = P(5) = 0.5 → E = 4.5 → (4.5 - 3) / 2 = 0.75
    state.respond = lambda p: ({"4": math.log(0.5), "5": math.log(0.5), "The": -3.0}, "4")
    [verdict] = _judge(url).score([_item(0)])
    assert verdict.scores == pytest.approx({"helpful": 0.75, "honest": 0.75, "persona": 0.75})
    assert verdict.reward == pytest.approx(0.75)
    assert (verdict.prompt_id, verdict.candidate_id, verdict.rater, verdict.notes) == ("p0", "c0", "ai", None)

    # " 3" and "3" are one answer: P(3) = 0.25 + 0.25 = 0.5, P(5) = 0.5 → E = 4 → 0.5.
    # (Keeping only one of them would give P(3) = 1/3 → E = 4.33 → 0.67.)
    state.respond = lambda p: ({" 3": math.log(0.25), "3": math.log(0.25), "5": math.log(0.5)}, " 3")
    [verdict] = _judge(url).score([_item(0)])
    assert verdict.reward == pytest.approx(0.5)


def test_request_asks_for_one_token_with_top_k_logprobs_and_batches(server):
    state, url = server
    judge = _judge(url, top_logprobs=5, batch_size=4, api_key="sk-test")
    judge.score([_item(i) for i in range(3)])  # 3 items × 3 dimensions = 9 prompts → batches of 4, 4, 1
    assert sorted(len(b["prompt"]) for b in state.bodies) == [1, 4, 4]
    body = state.bodies[0]
    assert (body["model"], body["max_tokens"], body["temperature"], body["logprobs"]) == ("judge-model", 1, 0, 5)
    assert state.headers[0]["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in repr(judge)


def test_merge_top_logprobs_combines_stripped_tokens():
    merged = merge_top_logprobs({" 3": math.log(0.25), "3": math.log(0.25), "\n4": math.log(0.1)})
    assert merged == pytest.approx({"3": math.log(0.5), "4": math.log(0.1)})
    assert read_choice({"text": "x", "logprobs": None}, ("1", "2")).source == "none"


def test_retries_recover_from_two_failures(server):
    state, url = server
    state.fail_first = 2
    judge = _judge(url, max_retries=3, dimensions=("helpful",))
    [verdict] = judge.score([_item(0)])
    assert verdict.reward == 0.0  # the default answer is "3" with probability 1 → E = 3 → 0
    assert state.requests == 3
    assert judge.stats == {"requests": 3, "retries": 2, "failures": 0, "unparsed": 0, "readings": 1, "text_fallback": 0}


def test_client_error_fails_at_once_naming_url_and_status(server):
    state, url = server
    state.always_400 = True
    judge = _judge(url, max_retries=3)
    with pytest.raises(JudgeHTTPError) as caught:
        judge.score([_item(0)])
    message = str(caught.value)
    assert f"{url}/v1/completions" in message and "HTTP 400" in message and "logprobs must be <= 5" in message
    assert "attempt 1" in message and "Fix:" in message
    assert (caught.value.status, caught.value.attempts) == (400, 1)
    assert state.requests == 1
    assert judge.stats["failures"] == 1 and judge.stats["retries"] == 0


def test_timeout_retries_then_raises(server):
    state, url = server
    state.latency = lambda: 0.6
    judge = _judge(url, timeout_s=0.1, max_retries=2)
    started = time.monotonic()
    with pytest.raises(JudgeHTTPError, match=r"after 3 attempts.*timed out after timeout_s=0.1s.*Fix:"):
        judge.score([_item(0)])
    assert time.monotonic() - started < 2.0
    assert judge.stats["requests"] == 3 and judge.stats["retries"] == 2 and judge.stats["failures"] == 1


def test_connection_refused_retries_then_raises():
    with socket.socket() as probe:  # a port that was just free: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    judge = _judge(f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(JudgeHTTPError, match=rf":{port}/v1/completions failed after 2 attempts.*connection"):
        judge.score([_item(0)])


def test_in_flight_requests_are_bounded(server):
    state, url = server
    state.latency = lambda: 0.1
    judge = _judge(url, max_in_flight=2, batch_size=1, dimensions=("helpful",))
    verdicts = judge.score([_item(i) for i in range(10)])  # 10 requests of 0.1 s, two at a time
    assert len(verdicts) == 10 and state.requests == 10
    assert state.max_in_flight == 2


def test_in_flight_bound_holds_across_concurrent_calls(server):
    state, url = server
    state.latency = lambda: 0.05
    judge = _judge(url, max_in_flight=2, batch_size=1, dimensions=("helpful",))
    callers = [threading.Thread(target=judge.score, args=([_item(i) for i in range(6)],)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=5)
    assert state.requests == 18 and state.max_in_flight == 2


def test_order_preserved_under_random_latency_and_shuffled_choices(server):
    state, url = server
    rng = random.Random(0)
    state.latency = lambda: rng.uniform(0.0, 0.05)
    state.shuffle = True
    # The "model" gives score k to a candidate containing "quality qk", and per dimension an offset.
    offsets = {"helpful": 0, "honest": -1}

    def respond(prompt: str) -> tuple[dict[str, float], str]:
        k = int(prompt.split("quality q")[1][0])
        dim = prompt.split("Dimension: ")[1].split(".")[0]
        return {str(k + offsets[dim]): 0.0}, "x"

    state.respond = respond
    items = [_item(i, f"Answer with quality q{2 + i % 4}.") for i in range(12)]
    verdicts = _judge(url, max_in_flight=4, batch_size=3, dimensions=("helpful", "honest")).score(items)
    assert [v.candidate_id for v in verdicts] == [f"c{i}" for i in range(12)]
    for i, v in enumerate(verdicts):
        k = 2 + i % 4  # helpful reads k, honest k - 1; a score s maps to (s - 3) / 2
        assert v.scores == pytest.approx({"helpful": (k - 3) / 2, "honest": (k - 4) / 2})


def test_fallback_to_text_digit_then_to_zero_with_notes(server):
    state, url = server
    state.respond = lambda p: ({"The": -0.1, "A": -2.5}, "4")
    judge = _judge(url, dimensions=("helpful",))
    [verdict] = judge.score([_item(0)])
    assert verdict.reward == pytest.approx(0.5)  # the text's "4" with probability 1 → (4 - 3) / 2
    assert "no score token in top-20 logprobs" in verdict.notes and "'4'" in verdict.notes
    assert judge.stats["text_fallback"] == 1 and judge.stats["unparsed"] == 0

    state.respond = lambda p: ({"The": -0.1}, "The")
    [verdict] = judge.score([_item(0)])
    # no verdict: the dimension is left out (it weighs nothing in the reward), never a neutral 0
    assert verdict.scores == {} and verdict.reward == 0.0
    assert verdict.notes == "helpful: unreadable (no score token in top-20 logprobs or in the text; not scored)"
    assert judge.stats["unparsed"] == 1 and judge.stats["readings"] == 2
    assert judge.take_stats() == {**dict.fromkeys(judge.stats, 0), "requests": 2, "unparsed": 1, "readings": 2,
                                  "text_fallback": 1}
    assert judge.take_stats()["readings"] == 0  # since the last take


def test_unreadable_verdicts_go_to_the_review_queue_and_too_many_stop_the_round():
    import pyarrow as pa

    from ouro_ray.config.loop import ScoringConfig
    from ouro_ray.judges.items import scores_table
    from ouro_ray.judges.protocol import JudgeScore
    from ouro_ray.judges.scoring import UnreadableVerdicts, check_unreadable, combine, review_queue

    rows = [JudgeScore("p", "c0", "ai", "http-judge", {}, 0.0, "helpful: unreadable (no score token ...)"),
            JudgeScore("p", "c0", "rule", "facts", {"content": 1.0}, 1.0, None),
            JudgeScore("p", "c1", "ai", "http-judge", {"helpful": 0.5}, 0.5, None),
            JudgeScore("p", "c1", "rule", "facts", {"content": 1.0}, 1.0, None)]
    scores = scores_table(rows)
    cfg = ScoringConfig(spot_checks=0)
    rewards = combine(scores, cfg)
    assert rewards.column("reward").to_pylist()[0] == pytest.approx(1.0)  # the unreadable judge weighs nothing
    items = pa.table({"prompt_id": ["p", "p"], "candidate_id": ["c0", "c1"], "prompt": ["q", "q"],
                      "candidate": ["a", "b"]})
    queue = review_queue(rewards, scores, items, cfg, seed=0, round_index=3)
    assert [(q["candidate_id"], q["reason"]) for q in queue][:1] == [("c0", "unreadable")]
    check_unreadable({"http_readings": 10, "http_unreadable": 2}, 0.2, 3)  # 20 %: at the limit, goes on
    with pytest.raises(UnreadableVerdicts, match=r"round 3: 3 of 10 HTTP judge verdicts \(30%\) were unreadable"):
        check_unreadable({"http_readings": 10, "http_unreadable": 3}, 0.2, 3)


def test_pairwise_prefer(server):
    state, url = server

    def respond(prompt: str) -> tuple[dict[str, float], str]:
        # " 1" and "1" merge: P(1) = 0.6 + 0.2 = 0.8, P(2) = 0.2 → 0.8; the second pair is unreadable → 0.5
        if "second pair" in prompt:
            return {"The": -0.1}, "The"
        return {" 1": math.log(0.6), "1": math.log(0.2), "2": math.log(0.2)}, " 1"

    state.respond = respond
    judge = _judge(url)
    first = [_item(0, "good"), _item(1, "second pair, first")]
    second = [_item(0, "bad"), _item(1, "second pair, second")]
    assert judge.prefer(first, second) == pytest.approx([0.8, 0.5])
    assert "Better answer (1 or 2):" in state.bodies[0]["prompt"][0]
    assert judge.stats["unparsed"] == 1
    with pytest.raises(ValueError, match="as many first as second"):
        judge.prefer(first, second[:1])


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"base_url": "ftp://host"}, "base_url"),
        ({"base_url": "http://host:8000/v1"}, "base_url"),
        ({"model": ""}, "model"),
        ({"dimensions": ("helpful", "kindness")}, "dimensions"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"top_logprobs": 2.5}, "top_logprobs"),
        ({"batch_size": True}, "batch_size"),
        ({"api_key": "env:OURO_TEST_SURELY_UNSET_KEY"}, "api_key"),
    ],
)
def test_constructor_validation_names_the_argument(kwargs, argument):
    args = {"base_url": "http://localhost:8000", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=argument):
        HTTPJudge(args.pop("base_url"), args.pop("model"), **args)


def test_a_429_or_503_retry_after_is_honoured_and_capped(monkeypatch):
    import email.message
    import urllib.error

    from ouro_ray.judges import http as http_mod

    def error(code: int, retry_after: str | None) -> urllib.error.HTTPError:
        headers = email.message.Message()
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return urllib.error.HTTPError("http://x", code, "busy", headers, None)

    assert http_mod._retry_after(error(429, "2.5")) == 2.5
    assert http_mod._retry_after(error(503, "3600")) == http_mod.MAX_RETRY_AFTER_S
    assert http_mod._retry_after(error(429, "Wed, 21 Oct 2015 07:28:00 GMT")) is None  # a date: the usual backoff
    assert http_mod._retry_after(error(429, None)) is None

    judge = _judge("http://127.0.0.1:9", max_retries=2)
    slept, answers = [], [http_mod._AttemptFailed("HTTP 429", 429, True, 2.5),
                          http_mod._AttemptFailed("HTTP 500", 500, True, None), {"ok": True}]

    def post_once(data):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(judge, "_post_once", post_once)
    monkeypatch.setattr(http_mod.time, "sleep", slept.append)
    assert judge._post_with_retries({}) == {"ok": True}
    assert slept == [2.5, judge.backoff_s * 2]  # the server's hint, then the exponential backoff
