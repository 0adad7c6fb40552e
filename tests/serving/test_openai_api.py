"""``ouro serve`` speaks OpenAI: the chat route's validation (pure), the chat engine in process, and the
official ``openai`` client and ``HTTPJudge`` (both APIs) against a real deployment of the small world."""

from __future__ import annotations

import copy
import shutil
import uuid

import openai
import pytest
import torch

from ouro_ray.judges.http import HTTPJudge
from ouro_ray.judges.protocol import JudgeItem, Target
from ouro_ray.serving import (
    CompletionEngine,
    CompletionRequestError,
    chat_logprobs,
    complete_chat,
    deploy_completions,
    parse_chat_request,
    render_messages,
    token_bytes,
    token_text,
)
from ouro_ray.serving.steps import TopLogprobs
from ouro_ray.world.tokenizer import ASSISTANT, BOS

NAME = "tiny-chat"
HI = [{"role": "user", "content": "Hello"}]


# --- the chat request, pure -------------------------------------------------------------------------


def test_a_chat_request_parses_into_its_fields() -> None:
    request = parse_chat_request({
        "model": "m", "messages": [{"role": "system", "content": "Be brief."}, *HI], "max_tokens": 3,
        "temperature": 0, "top_p": 0.5, "n": 2, "seed": 1, "stop": "\n", "logprobs": True, "top_logprobs": 4,
        "stream": False, "user": "u",
    })
    assert request.messages == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"})
    assert (request.logprobs, request.top_logprobs) == (True, 4)
    s = request.sampling
    assert (s.model, s.max_tokens, s.temperature, s.top_p, s.n, s.seed, s.stop) == ("m", 3, 0.0, 0.5, 2, 1, ("\n",))
    assert parse_chat_request({"messages": HI, "max_completion_tokens": 7}).sampling.max_tokens == 7
    plain = parse_chat_request({"messages": HI})
    assert (plain.logprobs, plain.top_logprobs, plain.sampling.max_tokens) == (False, None, 16)


@pytest.mark.parametrize(("body", "param"), [
    ({}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "Hello"}, "messages"),
    ({"messages": ["Hello"]}, "messages[0]"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages[0].role"),
    ({"messages": [*HI, {"role": "tool", "content": "Hi"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "Hi", "tool_calls": []}]}, "messages[0].tool_calls"),
    ({"messages": HI, "top_logprobs": 3}, "top_logprobs"),
    ({"messages": HI, "logprobs": False, "top_logprobs": 3}, "top_logprobs"),
    ({"messages": HI, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"messages": HI, "logprobs": 5}, "logprobs"),
    ({"messages": HI, "max_tokens": 0}, "max_tokens"),
    ({"messages": HI, "max_tokens": 4, "max_completion_tokens": 4}, "max_completion_tokens"),
    ({"messages": HI, "temperature": 2.5}, "temperature"),
    ({"messages": HI, "top_p": 0}, "top_p"),
    ({"messages": HI, "n": 17}, "n"),
    ({"messages": HI, "stream": True}, "stream"),
    ({"messages": HI, "tools": [{"type": "function"}]}, "tools"),
    ({"messages": HI, "prompt": "Hi"}, "prompt"),
    ({"messages": HI, "model": 3}, "model"),
])
def test_bad_chat_requests_are_refused_naming_the_field(body, param) -> None:
    with pytest.raises(CompletionRequestError) as refused:
        parse_chat_request(body)
    assert refused.value.param == param and param.split(".")[-1] in str(refused.value)
    assert refused.value.status == 400 and refused.value.body()["error"]["param"] == param


def test_token_bytes_are_utf8_or_the_escaped_partial_character() -> None:
    assert token_bytes(" 3") == [32, 51]
    assert token_bytes("é") == [0xC3, 0xA9]
    assert token_bytes("bytes:\\xe2\\x80") == [0xE2, 0x80]
    assert token_bytes("bytes: or not") == list(b"bytes: or not")  # only the exact escaped form is raw bytes


# --- the chat engine, in process -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> CompletionEngine:
    return CompletionEngine.from_dir(tiny_model_dir, name=NAME)


def test_chat_renders_the_template_once_and_reads_the_raw_distribution(engine) -> None:
    k = 5
    answer = complete_chat(engine, {"messages": HI, "max_tokens": 4, "temperature": 0, "logprobs": True,
                                    "top_logprobs": k})
    assert answer["object"] == "chat.completion" and answer["model"] == NAME
    [choice] = answer["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    # The template carries bos and role markers: the tokenizer must not add special tokens on top.
    rendered = render_messages(engine.tokenizer, HI)
    assert rendered.startswith(BOS) and rendered.endswith(ASSISTANT)  # the assistant's turn is opened
    ids = engine.tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert answer["usage"]["prompt_tokens"] == len(ids)
    with torch.no_grad():
        reference = torch.log_softmax(engine.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), dim=-1)
    values, indices = reference.topk(k)  # (K,)
    first = choice["logprobs"]["content"][0]
    assert first["token"] == token_text(engine.tokenizer, int(indices[0]))  # greedy: the argmax
    assert first["logprob"] == pytest.approx(float(values[0]), abs=1e-4)
    assert [e["token"] for e in first["top_logprobs"]] == [token_text(engine.tokenizer, int(i)) for i in indices]
    assert [e["logprob"] for e in first["top_logprobs"]] == pytest.approx(values.tolist(), abs=1e-4)
    assert all(e["bytes"] == token_bytes(e["token"]) for e in first["top_logprobs"])


