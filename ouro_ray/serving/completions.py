"""The model behind ``ouro serve``: OpenAI-style completions requests in, completions answers out.

Kept free of Ray and HTTP so it can be built and called in a test: :func:`~ouro_ray.serving.parse.parse_request`
checks a JSON body and :class:`CompletionEngine` answers it with an HF causal LM. The chat route
(:mod:`ouro_ray.serving.chat`) renders its messages with the chat template and runs the same engine;
token texts live in :mod:`ouro_ray.serving.tokens`; the HTTP app in :mod:`ouro_ray.serving.http`, the Serve
glue in :mod:`ouro_ray.serving.app`.

Completions take the prompt as plain text (``tokenizer(prompt)``, the tokenizer's own special-token
default, no chat template), because a judge's prompt already is the exact text the model must continue
(see :mod:`ouro_ray.judges.http`).

Logprobs are those of the raw model distribution (``log_softmax`` of the logits, before temperature or
top-p), as vLLM and the OpenAI API report them, so a judge reads the same probabilities whatever
sampling settings it sends; only each step's top-K is kept (:mod:`ouro_ray.serving.steps`).
Notation: ``S = prompts × n`` sequences, ``T`` generated steps, ``V`` vocab.

A request is answered in three steps, so that the HTTP layer can refuse a bad one without waiting for
the model: ``parse_request`` (pure), :meth:`CompletionEngine.prepare` (model name, tokenization,
context; raises every 4xx) and :meth:`CompletionEngine.run` (the generation, one at a time).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ouro_ray.serving.limits import FLAGS
from ouro_ray.serving.parse import CompletionRequest, CompletionRequestError, parse_request
from ouro_ray.serving.steps import Deadline, TokenLogprobs, TopLogprobs
from ouro_ray.serving.tokens import token_text

MAX_SEQUENCES = 256
"""Most sequences (prompts × n) in one request: one ``generate`` call holds them all in memory."""


@dataclass(frozen=True)
class Sample:
    """One generated sequence: its kept tokens, why it ended, the tokens usage counts, their logprobs."""

    ids: list[int]
    finish_reason: str
    """'stop' (EOS or a stop string) or 'length' (``max_tokens``)."""
    counted: int
    """Completion tokens it counts in usage (a trailing EOS counts, though it is not shown)."""
    logprobs: TokenLogprobs | None
    """The kept tokens' logprobs and top-K; None when no logprobs were asked for."""


@dataclass(frozen=True)
class Job:
    """A checked request, ready to generate: its token rows, settings, and how to write the answer."""

    rows: list[list[int]]
    """Each prompt's token ids (fitted to the context)."""
    request: CompletionRequest
    answer: Callable[[list[list[int]], list[Sample]], dict[str, Any]]
    """The OpenAI answer from the rows and the samples."""


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
        return self.run(self.prepare(request))

    def prepare(self, request: CompletionRequest) -> Job:
        """The completions request checked against this model (name, context) and tokenized; every 4xx is raised
        here, before any generation."""
        self.check_model(request.model)
        return Job(self.encode(request), request, lambda rows, samples: self._answer(rows, samples, request))

    def run(self, job: Job, deadline: float | None = None) -> dict[str, Any]:
        """The answer to a prepared request; ``deadline`` (a ``time.monotonic()``) ends generation with a 503."""
        return job.answer(job.rows, self.sample(job.rows, job.request, deadline))

    def _answer(self, rows: list[list[int]], samples: list[Sample], request: CompletionRequest) -> dict[str, Any]:
        choices = [self._choice(s, sample) for s, sample in enumerate(samples)]
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

    def sample(self, rows: list[list[int]], request: CompletionRequest, deadline: float | None = None) -> list[Sample]:
        """``request.n`` samples per row, prompt-major, each cut at EOS or a stop string; a 503 past ``deadline``."""
        with self._lock:
            generated, logprobs = self._generate(rows, request, deadline)
        samples = []
        for s in range(generated.shape[0]):
            ids, finish, counted = self._cut(generated[s].tolist(), request.stop)
            samples.append(Sample(ids, finish, counted, None if logprobs is None else logprobs[s].first(len(ids))))
        return samples

    def _generate(self, rows: list[list[int]], request: CompletionRequest,
                  deadline: float | None) -> tuple[torch.Tensor, list[TokenLogprobs] | None]:
        """(S, T) generated ids (prompt-major, n per prompt) and, when logprobs are asked for, each sequence's."""
        from transformers.generation import LogitsProcessorList, StoppingCriteriaList

        from ouro_ray.rollout.transformers_backend import left_pad

        device = next(self.model.parameters()).device
        ids, mask = left_pad(rows, self.tokenizer.pad_token_id)  # (B, P)
        recorder = None if request.logprobs is None else TopLogprobs(request.logprobs)
        timer = None if deadline is None else Deadline(deadline)
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if request.seed is not None:
                torch.manual_seed(request.seed)
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.long().to(device),
                                      logits_processor=LogitsProcessorList([] if recorder is None else [recorder]),
                                      stopping_criteria=StoppingCriteriaList([] if timer is None else [timer]),
                                      **self._sampling(request))
        if timer is not None and timer.passed:
            raise CompletionRequestError(
                f"the request reached this server's timeout ({FLAGS['request_timeout_s']}) while generating; fix: ask "
                "for fewer tokens (max_tokens) or choices (n)", None, status=503, kind="server_error", code="timeout")
        generated = out.sequences[:, ids.shape[1]:]  # (S, T)
        return generated.cpu(), None if recorder is None else recorder.finish(generated)

    def _sampling(self, request: CompletionRequest) -> dict[str, Any]:
        """``generate`` settings for exactly the requested distribution.

        Why the explicit neutral values: the model directory's generation config (``top_k``,
        ``repetition_penalty``) and transformers' defaults (``top_k=50``) would otherwise reshape it, and
        the logprobs would no longer be read from the raw logits (:mod:`ouro_ray.serving.steps`).
        """
        settings = dict(max_new_tokens=request.max_tokens, num_return_sequences=request.n, num_beams=1,
                        eos_token_id=self.eos_ids or None, pad_token_id=self.tokenizer.pad_token_id,
                        repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
                        return_dict_in_generate=True, use_cache=True)
        if request.temperature == 0.0:
            return settings | dict(do_sample=False, temperature=1.0, top_p=1.0)
        return settings | dict(do_sample=True, temperature=request.temperature, top_p=request.top_p, top_k=0)

    # --- answers ---------------------------------------------------------------------------------------

    def _choice(self, index: int, sample: Sample) -> dict[str, Any]:
        """One completions choice; ``index`` is the sequence's place (prompt-major, n per prompt)."""
        logprobs = None if sample.logprobs is None else self._logprobs(sample.ids, sample.logprobs)
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

    def _logprobs(self, ids: list[int], logprobs: TokenLogprobs) -> dict[str, Any]:
        """OpenAI's legacy logprobs object: tokens, their logprobs, the top-K per step, text offsets."""
        tokens = [token_text(self.tokenizer, i) for i in ids]
        top_rows = []
        for token, chosen, top in zip(tokens, logprobs.chosen, logprobs.top):
            row: dict[str, float] = {}
            for index, value in top:
                row.setdefault(token_text(self.tokenizer, index), value)  # descending: keep the highest
            row.setdefault(token, chosen)  # the sampled token is always listed (OpenAI)
            top_rows.append(row)
        offsets = [len(self.decode(ids[:t])) for t in range(len(ids))]
        return {"tokens": tokens, "token_logprobs": logprobs.chosen, "top_logprobs": top_rows, "text_offset": offsets}
