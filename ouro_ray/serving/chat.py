"""``ouro serve``'s chat route: OpenAI chat-completion requests in, ``chat.completion`` answers out.

Like :mod:`ouro_ray.serving.completions`, free of Ray and HTTP: :func:`parse_chat_request` checks a JSON
body, :func:`complete_chat` renders its messages with the model's chat template
(``apply_chat_template(messages, add_generation_prompt=True)``: the assistant's turn opened) and
answers with the same :class:`CompletionEngine` as ``/v1/completions``, under the same rules (sampling
settings, context limit, ``--truncate-prompts``; ``max_tokens``, or ``max_completion_tokens``, defaults
to 16 as there).

Logprobs come in the chat shape: ``choices[i].logprobs.content`` holds one
``{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}, …]}`` per generated token, the top-K
a list in descending order (``top_logprobs`` of the request is K; ``logprobs: true`` turns them on).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ouro_ray.serving.completions import CompletionEngine, Job, Sample, usage
from ouro_ray.serving.limits import ServeLimits
from ouro_ray.serving.parse import (
    DEFAULT_LIMITS,
    MAX_LOGPROBS,
    CompletionRequest,
    CompletionRequestError,
    check_fields,
    integer_field,
    sampling_fields,
)
from ouro_ray.serving.steps import TokenLogprobs
from ouro_ray.serving.tokens import token_bytes, token_text

ROLES = ("system", "user", "assistant")
"""The message roles this route takes."""
MESSAGE_FIELDS = ("role", "content", "name")
"""The fields a message may carry."""

_NEUTRAL = {
    "stream": (False, None), "stream_options": (None,), "logit_bias": (None, {}), "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0), "tools": (None, []), "tool_choice": (None, "none"),
    "response_format": (None, {"type": "text"}),
}
"""OpenAI chat fields accepted only at their neutral value: clients send them, this server does not implement them."""
_KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "logprobs",
          "top_logprobs", "stop", "seed", "user", *_NEUTRAL}


@dataclass(frozen=True)
class ChatRequest:
    """One validated chat request."""

    messages: tuple[Mapping[str, str], ...]
    """Each ``{role, content}`` (and ``name`` if sent), in order."""
    logprobs: bool = False
    """Whether choices carry ``logprobs.content``."""
    top_logprobs: int | None = None
    """K alternatives per generated token (needs ``logprobs``); None: none listed."""
    sampling: CompletionRequest = dataclasses.field(default_factory=lambda: CompletionRequest(prompts=()))
    """model, max_tokens, temperature, top_p, n, stop, seed; its prompt is filled in once the messages are rendered."""


# --- request validation: every error names the field, the value and the rule ------------------------


def parse_chat_request(body: Any, limits: ServeLimits = DEFAULT_LIMITS) -> ChatRequest:
    """The request in ``body`` (decoded JSON), or :class:`CompletionRequestError` naming the bad field."""
    if not isinstance(body, Mapping):
        raise CompletionRequestError(f"the body must be a JSON object, got {type(body).__name__}", None)
    check_fields(body, _KNOWN, _NEUTRAL)
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise CompletionRequestError(f"logprobs={logprobs!r} must be true or false (in chat, top_logprobs sets "
                                     "how many alternatives)", "logprobs")
    top_logprobs = integer_field(body, "top_logprobs", None, 0, MAX_LOGPROBS)
    if top_logprobs is not None and not logprobs:
        raise CompletionRequestError(f"top_logprobs={top_logprobs} needs logprobs: true; fix: send both, or "
                                     "leave top_logprobs out", "top_logprobs")
    return ChatRequest(messages=_messages(body.get("messages")), logprobs=bool(logprobs), top_logprobs=top_logprobs,
                       sampling=CompletionRequest(prompts=(), **sampling_fields(body, limits, _max_tokens_field(body))))


def _max_tokens_field(body: Mapping[str, Any]) -> str:
    """``max_completion_tokens`` (OpenAI's newer name) if sent, else ``max_tokens``; not both."""
    if body.get("max_completion_tokens") is None:
        return "max_tokens"
    if body.get("max_tokens") is not None:
        raise CompletionRequestError("max_tokens and max_completion_tokens are both set; fix: send one of them",
                                     "max_completion_tokens")
    return "max_completion_tokens"


def _messages(messages: Any) -> tuple[Mapping[str, str], ...]:
    if not isinstance(messages, list) or not messages:
        raise CompletionRequestError(f"messages must be a non-empty list of {{role, content}} objects, got "
                                     f"{str(messages)[:80]!r}", "messages")
    return tuple(_message(i, m) for i, m in enumerate(messages))


def _message(index: int, message: Any) -> Mapping[str, str]:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise CompletionRequestError(f"{where} must be an object with role and content, got {message!r:.80}", where)
    unknown = sorted(set(message) - set(MESSAGE_FIELDS))
    if unknown:
        raise CompletionRequestError(f"{where} has unknown field {unknown[0]!r}; a message takes "
                                     f"{', '.join(MESSAGE_FIELDS)}", f"{where}.{unknown[0]}")
    role, content, name = message.get("role"), message.get("content"), message.get("name")
    if not isinstance(role, str) or role not in ROLES:
        raise CompletionRequestError(f"{where}.role={role!r} must be one of {', '.join(ROLES)}", f"{where}.role")
    if not isinstance(content, str):
        raise CompletionRequestError(f"{where}.content must be a string (content parts and null content are not "
                                     f"supported), got {type(content).__name__}", f"{where}.content")
    if name is not None and not isinstance(name, str):
        raise CompletionRequestError(f"{where}.name={name!r} must be a string", f"{where}.name")
    return {"role": role, "content": content} | ({"name": name} if name is not None else {})


# --- rendering and answering --------------------------------------------------------------------------


def render_messages(tokenizer, messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text the chat template makes of ``messages``, the assistant's turn opened."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        raise CompletionRequestError(
            "this model's tokenizer has no chat template, so messages cannot be rendered; fix: POST the rendered "
            "prompt to /v1/completions, or serve a model directory whose tokenizer_config.json sets chat_template",
            "messages")
    try:
        return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    except TemplateError as exc:  # the template's raise_exception: e.g. a role order it does not take
        raise CompletionRequestError(f"the model's chat template refused the messages: {exc}", "messages") from exc


def complete_chat(engine: CompletionEngine, request: ChatRequest | Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` answer; :class:`CompletionRequestError` for a request it refuses."""
    if not isinstance(request, ChatRequest):
        request = parse_chat_request(request)
    return engine.run(prepare_chat(engine, request))


def prepare_chat(engine: CompletionEngine, request: ChatRequest) -> Job:
    """The chat request checked against the engine's model (name, template, context) and tokenized, ready to run."""
    engine.check_model(request.sampling.model)
    k = request.top_logprobs or 0
    sampling = dataclasses.replace(request.sampling, prompts=(render_messages(engine.tokenizer, request.messages),),
                                   logprobs=k if request.logprobs else None)
    # The template already carries the special tokens (bos, role markers): the tokenizer must not add them again.
    rows = engine.encode(sampling, add_special_tokens=False, field="messages")
    return Job(rows, sampling, lambda rows, samples: _answer(engine, rows, samples))


def _answer(engine: CompletionEngine, rows: list[list[int]], samples: list[Sample]) -> dict[str, Any]:
    choices = [_choice(engine, index, sample) for index, sample in enumerate(samples)]
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": engine.name, "choices": choices, "usage": usage(rows, samples)}


def _choice(engine: CompletionEngine, index: int, sample: Sample) -> dict[str, Any]:
    logprobs = None if sample.logprobs is None else {
        "content": chat_logprobs(engine.tokenizer, sample.ids, sample.logprobs), "refusal": None}
    return {"index": index, "message": {"role": "assistant", "content": engine.decode(sample.ids)},
            "finish_reason": sample.finish_reason, "logprobs": logprobs}


def chat_logprobs(tokenizer, ids: Sequence[int], logprobs: TokenLogprobs) -> list[dict[str, Any]]:
    """``logprobs.content``: each token with its logprob, bytes and top-K, descending."""
    return [_entry(token_text(tokenizer, token), logprob)
            | {"top_logprobs": [_entry(token_text(tokenizer, alt), value) for alt, value in alternatives]}
            for token, logprob, alternatives in zip(ids, logprobs.chosen, logprobs.top)]


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": token_bytes(token)}