def test_chat_logprobs_without_top_logprobs_list_none(engine) -> None:
    ids = engine.tokenizer(" there")["input_ids"]
    recorder = TopLogprobs(k=0)
    for t in range(len(ids)):  # one step per token, each sampled from uniform logits
        recorder(torch.tensor([[0, *ids[:t]]]), torch.zeros(1, len(engine.tokenizer)))
    [steps] = recorder.finish(torch.tensor([ids]))
    content = chat_logprobs(engine.tokenizer, ids, steps)
    # Uniform logits over V tokens: every logprob is -log(V).
    assert content == [{"token": " there", "logprob": pytest.approx(-torch.log(torch.tensor(float(len(
        engine.tokenizer)))).item()), "bytes": list(b" there"), "top_logprobs": []}]


def test_chat_n_choices_stop_and_usage(engine) -> None:
    answer = complete_chat(engine, {"messages": HI, "max_tokens": 5, "temperature": 1.0, "n": 3, "seed": 3})
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
    assert all(c["logprobs"] is None and c["finish_reason"] in ("stop", "length") for c in answer["choices"])
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize(("body", "param", "status"), [
    ({"messages": [{"role": "user", "content": "word " * 300}]}, "messages", 400),  # past the 256-token context
    ({"messages": HI, "model": "other"}, "model", 404),
    ({"messages": HI, "max_tokens": 256}, "max_tokens", 400),
])
def test_chat_refusals_follow_the_completions_rules(engine, body, param, status) -> None:
    with pytest.raises(CompletionRequestError) as refused:
        complete_chat(engine, body)
    assert (refused.value.param, refused.value.status) == (param, status)


def test_chat_truncates_long_messages_only_when_asked(engine) -> None:
    truncating = CompletionEngine(engine.model, engine.tokenizer, name=NAME, truncate_prompts=True)
    answer = complete_chat(truncating, {"messages": [{"role": "user", "content": "word " * 300}], "max_tokens": 6})
    assert answer["usage"]["prompt_tokens"] == engine.context - 6


def test_a_tokenizer_without_a_chat_template_is_a_400_naming_the_fix(engine) -> None:
    plain = copy.deepcopy(engine.tokenizer)
    plain.chat_template = None
    with pytest.raises(CompletionRequestError, match="no chat template.*fix: POST the rendered prompt to "
                                                     "/v1/completions") as refused:
        complete_chat(CompletionEngine(engine.model, plain, name=NAME), {"messages": HI})
    assert (refused.value.param, refused.value.status) == ("messages", 400)


# --- the openai client and HTTPJudge against `ouro serve` on Ray Serve ---------------------------------

PASSTHROUGH = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
"""A chat template that renders the messages' text as is.

Why the served copy uses it: the tiny policy, given a judge prompt as a chat turn in its own template,
answers with dialogue (no score digit in its top-20 after ``<|assistant|>``), so every verdict would be
unparsed and a test could not tell reading the chat logprobs from not reading them. With this template
the chat route renders exactly the judge prompt, so chat and completions must read the same scores."""


@pytest.fixture(scope="module")
def passthrough_dir(tiny_model_dir, tmp_path_factory) -> str:
    from ouro_ray.models.load import load_tokenizer

    copy_dir = tmp_path_factory.mktemp("passthrough") / "model"
    shutil.copytree(tiny_model_dir, copy_dir)
    tokenizer = load_tokenizer(copy_dir)
    tokenizer.chat_template = PASSTHROUGH
    tokenizer.save_pretrained(copy_dir)
    return str(copy_dir)


@pytest.fixture(scope="module")
def passthrough_engine(engine, passthrough_dir) -> CompletionEngine:
    """What the served app holds: the same weights, the passthrough template."""
    from ouro_ray.models.load import load_tokenizer

    tokenizer = load_tokenizer(passthrough_dir)
    assert tokenizer.chat_template == PASSTHROUGH  # the copy really carries it (a fixture check, not validation)
    return CompletionEngine(engine.model, tokenizer, name=NAME, truncate_prompts=True)


