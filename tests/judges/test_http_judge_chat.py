"""HTTPJudge speaking ``/v1/chat/completions``: reading a chat choice (hand-made JSON), and the transport
against a local fake chat server (stdlib ``ThreadingHTTPServer`` on port 0), and the config wiring.

The fake answers ``POST /v1/chat/completions`` in the OpenAI chat format (``choices[0].logprobs.content
[0].top_logprobs`` a list of ``{token, logprob}``); a test controls the top logprobs and the text (a
function of the prompt), the latency and how many requests fail with HTTP 500 first. Every other path
answers 404.
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Callable

import pytest
from _fake_http import item, serving

from ouro_ray.judges.http import HTTPJudge, JudgeHTTPError, read_chat_choice
from ouro_ray.judges.rubric import SCORE_TOKENS, expected_score

Respond = Callable[[str], "tuple[list[tuple[str, float]], str]"]
"""prompt text → (top logprobs of the one generated token, in order; the message's text)."""


def _chat_choice(top: list[tuple[str, float]], text: str | None) -> dict:
    entries = [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top]
    first = {"token": text or "", "logprob": top[0][1] if top else -9.0, "bytes": [], "top_logprobs": entries}
    return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length",
            "logprobs": {"content": [first], "refusal": None}}


# --- reading a chat choice, hand-made JSON ------------------------------------------------------------


def test_chat_top_logprobs_merge_stripped_tokens_hand_checked():
    # " 4" and "4" are one answer: P(4) = 0.25 + 0.25 = 0.5, P(5) = 0.5 → E = 4.5 → (4.5 - 3) / 2 = 0.75
    choice = _chat_choice([(" 4", math.log(0.25)), ("4", math.log(0.25)), ("5", math.log(0.5)), ("The", -3.0)], " 4")
    reading = read_chat_choice(choice, SCORE_TOKENS)
    assert reading.source == "logprobs"
    assert reading.logprobs == pytest.approx({"4": math.log(0.5), "5": math.log(0.5)})
    assert expected_score(reading.logprobs) == pytest.approx(0.75)


def test_a_chat_token_listed_twice_counts_once():
    # The first "3" counts: P(3) = P(5) = 0.5 → E = 4 → 0.5. (Adding the repeat: P(3) = 0.75, P(5) = 0.5,
    # renormalised 0.6 / 0.4 → E = 3.8 → 0.4; keeping the last: 1/3 / 2/3 → E = 4.33 → 0.67.)
    choice = _chat_choice([("3", math.log(0.5)), ("5", math.log(0.5)), ("3", math.log(0.25))], "3")
    assert expected_score(read_chat_choice(choice, SCORE_TOKENS).logprobs) == pytest.approx(0.5)


def test_chat_falls_back_to_the_message_text_then_to_nothing():
    no_digit = _chat_choice([("The", -0.1), ("A", -2.5)], "4 stars")
    assert read_chat_choice(no_digit, SCORE_TOKENS) == read_chat_choice({**no_digit, "logprobs": None}, SCORE_TOKENS)
    reading = read_chat_choice(no_digit, SCORE_TOKENS)
    assert (reading.source, dict(reading.logprobs)) == ("text", {"4": 0.0})
    assert read_chat_choice(_chat_choice([("The", -0.1)], None), SCORE_TOKENS).source == "none"
    assert read_chat_choice({"index": 0}, SCORE_TOKENS).source == "none"
    # A completions-shaped choice holds no chat logprobs: nothing is read from its top_logprobs.
    legacy = {"text": "x", "logprobs": {"top_logprobs": [{"3": 0.0}]}}
    assert read_chat_choice(legacy, SCORE_TOKENS).source == "none"


# --- the transport, against a fake chat server ----------------------------------------------------------


class FakeChat:
    """What the server does and what it saw; handlers read and write it under ``lock``."""

    def __init__(self) -> None:
        self.respond: Respond = lambda prompt: ([("3", 0.0)], "3")
        self.latency: Callable[[], float] = lambda: 0.0
        self.fail_first = 0
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = self.requests = 0
        self.paths: list[str] = []
        self.bodies: list[dict] = []

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            fail = self.fail_first > 0
            self.fail_first -= fail
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        if fail:
            return 500, {"error": {"message": "engine overloaded"}}
        top, text = self.respond(body["messages"][0]["content"])
        return 200, {"id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
                     "choices": [_chat_choice(top, text)]}


