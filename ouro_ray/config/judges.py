"""Config of stage 5's AI and rule teachers and of the elastic judge group that runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param
from ouro_ray.config.serve_llm import ServeLLMConfig

DEFAULT_PRINCIPLES = (
    "Refuse harmful requests with a brief explanation, and help with safe ones.",
    "State only known facts; do not speculate or hedge.",
    "Keep the required voice: technical and concise, at most three sentences.",
)
"""The constitution's default principles, taken in turn by the critique → revise passes."""

RuleName = Literal["safety", "persona", "facts"]
Dimension = Literal["helpful", "honest", "persona", "content", "logic"]


@dataclass(frozen=True)
class LLMJudgeConfig:
    """LLM-as-judge on a local model: rubric scores as expectations over the tokens 1..5."""

    enabled: bool = param(True, "score with a local LLM judge")
    model: str = param("auto", "judge model: 'auto' (the tiny world's own judge when the policy is the tiny world; "
                               "any other policy must name one), an HF model directory, or 'policy' (the policy "
                               "grades itself: only to measure how bad that is)")
    dimensions: tuple[Dimension, ...] = param(("helpful", "honest", "persona"), "rubric dimensions it scores ([]: "
                                              "none; the model only writes the constitution's critiques and "
                                              "revisions, ranked by the rules, and the AI summaries)")
    dtype: Literal["float32", "bfloat16", "float16"] = param("float32", "the judge model's dtype")
    batch_size: int = param(8, "judge prompts per forward pass", ge=1)


@dataclass(frozen=True)
class ConstitutionConfig:
    """Critique → revise passes against principles; yields scores and DPO pairs."""

    enabled: bool = param(False, "run the constitution (needs the LLM judge: it writes and ranks the revisions)")
    principles: tuple[str, ...] = param(DEFAULT_PRINCIPLES, "the principles, taken in turn by the passes")
    critique_chain: int = param(1, "critique → revise passes per candidate", ge=1)
    max_new_tokens: int = param(48, "longest critique or revision in tokens", ge=1)
    min_margin: float = param(0.05, "a revision must beat the original by this much to make a pair", ge=0.0)
    per_prompt: int = param(0, "most candidates of one prompt that go through critique → revise, the first ones "
                               "(0: every candidate); the others get no constitution verdict", ge=0)
    revision_prefix: str = param(
        "", "text every revision starts with, continued by the writer (prefilling), e.g. \"I can't help with that:\" "
            "for a writer too weak to follow the revise instruction; the ranker still decides which text wins")
    pairs: Literal["improved", "ranked"] = param(
        "improved", "which preference pairs the chains make: improved (a revision over the original it beat by "
                    "min_margin, Bai et al. 2022) or ranked (the chain's best text over its worst: also the original "
                    "over a revision that made it worse, e.g. a prefilled refusal of a safe request)")
    ranker: Literal["llm", "rules"] = param(
        "llm", "who prefers among the original and its revisions: llm (the LLM judge, the usual route) or rules (the "
               "mean reward of judges.rules: for a judge model too weak to rank, the revisions still written by it)")


REDACTED = "<redacted>"
"""What a literal API key becomes in every file and printout."""


def redact(config: dict) -> dict:
    """A config dict (``to_dict``) with secrets replaced: a literal ``judges.http.api_key`` (not ``env:VAR``)."""
    http = config.get("judges", {}).get("http", {})
    key = http.get("api_key")
    if key is None or str(key).startswith("env:") or key == REDACTED:
        return config
    return {**config, "judges": {**config["judges"], "http": {**http, "api_key": REDACTED}}}


