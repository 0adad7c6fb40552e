"""The model behind ``ouro serve``: OpenAI-style completions requests in, completions answers out.

Kept free of Ray and HTTP so it can be built and called in a test: :func:`parse_request` checks a JSON
body and :class:`CompletionEngine` answers it with an HF causal LM. The chat route
(:mod:`ouro_ray.serving.chat`) renders its messages with the chat template and runs the same engine;
token texts and logprob tables live in :mod:`ouro_ray.serving.tokens`; the Serve glue in
:mod:`ouro_ray.serving.app`.

Completions take the prompt as plain text (``tokenizer(prompt)``, the tokenizer's own special-token
default, no chat template), because a judge's prompt already is the exact text the model must continue
(see :mod:`ouro_ray.judges.http`).

Logprobs are those of the raw model distribution (``log_softmax`` of the logits, before temperature or
top-p), as vLLM and the OpenAI API report them, so a judge reads the same probabilities whatever
sampling settings it sends. Notation: ``S = prompts × n`` sequences, ``T`` generated steps, ``V`` vocab.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ouro_ray.serving.tokens import logprob_table, token_text

MAX_LOGPROBS = 20
"""Largest ``logprobs`` (top-K) a request may ask for (vLLM's and OpenAI's default cap)."""
MAX_N = 16
"""Most choices per prompt."""
MAX_SEQUENCES = 256
"""Most sequences (prompts × n) in one request: one ``generate`` call holds them all in memory."""
MAX_STOP = 4
"""Most stop strings (the OpenAI limit)."""

_NEUTRAL = {
    "stream": (False, None), "suffix": (None,), "best_of": (None, 1), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0), "echo": (False, None),
}
"""OpenAI fields accepted only at their neutral value: clients send them, this server does not implement them."""
_KNOWN = {"model", "prompt", "max_tokens", "temperature", "top_p", "n", "logprobs", "stop", "seed", "user", *_NEUTRAL}


class CompletionRequestError(ValueError):
    """A request this server refuses; ``param`` names the field, ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, param: str | None, *, status: int = 400,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.param, self.status, self.kind = param, status, kind

    def body(self) -> dict[str, Any]:
        """The OpenAI error object, so clients (``HTTPJudge``, the openai SDK) show the message."""
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": None}}


@dataclass(frozen=True)
class CompletionRequest:
    """One validated completions request (the OpenAI fields this server implements)."""

    prompts: tuple[str, ...]
    model: str | None = None
    max_tokens: int = 16
    temperature: float = 1.0
    """0: greedy decoding."""
    top_p: float = 1.0
    n: int = 1
    logprobs: int | None = None
    """Top-K alternatives per generated token; None: no logprobs in the answer."""
    stop: tuple[str, ...] = ()
    seed: int | None = None


# --- request validation: every error names the field, the value and the rule ------------------------


def parse_request(body: Any) -> CompletionRequest:
    """The request in ``body`` (decoded JSON), or :class:`CompletionRequestError` naming the bad field."""
    if not isinstance(body, Mapping):
        raise CompletionRequestError(f"the body must be a JSON object, got {type(body).__name__}", None)
    check_fields(body, _KNOWN, _NEUTRAL)
    return CompletionRequest(prompts=_prompts(body.get("prompt")),
                             logprobs=integer_field(body, "logprobs", None, 0, MAX_LOGPROBS),
                             **sampling_fields(body))


def sampling_fields(body: Mapping[str, Any], max_tokens_field: str = "max_tokens") -> dict[str, Any]:
    """The fields both routes share (model and sampling settings), checked; keyed as in :class:`CompletionRequest`."""
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise CompletionRequestError(f"model={model!r} must be a string", "model")
    return dict(model=model, max_tokens=integer_field(body, max_tokens_field, 16, 1, None),
                temperature=number_field(body, "temperature", 1.0, 0.0, 2.0),
                top_p=number_field(body, "top_p", 1.0, 0.0, 1.0, open_low=True),
                n=integer_field(body, "n", 1, 1, MAX_N),
                stop=stop_field(body.get("stop")), seed=integer_field(body, "seed", None, 0, 2**63 - 1))


def check_fields(body: Mapping[str, Any], known: set[str], neutral: Mapping[str, tuple]) -> None:
    """Refuse a field outside ``known``, or a ``neutral`` one (a field this server does not implement) off its
    neutral value."""
    unknown = sorted(set(body) - known)
    if unknown:
        raise CompletionRequestError(f"unknown field {unknown[0]!r}; this server reads {sorted(known)}", unknown[0])
    for field, values in neutral.items():
        value = body.get(field)
        if not any(value == v and type(value) is type(v) for v in values):
            raise CompletionRequestError(
                f"{field}={json.dumps(value, default=repr)} is not supported by this server; fix: leave {field} out "
                f"(accepted: {', '.join(json.dumps(v) for v in values)})", field)


def _prompts(prompt: Any) -> tuple[str, ...]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise CompletionRequestError(
            f"prompt must be a string or a non-empty list of strings (token-id prompts are not supported), "
            f"got {str(prompt)[:80]!r}", "prompt")
    return tuple(prompts)