def _handler(state: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.paths.append(self.path)
                state.bodies.append(body)
            try:
                time.sleep(state.latency())
                status, answer = state.answer(self.path, body)
            finally:
                with state.lock:
                    state.in_flight -= 1
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    """(state, base_url) of a fresh fake chat server; shut down after the test."""
    state = FakeChat()
    with serving(_handler(state)) as base_url:
        yield state, base_url


_item = item


def _judge(base_url: str, **kwargs) -> HTTPJudge:
    kwargs.setdefault("backoff_s", 0.01)
    return HTTPJudge(base_url, "judge-model", api="chat", **kwargs)


def test_chat_sends_one_user_message_per_prompt_asking_for_top_logprobs(server):
    state, url = server
    state.respond = lambda p: ([("4", math.log(0.5)), ("5", math.log(0.5))], "4")
    judge = _judge(url, top_logprobs=5, batch_size=8)
    verdicts = judge.score([_item(i) for i in range(2)])  # 2 items × 3 dimensions = 6 prompts, 6 requests
    assert [v.reward for v in verdicts] == pytest.approx([0.75, 0.75])  # P(4) = P(5) = 0.5 → E = 4.5 → 0.75
    assert state.paths == ["/v1/chat/completions"] * 6 and judge.url == f"{url}/v1/chat/completions"
    body = state.bodies[0]
    assert set(body) == {"model", "messages", "max_tokens", "temperature", "logprobs", "top_logprobs"}
    assert (body["model"], body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (
        "judge-model", 1, 0, True, 5)
    [message] = body["messages"]
    assert message["role"] == "user" and message["content"].endswith("Score (1-5):")
    assert judge.stats == {"requests": 6, "retries": 0, "failures": 0, "unparsed": 0, "readings": 6, "text_fallback": 0}


def test_chat_keeps_the_order_and_the_in_flight_bound(server):
    state, url = server
    state.latency = lambda: 0.05
    # The "model" gives score k to a candidate containing "quality qk".
    state.respond = lambda p: ([(str(int(p.split("quality q")[1][0])), 0.0)], "x")
    judge = _judge(url, max_in_flight=2, dimensions=("helpful",))
    verdicts = judge.score([_item(i, f"Answer with quality q{1 + i % 5}.") for i in range(8)])
    assert [v.candidate_id for v in verdicts] == [f"c{i}" for i in range(8)]
    assert [v.reward for v in verdicts] == pytest.approx([(1 + i % 5 - 3) / 2 for i in range(8)])
    assert state.requests == 8 and state.max_in_flight == 2


def test_chat_retries_recover_and_text_fallback_is_counted(server):
    state, url = server
    state.fail_first = 2
    state.respond = lambda p: ([("The", -0.1)], "I'd say 2")
    judge = _judge(url, max_retries=3, dimensions=("helpful",))
    [verdict] = judge.score([_item(0)])
    assert verdict.reward == pytest.approx(-0.5)  # the text's "2" with probability 1 → (2 - 3) / 2
    assert "read '2' from the text" in verdict.notes
    assert judge.stats == {"requests": 3, "retries": 2, "failures": 0, "unparsed": 0, "readings": 1, "text_fallback": 1}


def test_chat_pairwise_prefer(server):
    state, url = server
    # " 1" and "1" merge: P(1) = 0.6 + 0.2 = 0.8, P(2) = 0.2 → 0.8
    state.respond = lambda p: ([(" 1", math.log(0.6)), ("1", math.log(0.2)), ("2", math.log(0.2))], " 1")
    judge = _judge(url)
    assert judge.prefer([_item(0, "good")], [_item(0, "bad")]) == pytest.approx([0.8])
    assert "Better answer (1 or 2):" in state.bodies[0]["messages"][0]["content"]


def test_the_wrong_api_fails_at_once_naming_route_and_fix(server):
    state, url = server  # the fake serves only chat
    judge = HTTPJudge(url, "judge-model", api="completions", max_retries=3)
    with pytest.raises(JudgeHTTPError) as caught:
        judge.score([_item(0)])
    message = str(caught.value)
    assert "HTTP 404" in message and "{base_url}/v1/completions" in message and "api='completions'" in message
    assert state.paths == ["/v1/completions"]  # a client error is not retried
    assert _judge(url).score([_item(0)])[0].reward == 0.0  # the default answer "3" → E = 3 → 0


@pytest.mark.parametrize(("kwargs", "said"), [
    ({"api": "responses"}, "api='responses' must be one of"),
    ({"api": None}, "api=None"),
    ({"api": "chat", "base_url": "http://host:8000/v1"}, "appends /v1/chat/completions itself"),
])
def test_constructor_validation_of_api(kwargs, said):
    args = {"base_url": "http://localhost:8000", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=said.replace("(", r"\(")):
        HTTPJudge(args.pop("base_url"), args.pop("model"), **args)


def test_config_api_reaches_the_judge():
    from actors.judge_worker import build_judges
    from ouro_ray.config.judges import HTTPJudgeConfig, JudgesConfig, LLMJudgeConfig

    def built(http: HTTPJudgeConfig) -> HTTPJudge:
        judges, _ = build_judges(JudgesConfig(rules=(), llm=LLMJudgeConfig(enabled=False), http=http), None)
        [judge] = judges
        return judge

    assert HTTPJudgeConfig().api == "completions"
    assert built(HTTPJudgeConfig(base_url="http://127.0.0.1:9", model="m")).api == "completions"
    chat = built(HTTPJudgeConfig(base_url="http://127.0.0.1:9", model="m", api="chat"))
    assert (chat.api, chat.url) == ("chat", "http://127.0.0.1:9/v1/chat/completions")