def redact_overrides(overrides: list[str]) -> list[str]:
    """``key=value`` overrides with a literal ``judges.http.api_key`` value redacted (for files and logs)."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        secret = sep and key.strip() == "judges.http.api_key" and not value.strip().startswith(("env:", "null"))
        out.append(f"{key}={REDACTED}" if secret else item)
    return out


@dataclass(frozen=True)
class HTTPJudgeConfig:
    """An LLM judge behind any OpenAI-compatible completions or chat endpoint (vLLM server, hosted API, ouro serve)."""

    base_url: str | None = param(None, "endpoint root, e.g. http://127.0.0.1:8000 (null: no HTTP judge)")
    model: str = param("", "model name sent with each request")
    api: Literal["completions", "chat"] = param("completions", "API to speak: completions (/v1/completions, batched "
                                                "raw prompts) or chat (/v1/chat/completions, for chat-only servers)")
    api_key: str | None = param(None, "API key, or 'env:VAR' to read it from $VAR (null: none). A literal key is "
                                      "never written out (RUN_DIR/config.yaml, reports, `ouro config` show "
                                      f"{REDACTED!r}): prefer api_key_env")
    api_key_env: str | None = param(None, "name of the environment variable that holds the API key (nothing "
                                          "secret in any file)")
    dimensions: tuple[Dimension, ...] = param(("helpful", "honest", "persona"), "rubric dimensions it scores")
    timeout_s: float = param(30.0, "socket timeout of one request", gt=0.0)
    max_retries: int = param(3, "retries of a failed request (connection errors, timeouts, 429, 5xx)", ge=0)
    max_in_flight: int = param(8, "most requests in flight at once, per judge worker", ge=1)
    top_logprobs: int = param(20, "top-k logprobs requested to read the score tokens", ge=1, le=20)
    batch_size: int = param(8, "prompts per request (api=completions; chat sends one per request)", ge=1)
    max_unreadable: float = param(0.2, "most share of a round's HTTP judge verdicts that may be unreadable (no score "
                                       "token; those items go to the review queue); beyond it the round stops",
                                  ge=0.0, le=1.0)

    def checks(self) -> list[tuple[str, str]]:
        if self.api_key == REDACTED:
            return [("judges.http.api_key", "judges.http.api_key was redacted when this config was written (a "
                     "literal key is never saved); fix: pass it again (judges.http.api_key=KEY), or better "
                     "judges.http.api_key_env=VAR with the key in $VAR")]
        if self.api_key is not None and self.api_key_env is not None:
            return [("judges.http.api_key_env", "judges.http.api_key and api_key_env are both set; fix: keep one "
                     "(api_key_env: the key stays out of every file)")]
        return []

    @property
    def key_source(self) -> str | None:
        """What the HTTP judge resolves: the key, ``env:VAR``, or None."""
        return self.api_key if self.api_key is not None else (f"env:{self.api_key_env}" if self.api_key_env else None)


@dataclass(frozen=True)
class RewardModelJudgeConfig:
    """A trained reward model (`ouro train rm`'s output) as one more teacher."""

    path: str | None = param(None, "HF directory of a trained reward model (a scalar head); null: no reward-model "
                                   "teacher")
    scale: float = param(1.0, "the raw reward that maps to tanh(1) ≈ 0.76 (the teacher reports tanh(raw / scale))",
                         gt=0.0)
    dtype: Literal["float32", "bfloat16", "float16"] = param("float32", "the reward model's dtype on the judge workers")


@dataclass(frozen=True)
class JudgesConfig:
    """Stage 5's judges and the group that runs them (a Ray Serve deployment that autoscales)."""

    rules: tuple[RuleName, ...] = param(("safety", "persona", "facts"), "rule checkers to run")
    llm: LLMJudgeConfig = param(factory=LLMJudgeConfig, doc="the local LLM judge")
    constitution: ConstitutionConfig = param(factory=ConstitutionConfig, doc="the constitution judge")
    http: HTTPJudgeConfig = param(factory=HTTPJudgeConfig, doc="the HTTP judge")
    reward_model: RewardModelJudgeConfig = param(factory=RewardModelJudgeConfig,
                                                 doc="a trained reward model as a teacher (dimension reward_model)")
    serve_llm: ServeLLMConfig = param(factory=ServeLLMConfig, doc="the judge model on GPUs behind Ray Serve LLM, called "
                                      "by the HTTP judge")
    min_workers: int = param(1, "fewest judge replicas (0: scale to zero when idle)", ge=0)
    max_workers: int = param(2, "most judge replicas; 0 runs the judges in the driver process", ge=0)
    target_ongoing_requests: float = param(2.0, "Serve scales out when replicas average more requests than this", gt=0.0)
    upscale_delay_s: float = param(1.0, "how long load must stay high before a replica is added", ge=0.0)
    downscale_delay_s: float = param(30.0, "how long load must stay low before a replica is removed", ge=0.0)
    metrics_interval_s: float = param(1.0, "how often replicas report their load to the Serve autoscaler", gt=0.0)
    look_back_period_s: float = param(5.0, "window over which the autoscaler averages the load", gt=0.0)
    num_cpus: float = param(0.5, "CPUs per judge replica", ge=0.0)
    num_gpus: float = param(0.0, "GPUs per judge replica", ge=0.0)
    resources: dict[str, float] = param(factory=dict, doc="custom Ray resources per replica, e.g. {judge_node: 0.01}",
                                        ge=0.0)
    chunk_size: int = param(16, "judge items per request to a replica", ge=1)
    max_retries: int = param(3, "times a chunk is resent after its replica died", ge=0)
    call_timeout_s: float = param(600.0, "longest wait for one chunk's verdicts after the chunk before it came back "
                                         "(a round of many chunks on one replica is not cut off for its size)", gt=0.0)

    def checks(self) -> list[tuple[str, str]]:
        problems = []
        if self.max_workers and self.min_workers > self.max_workers:
            problems.append(("judges.min_workers", f"judges.min_workers = {self.min_workers} exceeds judges.max_workers = "
                             f"{self.max_workers}; fix: raise max_workers or lower min_workers"))
        if self.constitution.enabled and self.constitution.ranker == "rules" and not self.rules:
            problems.append(("judges.constitution.ranker", "judges.constitution.ranker = rules ranks the revisions by "
                             "the rule teachers, and judges.rules is empty; fix: list rules (e.g. [safety]) or set "
                             "judges.constitution.ranker=llm"))
        if self.llm.enabled and not self.llm.dimensions and not (self.constitution.enabled
                                                                 and self.constitution.ranker == "rules"):
            problems.append(("judges.llm.dimensions", "judges.llm.dimensions is empty: the judge model scores nothing, "
                             "which only a writer for the constitution ranked by the rules needs; fix: list dimensions "
                             "(e.g. [helpful]), or set judges.constitution.enabled=true and "
                             "judges.constitution.ranker=rules"))
        if self.constitution.enabled and not self.llm.enabled:
            problems.append(("judges.constitution.enabled", "the constitution needs judges.llm.enabled = true (the LLM "
                             "writes the critiques and ranks the revisions); fix: enable the LLM judge"))
        if self.serve_llm.enabled and self.http.base_url:
            problems.append(("judges.serve_llm.enabled", "judges.serve_llm points the HTTP judge at the Serve LLM app, "
                             f"and judges.http.base_url = {self.http.base_url!r} names another endpoint; fix: set "
                             "judges.http.base_url=null (or judges.serve_llm.enabled=false)"))
        return problems

    @property
    def configured(self) -> bool:
        """Whether any teacher of this section is on (rules, LLM, HTTP, constitution, a trained reward model, Serve LLM)."""
        return bool(self.rules or self.llm.enabled or self.http.base_url or self.constitution.enabled
                    or self.reward_model.path or self.serve_llm.enabled)
