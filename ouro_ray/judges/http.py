"""An LLM-as-judge over HTTP: any OpenAI-compatible server (vLLM, a hosted API, ``ouro serve``).

The judge reads the probabilities of the score tokens ``1``…``5`` at one position (see
:mod:`ouro_ray.judges.rubric`), so it asks for a single token (``max_tokens=1, temperature=0``) with the
top-K logprobs. It speaks either API (``api=``):

- ``"completions"`` (the default, ``/v1/completions``): the judge prompt is the exact text the model
  continues, and one request carries ``batch_size`` prompts (each choice has its prompt's ``index``).
  Choose it for a base model, or whenever the server offers it (vLLM and ``ouro serve`` do).
- ``"chat"`` (``/v1/chat/completions``): the prompt goes as one user message, rendered by the server's
  chat template; one prompt per request (chat does not batch), at most ``max_in_flight`` at once.
  Choose it for a hosted judge that serves only chat, or an instruction-tuned model that answers
  better in its own template.

Reading a verdict from a choice (:mod:`ouro_ray.judges.reading`: top-K logprobs, then the sampled
text's first digit; else no verdict: the dimension is left out, said in ``notes`` and counted in
``stats["unparsed"]``) is kept
apart from the glue below (transport, retries, bounded concurrency).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Mapping, Sequence

from ouro_ray.judges.protocol import JudgeItem, JudgeScore
from ouro_ray.judges.reading import Reading, merge_top_logprobs, note, read_chat_choice, read_choice
from ouro_ray.judges.rubric import (
    DIMENSIONS,
    SCORE_TOKENS,
    DimensionScores,
    expected_score,
    judge_prompt,
    pairwise_prompt,
    preference_probability,
)

__all__ = ["HTTPJudge", "JudgeHTTPError", "Reading", "merge_top_logprobs", "read_choice", "read_chat_choice",
           "APIS", "PAIR_TOKENS", "STAT_KEYS"]

APIS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
"""Each API the judge speaks and the path it POSTs to, under ``base_url``."""
PAIR_TOKENS = ("1", "2")
"""The tokens a pairwise verdict is read from: 'answer 1 is better' or 'answer 2 is better'."""

STAT_KEYS = ("requests", "retries", "failures", "unparsed", "readings", "text_fallback")
"""``requests``: HTTP attempts sent; ``retries``: attempts after a first; ``failures``: requests (a batch
of prompts, or in chat one prompt) that failed for good; ``unparsed``: prompts with no score token
anywhere (a verdict left out, never a neutral score); ``readings``: prompts read;
``text_fallback``: prompts whose score came from the sampled text, not the
logprobs."""


class JudgeHTTPError(RuntimeError):
    """A judge request failed for good (retries exhausted, a non-retryable status, or a malformed answer)."""

    def __init__(self, message: str, *, url: str, status: int | None = None, attempts: int = 0):
        super().__init__(message)
        self.url = url
        self.status = status
        self.attempts = attempts


# --- the judge ---------------------------------------------------------------------------------------


class HTTPJudge:
    """Scores candidates (``score``) or pairs (``prefer``) with a model behind a completions or chat endpoint."""

    rater = "ai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        dimensions: Sequence[str] = ("helpful", "honest", "persona"),
        name: str = "http-judge",
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_in_flight: int = 8,
        top_logprobs: int = 20,
        batch_size: int = 8,
        api: Literal["completions", "chat"] = "completions",
    ):
        """``api_key``: the key itself, ``"env:VAR"`` to read it from ``$VAR``, or None for no auth header.

        ``api``: ``"completions"`` or ``"chat"`` (see the module's doc); ``batch_size`` applies to completions
        only, chat sends one prompt per request.
        """
        self.api = _api(api)
        self.url = _endpoint_url(base_url, self.api)
        self.model = _text("model", model)
        self.dimensions = _dimensions(dimensions)
        self.name = _text("name", name)
        self._api_key = _resolve_api_key(api_key)
        self.timeout_s = _number("timeout_s", timeout_s, minimum=0.0, strict=True)
        self.max_retries = _integer("max_retries", max_retries, minimum=0)
        self.backoff_s = _number("backoff_s", backoff_s, minimum=0.0, strict=False)
        self.max_in_flight = _integer("max_in_flight", max_in_flight, minimum=1)
        self.top_logprobs = _integer("top_logprobs", top_logprobs, minimum=1)
        self.batch_size = _integer("batch_size", batch_size, minimum=1)
        self._counts = dict.fromkeys(STAT_KEYS, 0)
        self._make_sync()

    def _make_sync(self) -> None:
        # The semaphore bounds requests in flight across every concurrent call on this judge, not per call.
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_in_flight)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a Ray group may build the judge in the driver): locks are rebuilt on arrival."""
        state = dict(self.__dict__)
        del state["_lock"], state["_slots"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._make_sync()

    def __repr__(self) -> str:  # never shows the key
        return (f"HTTPJudge(url={self.url!r}, api={self.api!r}, model={self.model!r}, "
                f"dimensions={self.dimensions!r}, name={self.name!r})")

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters in :data:`STAT_KEYS`, for metrics."""
        with self._lock:
            return dict(self._counts)

    def take_stats(self) -> dict[str, int]:
        """The counters since the last call (one batch's, for the judge worker's output)."""
        now = self.stats
        taken, self._taken = {k: now[k] - getattr(self, "_taken", {}).get(k, 0) for k in now}, now
        return taken

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for key, delta in deltas.items():
                self._counts[key] += delta

    def score(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """One :class:`JudgeScore` per item, in the items' order: a score per dimension, reward their mean."""
        items = list(items)
        prompts = [judge_prompt(item, d, DIMENSIONS[d]) for item in items for d in self.dimensions]
        readings = self._read(prompts, SCORE_TOKENS)
        n = len(self.dimensions)
        return [self._verdict(item, readings[i * n:(i + 1) * n]) for i, item in enumerate(items)]

    def _verdict(self, item: JudgeItem, readings: Sequence[Reading]) -> JudgeScore:
        """Scores of the dimensions read; an unreadable one is left out (its notes say so), so it weighs nothing
        in the reward rather than a neutral 0, and stage 5 sends the item to the review queue."""
        scores = {d: expected_score(r.logprobs) for d, r in zip(self.dimensions, readings) if r.source != "none"}
        notes = [note(d, r, self.top_logprobs) for d, r in zip(self.dimensions, readings)]
        return JudgeScore(prompt_id=item.prompt_id, candidate_id=item.candidate_id, rater=self.rater,
                          teacher=self.name, scores=scores, reward=DimensionScores(scores).reward,
                          notes="; ".join(n for n in notes if n) or None)

    def prefer(self, first: Sequence[JudgeItem], second: Sequence[JudgeItem]) -> list[float]:
        """For each pair, P(``first[i]`` keeps the rubric better than ``second[i]``); 0.5 when unreadable."""
        first, second = list(first), list(second)
        if len(first) != len(second):
            raise ValueError(
                f"prefer needs as many first as second items; got {len(first)} and {len(second)}: pass pairs"
            )
        prompts = [pairwise_prompt(a, b, self.dimensions) for a, b in zip(first, second)]
        return [preference_probability(r.logprobs) for r in self._read(prompts, PAIR_TOKENS)]

    def _read(self, prompts: list[str], tokens: Sequence[str]) -> list[Reading]:
        read = read_chat_choice if self.api == "chat" else read_choice
        readings = [read(choice, tokens) for choice in self._complete(prompts)]
        self._count(
            text_fallback=sum(r.source == "text" for r in readings),
            unparsed=sum(r.source == "none" for r in readings),
            readings=len(readings),
        )
        return readings

    # --- glue: batching, concurrency, retries, transport -------------------------------------------

    def _complete(self, prompts: list[str]) -> list[Mapping[str, Any]]:
        """One choice per prompt, in the prompts' order, whatever order the batches finish in."""
        size = self.batch_size if self.api == "completions" else 1  # a chat request holds one conversation
        batches = [prompts[i:i + size] for i in range(0, len(prompts), size)]
        if len(batches) <= 1:
            return [c for batch in batches for c in self._post_batch(batch)]
        pool = ThreadPoolExecutor(min(self.max_in_flight, len(batches)), thread_name_prefix=f"{self.name}-http")
        try:
            futures = [pool.submit(self._post_batch, batch) for batch in batches]
            # No result() timeout needed: every attempt has timeout_s and the attempts are bounded.
            return [choice for future in futures for choice in future.result()]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _post_batch(self, batch: list[str]) -> list[Mapping[str, Any]]:
        try:
            return _choices_in_order(self._post_with_retries(self._payload(batch)), len(batch), self.url, self.api)
        except JudgeHTTPError:
            self._count(failures=1)
            raise

    def _payload(self, batch: list[str]) -> dict[str, Any]:
        """One token, greedy, with the top-K logprobs: a list of prompts, or (chat) one prompt as a user message."""
        ask = {"model": self.model, "max_tokens": 1, "temperature": 0}
        if self.api == "chat":
            [prompt] = batch
            return ask | {"messages": [{"role": "user", "content": prompt}], "logprobs": True,
                          "top_logprobs": self.top_logprobs}
        return ask | {"prompt": batch, "logprobs": self.top_logprobs}

    def _post_with_retries(self, payload: Mapping[str, Any]) -> Any:
        """The decoded JSON answer; retries connection errors, timeouts, 429 and 5xx with exponential backoff
        (or after the ``Retry-After`` a 429/503 asked for, at most :data:`MAX_RETRY_AFTER_S`)."""
        data = json.dumps(payload).encode("utf-8")
        attempts = self.max_retries + 1
        last: _AttemptFailed | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._count(retries=1)
                hint = last.retry_after if last is not None else None  # the server's Retry-After, if it gave one
                time.sleep(hint if hint is not None else self.backoff_s * 2 ** (attempt - 2))  # holds no slot
            self._count(requests=1)
            try:
                with self._slots:
                    return self._post_once(data)
            except _AttemptFailed as failed:
                if not failed.retryable:
                    raise self._rejected(failed, attempt) from failed
                last = failed
        raise self._exhausted(last, attempts)

    def _post_once(self, data: bytes) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            retryable = err.code == 429 or 500 <= err.code < 600
            raise _AttemptFailed(f"HTTP {err.code}: {_body_snippet(err)}", err.code, retryable,
                                 _retry_after(err) if err.code in (429, 503) else None) from err
        except (OSError, http.client.HTTPException) as err:  # URLError, timeouts, resets, bad status lines
            raise _AttemptFailed(self._describe(err), None, True) from err
        try:
            return json.loads(raw)
        except ValueError as err:
            raise _AttemptFailed(f"answer is not JSON ({err}): {raw[:200]!r}", 200, False) from err

    def _describe(self, err: BaseException) -> str:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError) or isinstance(err, TimeoutError):
            return f"timed out after timeout_s={self.timeout_s}s"
        return f"connection error: {type(reason).__name__}: {reason}"

    def _rejected(self, failed: _AttemptFailed, attempt: int) -> JudgeHTTPError:
        if failed.status in (401, 403):
            fix = "set api_key (the key, or 'env:VAR' to read it from $VAR)"
        elif failed.status == 404:
            fix = (f"check base_url (the judge POSTs to {{base_url}}{APIS[self.api]}), that the server speaks "
                   f"api={self.api!r}, and that model={self.model!r} exists")
        elif failed.status == 200:
            fix = f"check that base_url points at an OpenAI-compatible server with {APIS[self.api]}"
        else:
            fix = (f"check that model={self.model!r} is served there and allows logprobs={self.top_logprobs} "
                   "(vLLM: --max-logprobs; hosted APIs often allow only 5: set top_logprobs=5)"
                   + ("; a model without a chat template needs api='completions'" if self.api == "chat" else ""))
        return JudgeHTTPError(
            f"POST {self.url} failed on attempt {attempt} with {failed.detail}; not retried (a client error "
            f"repeats). Fix: {fix}.",
            url=self.url, status=failed.status, attempts=attempt,
        )

    def _exhausted(self, last: _AttemptFailed | None, attempts: int) -> JudgeHTTPError:
        detail = last.detail if last else "no attempt made"
        return JudgeHTTPError(
            f"POST {self.url} failed after {attempts} attempts (max_retries={self.max_retries}); last error: "
            f"{detail}. Fix: check the server is up and reachable from this host, raise timeout_s "
            f"(now {self.timeout_s}s) if it is slow, or lower max_in_flight/batch_size "
            f"(now {self.max_in_flight}/{self.batch_size}) if it is overloaded (HTTP 429/503).",
            url=self.url, status=last.status if last else None, attempts=attempts,
        )


class _AttemptFailed(Exception):
    """One HTTP attempt's failure, whether another attempt could succeed, and when the server asked to be
    tried again (``Retry-After`` seconds on a 429 or 503; None when it did not say)."""

    def __init__(self, detail: str, status: int | None, retryable: bool, retry_after: float | None = None):
        super().__init__(detail)
        self.detail, self.status, self.retryable, self.retry_after = detail, status, retryable, retry_after


MAX_RETRY_AFTER_S = 60.0  # the longest Retry-After the judge honours (more is cut to this)


def _retry_after(err: urllib.error.HTTPError) -> float | None:
    """A 429/503's ``Retry-After`` in seconds (the delta-seconds form; an HTTP date is not used), capped."""
    value = err.headers.get("Retry-After") if err.headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return None if seconds is None or not math.isfinite(seconds) or seconds < 0 else min(seconds, MAX_RETRY_AFTER_S)


def _body_snippet(err: urllib.error.HTTPError) -> str:
    """The start of an error answer's body: servers put the reason there (e.g. 'logprobs must be <= 5')."""
    try:
        return err.read()[:300].decode("utf-8", "replace").strip() or err.reason
    except (OSError, http.client.HTTPException):
        return str(err.reason)


def _choices_in_order(body: Any, n: int, url: str, api: str) -> list[Mapping[str, Any]]:
    """The answer's choices placed by their ``index`` (servers may return them in any order)."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not isinstance(choices, list):
        raise JudgeHTTPError(f"{url} answered without a 'choices' list: {str(body)[:200]}. Fix: point base_url "
                             f"at an OpenAI-compatible server with {APIS[api]}.", url=url, status=200, attempts=1)
    ordered: list[Mapping[str, Any] | None] = [None] * n
    for position, choice in enumerate(choices):
        index = choice.get("index", position) if isinstance(choice, Mapping) else None
        if isinstance(index, int) and 0 <= index < n and ordered[index] is None:
            ordered[index] = choice
    if any(c is None for c in ordered):
        fix = ("if the server does not take a list of prompts, set batch_size=1" if api == "completions" else
               "check that the server is OpenAI-compatible (one choice per chat request unless n is sent)")
        raise JudgeHTTPError(f"{url} answered {len(choices)} choices for {n} prompts (or with bad 'index' values). "
                             f"Fix: {fix}.", url=url, status=200, attempts=1)
    return ordered  # type: ignore[return-value]


# --- constructor validation: each error names the argument, the value and the fix -------------------


def _api(api: Any) -> str:
    if not isinstance(api, str) or api not in APIS:
        raise ValueError(f"api={api!r} must be one of {sorted(APIS)}: 'chat' for a server that speaks only "
                         "/v1/chat/completions, else 'completions'")
    return api


def _endpoint_url(base_url: str, api: str) -> str:
    parsed = urllib.parse.urlparse(base_url) if isinstance(base_url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"base_url={base_url!r} must be an http(s) URL such as 'http://localhost:8000'")
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        raise ValueError(f"base_url={base_url!r} ends in /v1, but the judge appends {APIS[api]} itself: "
                         f"pass {base[:-3]!r}")
    return base + APIS[api]


def _text(argument: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{argument}={value!r} must be a non-empty string")
    return value


def _dimensions(dimensions: Sequence[str]) -> tuple[str, ...]:
    dims = (dimensions,) if isinstance(dimensions, str) else tuple(dimensions)
    unknown = [d for d in dims if d not in DIMENSIONS]
    if not dims or unknown or len(set(dims)) != len(dims):
        raise ValueError(f"dimensions={dims!r} must be distinct names from {sorted(DIMENSIONS)} (unknown: {unknown})")
    return dims


def _resolve_api_key(api_key: str | None) -> str | None:
    if api_key is None or not api_key.startswith("env:"):
        return api_key
    variable = api_key[len("env:"):]
    if not os.environ.get(variable):
        raise ValueError(f"api_key={api_key!r} names ${variable}, which is unset or empty: export it or pass the key")
    return os.environ[variable]


def _integer(argument: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument}={value!r} must be an integer >= {minimum}")
    return value


def _number(argument: str, value: Any, *, minimum: float, strict: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < minimum or (strict and value == minimum):
        raise ValueError(f"{argument}={value!r} must be a finite number {'>' if strict else '>='} {minimum}")
    return float(value)