def stop_field(stop: Any) -> tuple[str, ...]:
    """``stop`` as a tuple of strings: one string, a list of at most :data:`MAX_STOP`, or none."""
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise CompletionRequestError(f"stop={stop!r} must be a non-empty string or a list of at most {MAX_STOP}",
                                     "stop")
    return tuple(stops)


def integer_field(body: Mapping[str, Any], field: str, default: int | None, low: int,
                  high: int | None) -> int | None:
    """``body[field]``, an integer in ``[low, high]`` (no upper bound when ``high`` is None), or ``default``."""
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise CompletionRequestError(f"{field}={value!r} must be an integer {rule}", field)
    return value


def number_field(body: Mapping[str, Any], field: str, default: float, low: float, high: float,
                 open_low: bool = False) -> float:
    """``body[field]``, a finite number in ``[low, high]`` (``(low, high]`` when ``open_low``), or ``default``."""
    value = body.get(field)
    if value is None:
        return default
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (open_low and value == low):
        raise CompletionRequestError(
            f"{field}={value!r} must be a number {'>' if open_low else '>='} {low} and <= {high}", field)
    return float(value)


# --- the engine ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One generated sequence: its kept tokens, why it ended, the tokens usage counts, its raw logits."""

    ids: list[int]
    finish_reason: str
    """'stop' (EOS or a stop string) or 'length' (``max_tokens``)."""
    counted: int
    """Completion tokens it counts in usage (a trailing EOS counts, though it is not shown)."""
    logits: torch.Tensor | None
    """(T, V) raw logits of the kept tokens; None when no logprobs were asked for."""


