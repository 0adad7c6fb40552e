"""The model behind ``ouro serve``: OpenAI-style completions requests in, completions answers out.

Kept free of Ray and HTTP so it can be built and called in a test: :func:`parse_request` checks a JSON
body and :class:`CompletionEngine` answers it with an HF causal LM. The Serve glue lives in
:mod:`ouro_ray.serving.app`.

Completions, not chat: the prompt is tokenized as plain text (``tokenizer(prompt)``, the tokenizer's
own special-token default, no chat template), because a judge's prompt already is the exact text the
model must continue (see :mod:`ouro_ray.judges.http`).

Logprobs are those of the raw model distribution (``log_softmax`` of the logits, before temperature or
top-p), as vLLM and the OpenAI API report them, so a judge reads the same probabilities whatever
sampling settings it sends. Notation: ``S = prompts × n`` sequences, ``T`` generated steps, ``V`` vocab.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

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
    _check_fields(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise CompletionRequestError(f"model={model!r} must be a string", "model")
    return CompletionRequest(
        prompts=_prompts(body.get("prompt")), model=model,
        max_tokens=_integer(body, "max_tokens", 16, 1, None), temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, open_low=True), n=_integer(body, "n", 1, 1, MAX_N),
        logprobs=_integer(body, "logprobs", None, 0, MAX_LOGPROBS), stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", None, 0, 2**63 - 1),
    )


def _check_fields(body: Mapping[str, Any]) -> None:
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise CompletionRequestError(f"unknown field {unknown[0]!r}; this server reads {sorted(_KNOWN)}", unknown[0])
    for field, neutral in _NEUTRAL.items():
        value = body.get(field)
        if not any(value == v and type(value) is type(v) for v in neutral):
            raise CompletionRequestError(
                f"{field}={json.dumps(value, default=repr)} is not supported by this server; fix: leave {field} out "
                f"(accepted: {', '.join(json.dumps(v) for v in neutral)})", field)


def _prompts(prompt: Any) -> tuple[str, ...]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise CompletionRequestError(
            f"prompt must be a string or a non-empty list of strings (token-id prompts are not supported), "
            f"got {str(prompt)[:80]!r}", "prompt")
    return tuple(prompts)


def _stop(stop: Any) -> tuple[str, ...]:
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise CompletionRequestError(f"stop={stop!r} must be a non-empty string or a list of at most {MAX_STOP}",
                                     "stop")
    return tuple(stops)


def _integer(body: Mapping[str, Any], field: str, default: int | None, low: int, high: int | None) -> int | None:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise CompletionRequestError(f"{field}={value!r} must be an integer {rule}", field)
    return value


def _number(body: Mapping[str, Any], field: str, default: float, low: float, high: float,
            open_low: bool = False) -> float:
    value = body.get(field)
    if value is None:
        return default
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (open_low and value == low):
        raise CompletionRequestError(
            f"{field}={value!r} must be a number {'>' if open_low else '>='} {low} and <= {high}", field)
    return float(value)


# --- token text -------------------------------------------------------------------------------------

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, char → byte (the map byte-level BPE vocabularies are written in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


_BYTE_LEVEL = _byte_level_decoder()


def token_text(tokenizer, token_id: int) -> str:
    """The text one token adds (``" 3"`` stays ``" 3"``); ``"bytes:\\xe2\\x80"`` for part of a UTF-8 character.

    Why the ``bytes:`` form (OpenAI's): decoding a partial character alone gives ``"\\ufffd"``, so
    distinct tokens would share a key in ``top_logprobs`` and a client would see fewer than K entries.
    """
    text = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(token_id)
    match = _BYTE_TOKEN.fullmatch(raw)
    if match:
        return f"bytes:\\x{match.group(1).lower()}"
    if all(ch in _BYTE_LEVEL for ch in raw):
        return "bytes:" + "".join(f"\\x{_BYTE_LEVEL[ch]:02x}" for ch in raw)
    return raw


# --- the engine ---------------------------------------------------------------------------------------


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
        if request.model is not None and request.model != self.name:
            raise CompletionRequestError(f"model {request.model!r} is not served here; this server serves "
                                         f"{self.name!r}", "model", status=404)
        rows = self._encode(request)
        with self._lock:
            generated, logits = self._generate(rows, request)
        choices = self._choices(generated, logits, request)
        prompt_tokens = sum(len(r) for r in rows)
        completion_tokens = sum(c.pop("_tokens") for c in choices)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    def _encode(self, request: CompletionRequest) -> list[list[int]]:
        """Each prompt's token ids, checked against the context window (or left-truncated into it)."""
        if len(request.prompts) * request.n > MAX_SEQUENCES:
            raise CompletionRequestError(f"{len(request.prompts)} prompts × n={request.n} exceeds "
                                         f"{MAX_SEQUENCES} sequences per request; fix: split the request", "prompt")
        if self.context is not None and request.max_tokens >= self.context:
            raise CompletionRequestError(f"max_tokens={request.max_tokens} leaves no room for a prompt in the "
                                         f"model's context of {self.context} tokens", "max_tokens")
        rows = [list(ids) for ids in self.tokenizer(list(request.prompts))["input_ids"]]
        return [self._fit(i, row, request.max_tokens) for i, row in enumerate(rows)]

    def _fit(self, index: int, row: list[int], max_tokens: int) -> list[int]:
        if not row:
            raise CompletionRequestError(f"prompt {index} is empty after tokenization; send some text", "prompt")
        room = None if self.context is None else self.context - max_tokens
        if room is None or len(row) <= room:
            return row
        if self.truncate_prompts:
            return row[-room:]
        raise CompletionRequestError(
            f"prompt {index} has {len(row)} tokens and max_tokens={max_tokens}: {len(row) + max_tokens} > the "
            f"model's context of {self.context} tokens; fix: shorten the prompt, lower max_tokens, or serve with "
            "--truncate-prompts (keeps the prompt's last tokens)", "prompt")

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

    def _choices(self, generated: torch.Tensor, logits: torch.Tensor | None,
                 request: CompletionRequest) -> list[dict[str, Any]]:
        """One choice per sequence; ``index`` is the sequence's place (prompt-major, n per prompt)."""
        choices = []
        for s in range(generated.shape[0]):
            ids, finish, count = self._cut(generated[s].tolist(), request.stop)
            choice = {"index": s, "text": self._decode(ids), "logprobs": None, "finish_reason": finish,
                      "_tokens": count}
            if logits is not None:
                choice["logprobs"] = self._logprobs(ids, logits[: len(ids), s], request.logprobs or 0)
            choices.append(choice)
        return choices

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
        text = self._decode(ids)
        found = [text.find(s) for s in stops if s in text]
        if not found:
            return ids, finish, count
        cut, kept = min(found), 0
        while kept < len(ids) and len(self._decode(ids[:kept])) < cut:
            kept += 1
        return ids[:kept], "stop", kept

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _logprobs(self, ids: list[int], logits: torch.Tensor, k: int) -> dict[str, Any]:
        """OpenAI's legacy logprobs object from (T, V) raw logits: tokens, logprobs, top-K, text offsets."""
        logprobs = torch.log_softmax(logits, dim=-1)  # (T, V)
        chosen = logprobs.gather(-1, torch.as_tensor(ids, dtype=torch.long).unsqueeze(-1)).squeeze(-1).tolist()  # (T,)
        top_values, top_indices = logprobs.topk(k, dim=-1) if k else (None, None)  # (T, K) each
        tokens = [token_text(self.tokenizer, i) for i in ids]
        top_rows = []
        for t, token in enumerate(tokens):
            row: dict[str, float] = {}
            if k:
                for value, index in zip(top_values[t].tolist(), top_indices[t].tolist()):
                    row.setdefault(token_text(self.tokenizer, index), value)  # descending: keep the highest
            row.setdefault(token, chosen[t])  # the sampled token is always listed (OpenAI)
            top_rows.append(row)
        offsets = [len(self._decode(ids[:t])) for t in range(len(ids))]
        return {"tokens": tokens, "token_logprobs": chosen, "top_logprobs": top_rows, "text_offset": offsets}
