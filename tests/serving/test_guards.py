"""``ouro serve``'s guards, without HTTP: the limits and caps, the API key, the generation gate, and the
logprobs recorder (hand-worked numbers), plus a check that a generation keeps no full logits."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
import torch

from ouro_ray.serving import CompletionEngine, CompletionRequestError, ServeLimits, parse_chat_request, parse_request
from ouro_ray.serving.auth import is_loopback, key_digest, read_api_key, resolve_api_key
from ouro_ray.serving.gate import GenerationGate
from ouro_ray.serving.steps import Deadline, TopLogprobs

HI = [{"role": "user", "content": "Hello"}]
TIGHT = ServeLimits(max_tokens=32, max_n=2, max_prompts=3)


def test_every_name_the_package_exports_loads_and_the_package_alone_imports_no_torch() -> None:
    import subprocess
    import sys

    import ouro_ray.serving

    assert all(getattr(ouro_ray.serving, name) is not None for name in ouro_ray.serving.__all__)
    check = "import sys, ouro_ray.serving, ouro_ray.serving.limits; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout == "False\n"


# --- limits and caps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "said"), [
    ({"max_tokens": 0}, "max_tokens=0 must be an integer >= 1 (ouro serve --max-tokens)"),
    ({"max_body_bytes": 1.5}, "max_body_bytes=1.5 must be an integer >= 1 (ouro serve --max-body-bytes)"),
    ({"max_waiting": -1}, "max_waiting=-1 must be an integer >= 0 (ouro serve --max-waiting)"),
    ({"request_timeout_s": 0}, "request_timeout_s=0 must be a number of seconds > 0"),
    ({"request_timeout_s": float("inf")}, "request_timeout_s=inf must be a number of seconds > 0"),
])
def test_bad_limits_are_refused_naming_the_field_and_the_option(changes, said) -> None:
    with pytest.raises(ValueError) as refused:
        ServeLimits(**changes)
    assert str(refused.value).startswith(said)


@pytest.mark.parametrize(("parse", "body", "param", "said"), [
    (parse_request, {"prompt": "hi", "max_tokens": 33}, "max_tokens",
     "max_tokens=33 is above this server's cap of 32 tokens; fix: send max_tokens <= 32"),
    (parse_request, {"prompt": "hi", "n": 3}, "n", "n=3 is above this server's cap of 2 choices per prompt; fix: send n <= 2"),
    (parse_request, {"prompt": ["a", "b", "c", "d"]}, "prompt",
     "prompt holds 4 prompts, which is above this server's cap of 3 per request; fix: send at most 3 prompts"),
    (parse_chat_request, {"messages": HI, "max_completion_tokens": 40}, "max_completion_tokens",
     "max_completion_tokens=40 is above this server's cap of 32 tokens"),
    (parse_chat_request, {"messages": HI, "n": 5}, "n", "n=5 is above this server's cap of 2"),
])
def test_a_request_over_a_cap_is_a_400_naming_field_value_cap_and_fix(parse, body, param, said) -> None:
    with pytest.raises(CompletionRequestError) as refused:
        parse(body, TIGHT)
    assert refused.value.status == 400 and refused.value.param == param
    assert said in str(refused.value) and "or serve with a higher --max-" in str(refused.value)


def test_a_request_at_the_caps_is_taken_as_sent() -> None:
    request = parse_request({"prompt": ["a", "b", "c"], "max_tokens": 32, "n": 2}, TIGHT)
    assert (len(request.prompts), request.max_tokens, request.n) == (3, 32, 2)  # not clipped, not refused
    assert parse_chat_request({"messages": HI, "max_tokens": 32}, TIGHT).sampling.max_tokens == 32


def test_the_default_caps_apply_without_limits() -> None:
    default = ServeLimits()
    with pytest.raises(CompletionRequestError, match=f"cap of {default.max_tokens} tokens"):
        parse_request({"prompt": "hi", "max_tokens": default.max_tokens + 1})


# --- the API key ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("my-host.example", False),
])
def test_loopback_hosts(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_a_key_is_generated_only_beyond_loopback_and_a_given_one_always_wins() -> None:
    assert resolve_api_key("127.0.0.1", None) is None
    first, second = resolve_api_key("0.0.0.0", None), resolve_api_key("0.0.0.0", None)
    assert first.generated and len(first.value) >= 40 and first.value != second.value
    given = resolve_api_key("127.0.0.1", "sk-given")
    assert (given.value, given.generated) == ("sk-given", False)
    assert key_digest("sk-given") != key_digest("sk-given ") and len(key_digest("x")) == 32


def test_an_unset_key_variable_is_refused_naming_it(monkeypatch) -> None:
    monkeypatch.setenv("OURO_TEST_SERVE_KEY", "  sk-from-env ")
    assert read_api_key("OURO_TEST_SERVE_KEY") == "sk-from-env"
    monkeypatch.setenv("OURO_TEST_SERVE_KEY", "")
    with pytest.raises(ValueError, match="--api-key-env OURO_TEST_SERVE_KEY names an environment variable that is "
                                         "unset or empty; fix: export OURO_TEST_SERVE_KEY="):
        read_api_key("OURO_TEST_SERVE_KEY")


# --- the generation gate --------------------------------------------------------------------------------


def _blocked(release: threading.Event, log: list[str], name: str):
    def generate() -> str:
        log.append(f"{name} start")
        release.wait(10)
        log.append(f"{name} end")
        return name
    return generate


def test_the_gate_refuses_past_its_line_and_times_out_waiters() -> None:
    async def scenario():
        gate, release, log = GenerationGate(max_waiting=1), threading.Event(), []
        far = time.monotonic() + 30
        running = asyncio.create_task(gate.run(_blocked(release, log, "a"), far))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(gate.run(_blocked(release, log, "b"), time.monotonic() + 0.3))
        await asyncio.sleep(0.05)
        with pytest.raises(CompletionRequestError) as busy:  # one generating, one waiting: the line is full
            await gate.run(_blocked(release, log, "c"), far)
        assert (busy.value.status, busy.value.code) == (429, "queue_full") and busy.value.retry_after >= 1
        with pytest.raises(CompletionRequestError) as late:
            await waiting
        assert (late.value.status, late.value.code) == (503, "timeout") and "waited" in str(late.value)
        release.set()
        assert await running == "a"
        assert log == ["a start", "a end"]  # neither the refused nor the timed-out request ever ran
    asyncio.run(scenario())


def test_a_cancelled_request_keeps_the_slot_until_its_generation_ends() -> None:
    """A client that leaves mid-generation must not let a second generation start beside the first."""
    async def scenario():
        gate, release, log = GenerationGate(max_waiting=4), threading.Event(), []
        far = time.monotonic() + 30
        first = asyncio.create_task(gate.run(_blocked(release, log, "a"), far))
        await asyncio.sleep(0.05)
        first.cancel()  # what Serve does when the client disconnects
        second = asyncio.create_task(gate.run(_blocked(release, log, "b"), far))
        await asyncio.sleep(0.2)
        assert log == ["a start"]  # b waits: a's thread still runs
        release.set()
        assert await second == "b"
        assert log == ["a start", "a end", "b start", "b end"]
    asyncio.run(scenario())


# --- logprobs: only the top-K of each step is kept -------------------------------------------------------


def test_top_logprobs_hand_worked() -> None:
    # Logits log(1, 2, 3, 4) → probabilities (0.1, 0.2, 0.3, 0.4); step 0 samples token 1, step 1 token 3.
    scores = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # (S=1, V=4)
    recorder = TopLogprobs(k=2)
    prompt = torch.tensor([[0, 0]])
    assert recorder(prompt, scores) is scores  # the scores pass through untouched
    recorder(torch.tensor([[0, 0, 1]]), scores.flip(-1))  # step 1: probabilities (0.4, 0.3, 0.2, 0.1)
    [steps] = recorder.finish(torch.tensor([[1, 3]]))  # (S, T) generated ids
    assert steps.chosen == pytest.approx([math.log(0.2), math.log(0.1)])
    assert [[i for i, _ in row] for row in steps.top] == [[3, 2], [0, 1]]
    assert [v for row in steps.top for _, v in row] == pytest.approx([math.log(0.4), math.log(0.3)] * 2)
    assert steps.first(1).chosen == pytest.approx([math.log(0.2)]) and len(steps.first(1).top) == 1


def test_the_deadline_stops_every_sequence_once_passed() -> None:
    ids = torch.zeros((3, 2), dtype=torch.long)
    assert not Deadline(time.monotonic() + 60)(ids, None).any()
    passed = Deadline(time.monotonic() - 1)
    assert passed(ids, None).all() and passed.passed


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> CompletionEngine:
    return CompletionEngine.from_dir(tiny_model_dir, name="guards")


def test_logprobs_keep_only_the_top_k_of_each_step(engine, monkeypatch) -> None:
    """The memory bound: generate is never asked for its logits, and the recorder holds (S, K) a step."""
    seen = {}
    generate = engine.model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        [recorder] = kwargs["logits_processor"]
        seen.update(kwargs=kwargs, out=out, shapes={tuple(v.shape) for v in recorder._values + recorder._indices})
        return out

    monkeypatch.setattr(engine.model, "generate", spy)
    answer = engine.complete({"prompt": ["Hello", "The reactor"], "max_tokens": 5, "n": 3, "logprobs": 4,
                              "temperature": 1.0, "seed": 2})
    assert not seen["kwargs"].get("output_logits") and not seen["kwargs"].get("output_scores")
    assert seen["out"].logits is None and seen["out"].scores is None
    assert seen["shapes"] == {(6, 4)}  # (S = 2 prompts × n 3, K = 4), never (S, V)
    assert all(len(row) >= 4 for c in answer["choices"] for row in c["logprobs"]["top_logprobs"])