def usage(rows: Sequence[Sequence[int]], samples: Sequence[Sample]) -> dict[str, int]:
    """OpenAI's ``usage``: each prompt counts once, however many choices it has (as OpenAI and vLLM count)."""
    prompt_tokens, completion_tokens = sum(len(r) for r in rows), sum(s.counted for s in samples)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class CompletionEngine:
    """Answers completions requests with one HF causal LM (``model`` in eval mode) and its tokenizer."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, name: str, truncate_prompts: bool = False):
        """``truncate_prompts``: keep a too-long prompt's last tokens instead of refusing it (the end of a
        judge prompt holds the question); off by default, since it changes what the model reads."""
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.truncate_prompts = truncate_prompts
        eos = model.generation_config.eos_token_id
        eos = tokenizer.eos_token_id if eos is None else eos
        self.eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        self.context = getattr(model.config, "max_position_embeddings", None)
        self.created = int(time.time())
        self._lock = threading.Lock()  # one generate at a time: seeding is global, and CPU cores are shared

    @classmethod
    def from_dir(cls, model_dir: Path | str, *, name: str, dtype: str = "float32", device: str = "cpu",
                 truncate_prompts: bool = False) -> "CompletionEngine":
        """The engine over an HF model directory (frozen, eval mode, left padding)."""
        from ouro_ray.models.load import load_causal_lm

        model, tokenizer = load_causal_lm(model_dir, dtype=dtype, device=device)
        return cls(model, tokenizer, name=name, truncate_prompts=truncate_prompts)

    def model_card(self) -> dict[str, Any]:
        """This model's entry in ``GET /v1/models``."""
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "ouro-ray",
                "max_model_len": self.context}

    def complete(self, request: CompletionRequest | Mapping[str, Any]) -> dict[str, Any]:
        """The OpenAI ``text_completion`` answer; :class:`CompletionRequestError` for a request it refuses."""
        if not isinstance(request, CompletionRequest):
            request = parse_request(request)
        self.check_model(request.model)
        rows = self.encode(request)
        samples = self.sample(rows, request)
        choices = [self._choice(s, sample, request.logprobs) for s, sample in enumerate(samples)]
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices, "usage": usage(rows, samples)}

    def check_model(self, model: str | None) -> None:
        """A 404 unless ``model`` (the request's) is None or the name served here."""
        if model is not None and model != self.name:
            raise CompletionRequestError(f"model {model!r} is not served here; this server serves {self.name!r}",
                                         "model", status=404)

    def encode(self, request: CompletionRequest, *, add_special_tokens: bool = True,
               field: str = "prompt") -> list[list[int]]:
        """Each prompt's token ids, checked against the context window (or left-truncated into it).

        ``add_special_tokens=False`` for text a chat template rendered (it already carries them);
        ``field`` is the request field an error names.
        """
        if len(request.prompts) * request.n > MAX_SEQUENCES:
            raise CompletionRequestError(f"{len(request.prompts)} prompts × n={request.n} exceeds "
                                         f"{MAX_SEQUENCES} sequences per request; fix: split the request", field)
        if self.context is not None and request.max_tokens >= self.context:
            raise CompletionRequestError(f"max_tokens={request.max_tokens} leaves no room for a prompt in the "
                                         f"model's context of {self.context} tokens", "max_tokens")
        encoded = self.tokenizer(list(request.prompts), add_special_tokens=add_special_tokens)["input_ids"]
        return [self._fit(i, list(row), request.max_tokens, field) for i, row in enumerate(encoded)]

    def _fit(self, index: int, row: list[int], max_tokens: int, field: str) -> list[int]:
        what = f"prompt {index}" if field == "prompt" else f"the rendered {field}"
        if not row:
            raise CompletionRequestError(f"{what} is empty after tokenization; send some text", field)
        room = None if self.context is None else self.context - max_tokens
        if room is None or len(row) <= room:
            return row
        if self.truncate_prompts:
            return row[-room:]
        raise CompletionRequestError(
            f"{what} has {len(row)} tokens and max_tokens={max_tokens}: {len(row) + max_tokens} > the model's "
            f"context of {self.context} tokens; fix: shorten the {field}, lower max_tokens, or serve with "
            "--truncate-prompts (keeps the prompt's last tokens)", field)

    def sample(self, rows: list[list[int]], request: CompletionRequest) -> list[Sample]:
        """``request.n`` samples per row, prompt-major, each cut at EOS or a stop string."""
        with self._lock:
            generated, logits = self._generate(rows, request)
        samples = []
        for s in range(generated.shape[0]):
            ids, finish, counted = self._cut(generated[s].tolist(), request.stop)
            samples.append(Sample(ids, finish, counted, None if logits is None else logits[: len(ids), s]))
        return samples

    def _generate(self, rows: list[list[int]], request: CompletionRequest) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(S, T) generated ids (prompt-major, n per prompt) and, when logprobs are asked for, (T, S, V) raw logits."""
        from ouro_ray.rollout.transformers_backend import left_pad

        device = next(self.model.parameters()).device
        ids, mask = left_pad(rows, self.tokenizer.pad_token_id)  # (B, P)
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if request.seed is not None:
                torch.manual_seed(request.seed)
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.long().to(device),
                                      **self._sampling(request))
        generated = out.sequences[:, ids.shape[1]:].cpu()  # (S, T)
        logits = torch.stack(out.logits).float().cpu() if request.logprobs is not None else None  # (T, S, V)
        return generated, logits

    def _sampling(self, request: CompletionRequest) -> dict[str, Any]:
        """``generate`` settings for exactly the requested distribution.

        Why the explicit neutral values: the model directory's generation config (``top_k``,
        ``repetition_penalty``) and transformers' defaults (``top_k=50``) would otherwise reshape it.
        """
        settings = dict(max_new_tokens=request.max_tokens, num_return_sequences=request.n, num_beams=1,
                        eos_token_id=self.eos_ids or None, pad_token_id=self.tokenizer.pad_token_id,
                        repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
                        output_logits=request.logprobs is not None, return_dict_in_generate=True, use_cache=True)
        if request.temperature == 0.0:
            return settings | dict(do_sample=False, temperature=1.0, top_p=1.0)
        return settings | dict(do_sample=True, temperature=request.temperature, top_p=request.top_p, top_k=0)

    # --- answers ---------------------------------------------------------------------------------------

    def _choice(self, index: int, sample: Sample, k: int | None) -> dict[str, Any]:
        """One completions choice; ``index`` is the sequence's place (prompt-major, n per prompt)."""
        logprobs = None if sample.logits is None else self._logprobs(sample.ids, sample.logits, k or 0)
        return {"index": index, "text": self.decode(sample.ids), "logprobs": logprobs,
                "finish_reason": sample.finish_reason}

    def _cut(self, ids: list[int], stops: Sequence[str]) -> tuple[list[int], str, int]:
        """(the choice's tokens, its finish_reason, the tokens it counts in usage).

        Ends at the first EOS (counted in usage, not shown), else at ``max_tokens``; then at the first
        stop string: the text ends before it, and only tokens that add text before it are kept.
        """
        end = next((t for t, i in enumerate(ids) if i in self.eos_ids), None)
        if end is not None:
            ids, finish, count = ids[:end], "stop", end + 1
        else:
            finish, count = "length", len(ids)
        text = self.decode(ids)
        found = [text.find(s) for s in stops if s in text]
        if not found:
            return ids, finish, count
        cut, kept = min(found), 0
        while kept < len(ids) and len(self.decode(ids[:kept])) < cut:
            kept += 1
        return ids[:kept], "stop", kept

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _logprobs(self, ids: list[int], logits: torch.Tensor, k: int) -> dict[str, Any]:
        """OpenAI's legacy logprobs object from (T, V) raw logits: tokens, logprobs, top-K, text offsets."""
        chosen, top = logprob_table(ids, logits, k)  # (T,), (T, K)
        tokens = [token_text(self.tokenizer, i) for i in ids]
        top_rows = []
        for t, token in enumerate(tokens):
            row: dict[str, float] = {}
            for index, value in top[t]:
                row.setdefault(token_text(self.tokenizer, index), value)  # descending: keep the highest
            row.setdefault(token, chosen[t])  # the sampled token is always listed (OpenAI)
            top_rows.append(row)
        offsets = [len(self.decode(ids[:t])) for t in range(len(ids))]
        return {"tokens": tokens, "token_logprobs": chosen, "top_logprobs": top_rows, "text_offset": offsets}