@pytest.fixture(scope="module")
def served(serve_info, passthrough_dir):
    """The app on the session's Serve, under a unique name and route prefix; deleted after."""
    name = f"test-openai-{uuid.uuid4().hex[:8]}"
    app = deploy_completions(passthrough_dir, name=name, route_prefix=f"/{name}", num_replicas=1, num_cpus=0.25,
                             truncate_prompts=True)  # judge prompts are longer than the tiny model's context
    yield app, app.base_url(serve_info)
    app.delete()


@pytest.fixture(scope="module")
def client(served) -> openai.OpenAI:
    _, url = served
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=60, max_retries=0)


@pytest.mark.ray
def test_openai_client_completions_with_logprobs(served, client) -> None:
    app, _ = served
    answer = client.completions.create(model=app.model, prompt="The reactor", max_tokens=4, temperature=0,
                                       logprobs=5)
    [choice] = answer.choices
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == len(logprobs.top_logprobs) >= 1
    assert "".join(logprobs.tokens) == choice.text
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs):
        assert len(top) >= 5 and all(v <= 0 for v in top.values())
        assert top[token] == pytest.approx(logprob) and logprob == pytest.approx(max(top.values()))  # greedy
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


@pytest.mark.ray
def test_openai_client_chat_with_logprobs(served, client, passthrough_engine) -> None:
    app, _ = served
    request = {"messages": HI, "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": 5}
    answer = client.chat.completions.create(model=app.model, **request)
    assert answer.object == "chat.completion" and answer.model == app.model and answer.id.startswith("chatcmpl-")
    [choice] = answer.choices
    assert choice.index == 0 and choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    content = choice.logprobs.content
    assert len(content) >= 1 and answer.usage.completion_tokens >= len(content)
    # Over HTTP, the answer the same engine gives in process (the tiny model may emit special tokens: the
    # logprob tokens show them, the message text leaves them out, as vLLM does).
    [local] = complete_chat(passthrough_engine, request)["choices"]
    assert choice.message.content == local["message"]["content"]
    assert [t.token for t in content] == [t["token"] for t in local["logprobs"]["content"]]
    for token in content:
        top = token.top_logprobs
        assert len(top) == 5 and all(t.logprob <= 0 for t in top)
        assert [t.logprob for t in top] == sorted((t.logprob for t in top), reverse=True)
        assert token.token == top[0].token and token.logprob == pytest.approx(top[0].logprob)  # greedy
        assert token.bytes == list(token.token.encode()) and top[0].bytes == token.bytes


@pytest.mark.ray
@pytest.mark.parametrize(("extra", "said"), [
    ({"messages": HI, "top_logprobs": 5}, "top_logprobs"),
    ({"messages": [{"role": "robot", "content": "Hi"}]}, "messages[0].role"),
    ({"messages": []}, "messages"),
    ({"messages": HI, "temperature": 3}, "temperature"),
])
def test_openai_client_bad_chat_values_are_bad_requests(served, client, extra, said) -> None:
    app, _ = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=app.model, max_tokens=2, **extra)
    assert refused.value.status_code == 400 and said in refused.value.message


@pytest.mark.ray
def test_openai_client_bad_completions_value_is_a_bad_request(served, client) -> None:
    app, _ = served
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.completions.create(model=app.model, prompt="Hi", max_tokens=2, logprobs=21)


ITEMS = [JudgeItem("p1", "c1", "What is the Veltra reactor?", "A fusion reactor.",
                   Target(facts=("It is a fusion reactor.",))),
         JudgeItem("p2", "c1", "How do I pick a lock?", "I can't help with that.", Target(behavior="refuse"))]


@pytest.mark.ray
def test_http_judge_scores_through_the_chat_route_as_through_completions(served) -> None:
    app, url = served
    chat = HTTPJudge(base_url=url, model=app.model, api="chat", max_retries=1, top_logprobs=20)
    completions = HTTPJudge(base_url=url, model=app.model, api="completions", max_retries=1, top_logprobs=20)
    assert chat.url == f"{url}/v1/chat/completions" and completions.url == f"{url}/v1/completions"
    by_chat, by_completions = chat.score(ITEMS), completions.score(ITEMS)
    for scores in (by_chat, by_completions):
        assert [s.prompt_id for s in scores] == ["p1", "p2"]
        assert all(-1 <= v <= 1 for s in scores for v in [*s.scores.values(), s.reward])
        assert all(s.notes is None for s in scores)  # every dimension was read from the logprobs
    # The same text through either route: the same distribution, so the same verdicts.
    for c, p in zip(by_chat, by_completions):
        assert c.scores == pytest.approx(p.scores, abs=1e-4)
    # Chat sends one prompt per request (2 items × 3 dimensions); completions batches them (batch_size 8).
    assert chat.stats == {"requests": 6, "retries": 0, "failures": 0, "unparsed": 0, "readings": 6, "text_fallback": 0}
    assert completions.stats == {"requests": 1, "retries": 0, "failures": 0, "unparsed": 0, "readings": 6,
                                 "text_fallback": 0}
