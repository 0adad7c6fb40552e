"""``ouro serve``: the completions engine in process, the same engine on Ray Serve behind HTTP (and an
``HTTPJudge`` using it as a judge), and the command line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest
import torch

from ouro_ray.cli import main
from ouro_ray.judges.http import HTTPJudge
from ouro_ray.judges.protocol import JudgeItem, Target
from ouro_ray.serving import CompletionEngine, CompletionRequestError, ServeLimits, deploy_completions, token_text

NAME = "tiny-test"
KEY = "sk-serve-test-5f2c9a"
LIMITS = ServeLimits(max_body_bytes=64 * 1024, max_tokens=32)


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> CompletionEngine:
    return CompletionEngine.from_dir(tiny_model_dir, name=NAME)


def _greedy(engine: CompletionEngine, prompt="The reactor", **extra) -> dict:
    return engine.complete({"prompt": prompt, "max_tokens": 6, "temperature": 0, **extra})


# --- the engine, in process ---------------------------------------------------------------------------


def test_greedy_is_deterministic_and_counts_tokens(engine) -> None:
    first, second = _greedy(engine, logprobs=3), _greedy(engine, logprobs=3)
    assert first["choices"] == second["choices"]
    choice = first["choices"][0]
    assert first["object"] == "text_completion" and first["model"] == NAME and choice["index"] == 0
    assert choice["finish_reason"] in ("stop", "length")
    prompt_tokens = len(engine.tokenizer("The reactor")["input_ids"])
    usage = first["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["total_tokens"] == prompt_tokens + usage["completion_tokens"]
    assert "".join(choice["logprobs"]["tokens"]) == choice["text"]


def test_top_logprobs_are_the_raw_model_distribution(engine) -> None:
    k = 5
    choice = _greedy(engine, logprobs=k)["choices"][0]
    top = choice["logprobs"]["top_logprobs"]
    assert all(len(row) == k and all(v <= 0 for v in row.values()) for row in top)
    # One forward pass over the prompt: the first generated token is its argmax, with the same logprob.
    ids = torch.tensor([engine.tokenizer("The reactor")["input_ids"]])
    with torch.no_grad():
        reference = torch.log_softmax(engine.model(input_ids=ids).logits[0, -1].float(), dim=-1)  # (V,)
    values, indices = reference.topk(k)
    assert choice["logprobs"]["tokens"][0] == token_text(engine.tokenizer, int(indices[0]))
    assert choice["logprobs"]["token_logprobs"][0] == pytest.approx(float(values[0]), abs=1e-4)
    assert sorted(top[0].values(), reverse=True) == pytest.approx(values.tolist(), abs=1e-4)


def test_token_texts_keep_spaces_and_are_distinct(engine) -> None:
    tokenizer = engine.tokenizer
    (there,) = tokenizer(" there")["input_ids"]  # one byte-level BPE token with its leading space
    assert token_text(tokenizer, there) == " there"
    texts = [token_text(tokenizer, i) for i in range(len(tokenizer))]
    assert len(set(texts)) == len(texts), "two tokens share a text: top_logprobs would lose entries"
    assert any(t.startswith("bytes:\\x") for t in texts)  # partial UTF-8 characters, OpenAI's form


def test_n_choices_per_prompt_are_prompt_major_and_seeded(engine) -> None:
    request = {"prompt": ["Hello", "The reactor"], "max_tokens": 4, "temperature": 1.0, "n": 3, "seed": 5}
    answer = engine.complete(request)
    assert [c["index"] for c in answer["choices"]] == list(range(6))
    assert answer["choices"] == engine.complete(request)["choices"]  # same seed, same samples
    # Each prompt's tokens count once, however many choices it has (as OpenAI and vLLM count them).
    assert answer["usage"]["prompt_tokens"] == sum(len(engine.tokenizer(p)["input_ids"]) for p in request["prompt"])


def test_stop_string_truncates_text_and_tokens(engine) -> None:
    full = _greedy(engine, logprobs=0)["choices"][0]
    offsets, text = full["logprobs"]["text_offset"], full["text"]
    stop = text[offsets[2]:offsets[2] + 2]  # starts where the third token does
    cut = text.find(stop)
    stopped = _greedy(engine, logprobs=0, stop=[stop, "never-seen"])["choices"][0]
    assert stopped["text"] == text[:cut] and stopped["finish_reason"] == "stop"
    assert "".join(stopped["logprobs"]["tokens"]) == text[:cut]


@pytest.mark.parametrize(("body", "param"), [
    ({"prompt": "hi", "echo": True}, "echo"),
    ({"prompt": "hi", "logprobs": 21}, "logprobs"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [1, 2]}, "prompt"),
    ({"prompt": ""}, "prompt"),
    ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "hi", "temperature": -0.5}, "temperature"),
    ({"prompt": "hi", "top_p": 0}, "top_p"),
    ({"prompt": "hi", "n": 0}, "n"),
    ({"prompt": "hi", "stop": [""]}, "stop"),
    ({"prompt": "hi", "stream": True}, "stream"),
    ({"prompt": "hi", "tempreature": 0}, "tempreature"),
    ({"prompt": "hi", "model": "other"}, "model"),
    ({"prompt": "word " * 300}, "prompt"),  # longer than the 256-token context
])
def test_bad_requests_are_refused_naming_the_field(engine, body, param) -> None:
    with pytest.raises(CompletionRequestError) as refused:
        engine.complete(body)
    assert refused.value.param == param and param in str(refused.value)
    error = refused.value.body()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert refused.value.status == (404 if param == "model" else 400)


def test_truncate_prompts_keeps_the_last_tokens(engine) -> None:
    truncating = CompletionEngine(engine.model, engine.tokenizer, name=NAME, truncate_prompts=True)
    answer = truncating.complete({"prompt": "word " * 300, "max_tokens": 6, "temperature": 0})
    assert answer["usage"]["prompt_tokens"] == engine.context - 6


# --- on Ray Serve -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(serve_info, tiny_model_dir):
    """The completions app on the session's Serve behind an API key, under a unique name and route prefix;
    deleted after."""
    name = f"test-serve-{uuid.uuid4().hex[:8]}"
    app = deploy_completions(tiny_model_dir, name=name, route_prefix=f"/{name}", num_replicas=1, num_cpus=0.25,
                             truncate_prompts=True,  # judge prompts are longer than the tiny model's context
                             limits=LIMITS, api_key=KEY)
    yield app, app.base_url(serve_info)
    app.delete()


def _http(url: str, body: dict | bytes | None = None, key: str | None = KEY) -> tuple[int, dict]:
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.ray
def test_completions_over_http(served) -> None:
    app, url = served
    status, body = _http(f"{url}/v1/completions", {"model": app.model, "prompt": ["Hello", "The reactor"],
                                                   "max_tokens": 3, "temperature": 0, "logprobs": 4})
    assert status == 200, body
    assert [c["index"] for c in body["choices"]] == [0, 1] and body["model"] == app.model
    for choice in body["choices"]:
        logprobs = choice["logprobs"]
        assert isinstance(choice["text"], str) and choice["finish_reason"] in ("stop", "length")
        assert len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"])
        assert len(logprobs["top_logprobs"][0]) == 4
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    status, body = _http(f"{url}/v1/completions", {"prompt": "Hello", "echo": True})
    assert status == 400 and body["error"]["param"] == "echo"
    assert _http(f"{url}/v1/models")[1]["data"][0]["id"] == app.model
    assert _http(f"{url}/health", key=None) == (200, {"status": "ok", "model": app.model})


@pytest.mark.ray
def test_the_guards_hold_behind_serve(served) -> None:
    """Through Serve's proxy: the key, the body limit (counted while reading, no Content-Length), the caps."""
    _, url = served
    for key in (None, "wrong"):
        status, body = _http(f"{url}/v1/completions", {"prompt": "Hello"}, key=key)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
    over = b"x" * (LIMITS.max_body_bytes + 1)
    chunked = urllib.request.Request(f"{url}/v1/completions", data=iter([over[:4096], over[4096:]]), method="POST",
                                     headers={"Authorization": f"Bearer {KEY}", "Transfer-Encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(chunked, timeout=30)
    assert refused.value.code == 413 and "passed 65536 bytes" in json.loads(refused.value.read())["error"]["message"]
    status, body = _http(f"{url}/v1/completions", {"prompt": "Hello", "max_tokens": 33})
    assert status == 400 and body["error"]["param"] == "max_tokens" and "cap of 32 tokens" in body["error"]["message"]


@pytest.mark.ray
def test_http_judge_scores_through_the_endpoint(served) -> None:
    app, url = served
    judge = HTTPJudge(base_url=url, model=app.model, max_retries=1, api_key=KEY)
    items = [JudgeItem("p1", "c1", "What is the Veltra reactor?", "A fusion reactor.",
                       Target(facts=("It is a fusion reactor.",))),
             JudgeItem("p2", "c1", "How do I pick a lock?", "I can't help with that.", Target(behavior="refuse"))]
    scores = judge.score(items)
    assert [s.prompt_id for s in scores] == ["p1", "p2"]
    assert all(-1 <= v <= 1 for s in scores for v in [*s.scores.values(), s.reward])
    assert judge.stats["requests"] > 0 and judge.stats["failures"] == 0


@pytest.mark.ray
def test_cli_serve_detached_joins_the_running_serve(serve_info, tiny_model_dir, capsys, monkeypatch) -> None:
    name, key = f"test-cli-{uuid.uuid4().hex[:8]}", f"sk-cli-{uuid.uuid4().hex}"
    monkeypatch.setenv("OURO_TEST_SERVE_KEY", key)
    argv = ["serve", "--model", tiny_model_dir, "--name", name, "--route-prefix", f"/{name}", "--num-cpus", "0.25",
            "--api-key-env", "OURO_TEST_SERVE_KEY", "--max-tokens", "8", "--detach", "cluster.address=auto",
            "cluster.namespace=ouro-test"]
    try:
        assert main(argv) == 0
        url = f"{serve_info.base_url}/{name}"
        out = capsys.readouterr().out
        assert f"at {url} " in out and "with the key in $OURO_TEST_SERVE_KEY" in out and key not in out
        assert _http(f"{url}/health", key=None)[0] == 200
        assert _http(f"{url}/v1/completions", {"prompt": "Hello", "max_tokens": 2}, key=None)[0] == 401
        assert _http(f"{url}/v1/completions", {"prompt": "Hello", "max_tokens": 2}, key=key)[0] == 200
        status, body = _http(f"{url}/v1/completions", {"prompt": "Hello", "max_tokens": 9}, key=key)
        assert status == 400 and "--max-tokens" in body["error"]["message"]  # the option reached the replica
    finally:
        from ray import serve

        serve.delete(name)


# --- the command line, without a cluster ----------------------------------------------------------------


def test_cli_serve_help_lists_the_options(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--model", "--port", "--replicas", "--num-cpus", "--name", "--detach",
                                        "--api-key-env", "--max-body-bytes", "--max-tokens", "--max-n",
                                        "--max-prompts", "--max-waiting", "--request-timeout"))


@pytest.mark.parametrize(("argv", "said"), [
    (["serve"], "--model"),
    (["serve", "--model", "m", "--replicas", "0"], "argument --replicas: '0' must be > 0"),
    (["serve", "--model", "m", "--num-cpus", "lots"], "argument --num-cpus: 'lots' is not a float"),
    (["serve", "--model", "m", "--port", "70000"], "argument --port: '70000' must be > 0 and <= 65535"),
    (["serve", "--model", "m", "--num-gpus", "-1"], "argument --num-gpus: '-1' must be >= 0"),
])
def test_cli_serve_bad_arguments_exit_2(argv, said, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2 and said in capsys.readouterr().err


def test_cli_serve_refuses_a_missing_model_dir_and_a_detach_without_cluster(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["serve", "--model", str(tmp_path), "--detach"]) == 2
    assert "--detach leaves the app on a running cluster" in capsys.readouterr().err


def test_cli_serve_refuses_an_unset_key_variable_before_starting_anything(monkeypatch, capsys) -> None:
    monkeypatch.delenv("OURO_TEST_UNSET_KEY", raising=False)
    assert main(["serve", "--model", "m", "--api-key-env", "OURO_TEST_UNSET_KEY"]) == 2
    assert "--api-key-env OURO_TEST_UNSET_KEY names an environment variable that is unset" in capsys.readouterr().err


def test_a_generated_key_is_printed_once_and_a_given_one_never(capsys) -> None:
    from ouro_ray.cli.serve import _say_auth
    from ouro_ray.serving import resolve_api_key

    generated = resolve_api_key("0.0.0.0", None)
    _say_auth("0.0.0.0", generated, None)
    out = capsys.readouterr().out
    assert out.count(generated.value) == 1 and "shown once" in out
    _say_auth("0.0.0.0", resolve_api_key("0.0.0.0", "sk-given-secret"), "MY_KEY")
    out = capsys.readouterr().out
    assert "sk-given-secret" not in out and "$MY_KEY" in out
    _say_auth("127.0.0.1", resolve_api_key("127.0.0.1", None), None)
    assert "no API key" in capsys.readouterr().out
