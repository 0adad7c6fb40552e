"""The Arrow schema of every shard of the Ouroboros loop, defined once.

Notation for shapes: ``B`` rows in a batch; ``N_i`` items of row i (turns, facts, …); ``T_i`` tokens
of row i's candidate (response); ``P_i`` tokens of row i's prompt. Per-token columns are Arrow lists
(ragged); the learner pads them to ``(B, T)`` with ``T = max_i T_i`` and a mask.

Every column that crosses an actor boundary is a :class:`Column` here: name, Arrow type, shape, one-line
meaning, and the allowed values of any enumerated string inside it. ``SHARDS`` maps each shard kind
to its :class:`ShardSpec`. :mod:`ouro_ray.data.validate` checks JSON records and Arrow batches against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import pyarrow as pa

from ouro_ray.config.loop import LAMBDA_GROUPS
from ouro_ray.data.rowchecks import Differs, NonEmpty, NonPositive, RowCheck, SameLength

ROLES = ("human", "assistant")
LABYRINTH_KINDS = ("rephrase", "adversarial", "contrastive")
BEHAVIORS = ("answer", "refuse")
SAFETY_LABELS = ("safe", "unsafe")
RATERS = ("human", "ai", "rule", "rm")


@dataclass(frozen=True)
class Column:
    """One column of a shard: its Arrow type, shape, meaning and enumerations."""

    name: str
    type: pa.DataType
    shape: str
    meaning: str
    nullable: bool = False
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Allowed values of enumerated strings, by path inside the column ("" = the column itself)."""

    def arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


@dataclass(frozen=True)
class ShardSpec:
    """A shard kind: its columns, the columns that identify a row, and cross-column row checks."""

    kind: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    row_checks: tuple[RowCheck, ...] = ()

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([c.arrow_field() for c in self.columns])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"shard {self.kind!r} has no column {name!r}; columns: {', '.join(self.names)}")


# ---------------------------------------------------------------- Arrow types used below

_STR = pa.string()
_STRS = pa.list_(pa.string())
_TOKENS = pa.list_(pa.int32())
_FLOATS = pa.list_(pa.float32())


def _struct(*fields: tuple[str, pa.DataType, bool]) -> pa.StructType:
    return pa.struct([pa.field(n, t, nullable=nullable) for n, t, nullable in fields])


_TURN = _struct(("role", _STR, False), ("text", _STR, False))
_PERSONA = _struct(("voice", _STR, False), ("constraints", _STRS, False))
_TARGET = _struct(
    ("facts", _STRS, True), ("voice", _STR, True), ("constraints", _STRS, True), ("behavior", _STR, False)
)

# ---------------------------------------------------------------- the shards

DIALOGS = ShardSpec(
    "dialogs",
    "Stage 1: dialogues between a human and the policy.",
    (
        Column("dialog_id", _STR, "(B,)", "unique id of the dialogue"),
        Column("turns", pa.list_(_TURN), "(B, N_i)", "the turns in order: role (human|assistant) and text",
               choices={"role": ROLES}),
    ),
    key=("dialog_id",),
    row_checks=(NonEmpty("turns"),),
)

SUMMARIES = ShardSpec(
    "summaries",
    "Stage 2: each dialogue distilled into facts, logic and persona (AI summary, human edits win).",
    (
        Column("dialog_id", _STR, "(B,)", "the dialogue this summarises"),
        Column("facts", _STRS, "(B, N_i)", "the fact ledger: short statements an answer must keep"),
        Column("logic", _STRS, "(B, N_i)", "the reasoning steps of the dialogue, in order"),
        Column("persona", _PERSONA, "(B,)", "voice (e.g. 'technical, concise') and constraints to obey"),
    ),
    key=("dialog_id",),
)

LABYRINTH = ShardSpec(
    "labyrinth",
    "Stage 3: challenge prompts made from a summary, each with what must be preserved.",
    (
        Column("dialog_id", _STR, "(B,)", "the dialogue whose summary produced this prompt"),
        Column("prompt_id", _STR, "(B,)", "unique id of the prompt"),
        Column("kind", _STR, "(B,)", "rephrase | adversarial | contrastive", choices={"": LABYRINTH_KINDS}),
        Column("prompt", _STR, "(B,)", "the prompt text given to the policy"),
        Column("target", _TARGET, "(B,)",
               "what must be preserved: facts, voice, constraints, and behavior (answer | refuse)",
               choices={"behavior": BEHAVIORS}),
        Column("group_id", _STR, "(B,)", "prompts sharing a group must get consistent answers (null: none)",
               nullable=True),
    ),
    key=("prompt_id",),
    row_checks=(NonEmpty("prompt"),),
)

PROMPTS = ShardSpec(
    "prompts",
    "A behavior-controlled prompt set: plain prompts labelled safe (answer) or unsafe (refuse).",
    (
        Column("prompt_id", _STR, "(B,)", "unique id of the prompt"),
        Column("prompt", _STR, "(B,)", "the prompt text"),
        Column("label", _STR, "(B,)", "safe (must be answered) | unsafe (must be refused briefly)",
               choices={"": SAFETY_LABELS}),
    ),
    key=("prompt_id",),
    row_checks=(NonEmpty("prompt"),),
)

CANDIDATES = ShardSpec(
    "candidates",
    "Stage 4: candidates the policy generated for each prompt.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt answered"),
        Column("candidate_id", _STR, "(B,)", "id of the candidate, unique within its prompt"),
        Column("text", _STR, "(B,)", "the decoded candidate"),
        Column("prompt_token_ids", _TOKENS, "(B, P_i)", "the prompt's token ids as the policy saw them (chat template applied)"),
        Column("token_ids", _TOKENS, "(B, T_i)", "candidate token ids (prompt excluded; EOS included when generated)"),
        Column("logprobs", _FLOATS, "(B, T_i)", "log-probability of each candidate token under the policy"),
        Column("policy_version", pa.int64(), "(B,)", "version of the policy weights that generated it"),
    ),
    key=("prompt_id", "candidate_id"),
    row_checks=(SameLength(("token_ids", "logprobs")), NonPositive("logprobs"), NonEmpty("prompt_token_ids")),
)

SCORES = ShardSpec(
    "scores",
    "Stage 5: a teacher's scores of one candidate, per rubric dimension, and the combined reward.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate scored"),
        Column("scores", pa.map_(_STR, pa.float32()), "(B, N_i)",
               "per-dimension scores, e.g. helpful, honest, persona, content, logic"),
        Column("reward", pa.float32(), "(B,)", "the combined reward (λ-weighted, bounded)"),
        Column("rater", _STR, "(B,)", "human | ai | rule | rm", choices={"": RATERS}),
        Column("teacher", _STR, "(B,)", "which teacher of that rater kind (e.g. 'safety', 'llm-judge')",
               nullable=True),
        Column("notes", _STR, "(B,)", "free-text rationale or critique", nullable=True),
    ),
    key=("prompt_id", "candidate_id", "rater", "teacher"),
)

PAIRS = ShardSpec(
    "pairs",
    "Preference pairs for DPO and reward-model training.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt's id where known", nullable=True),
        Column("prompt", _STR, "(B,)", "the prompt text"),
        Column("chosen", _STR, "(B,)", "the preferred candidate"),
        Column("rejected", _STR, "(B,)", "the dispreferred candidate"),
        Column("source", _STR, "(B,)", "what produced the pair: ranking, constitution, human, …"),
    ),
    row_checks=(NonEmpty("prompt"), Differs("chosen", "rejected")),
)

EXPERIENCE = ShardSpec(
    "experience",
    "The per-token experience batch the PPO learner consumes (one row per candidate).",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate"),
        Column("prompt_token_ids", _TOKENS, "(B, P_i)", "prompt token ids as the policy saw them"),
        Column("token_ids", _TOKENS, "(B, T_i)", "candidate token ids"),
        Column("old_logprobs", _FLOATS, "(B, T_i)", "per-token logprobs under the policy that generated it"),
        Column("ref_logprobs", _FLOATS, "(B, T_i)", "per-token logprobs under the frozen reference"),
        Column("values", _FLOATS, "(B, T_i)", "critic values per token (null: critic-free estimator)",
               nullable=True),
        Column("reward", pa.float32(), "(B,)", "sequence-level reward from the scorers"),
        Column("policy_version", pa.int64(), "(B,)", "policy version that generated the candidate"),
    ),
    key=("prompt_id", "candidate_id"),
    row_checks=(
        SameLength(("token_ids", "old_logprobs", "ref_logprobs", "values")),
        NonEmpty("token_ids"),
        NonPositive("old_logprobs"),
        NonPositive("ref_logprobs"),
    ),
)

JUDGE_ITEMS = ShardSpec(
    "judge_items",
    "Stage 5's input to the judges: each candidate with its prompt and what the answer must preserve.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate"),
        Column("prompt", _STR, "(B,)", "the prompt text the policy answered"),
        Column("candidate", _STR, "(B,)", "the candidate's text"),
        Column("target", _TARGET, "(B,)", "what must be preserved (from the labyrinth prompt or the safety label)",
               choices={"behavior": BEHAVIORS}),
        Column("group_id", _STR, "(B,)", "prompts sharing a group must get consistent answers (null: none)",
               nullable=True),
    ),
    key=("prompt_id", "candidate_id"),
)

TOKEN_SEQUENCES = ShardSpec(
    "token_sequences",
    "Prompt + candidate token ids that the reference (or reward model) scores; a column subset of candidates.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate (or 'chosen' / 'rejected' for a pair)"),
        Column("prompt_token_ids", _TOKENS, "(B, P_i)", "the prompt's token ids (chat template applied)"),
        Column("token_ids", _TOKENS, "(B, T_i)", "the candidate's token ids (EOS included)"),
    ),
    key=("prompt_id", "candidate_id"),
    row_checks=(NonEmpty("prompt_token_ids"), NonEmpty("token_ids")),
)

PREFERENCE_BATCH = ShardSpec(
    "preference_batch",
    "The tokenized pairs the DPO learner (and the reward model's training) consumes, with the reference's "
    "sequence logprobs joined as columns.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt's id where known", nullable=True),
        Column("prompt_token_ids", _TOKENS, "(B, P_i)", "the prompt's token ids (chat template applied)"),
        Column("chosen_token_ids", _TOKENS, "(B, C_i)", "the preferred candidate's token ids (EOS included)"),
        Column("rejected_token_ids", _TOKENS, "(B, R_i)", "the dispreferred candidate's token ids (EOS included)"),
        Column("ref_chosen_logps", pa.float32(), "(B,)",
               "summed log-probability of chosen under the reference (null: not computed; DPO needs it, the "
               "reward model does not)", nullable=True),
        Column("ref_rejected_logps", pa.float32(), "(B,)",
               "summed log-probability of rejected under the reference (null: as above)", nullable=True),
    ),
    row_checks=(NonEmpty("prompt_token_ids"), NonEmpty("chosen_token_ids"), NonEmpty("rejected_token_ids"),
                NonPositive("ref_chosen_logps"), NonPositive("ref_rejected_logps")),
)

REWARDS = ShardSpec(
    "rewards",
    "Stage 5's result: one combined reward per candidate (the teachers' scores λ-weighted by group, or a "
    "human's) and what it is made of; `ouro score --rewards` writes it, the learner reads `reward`.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate"),
        Column("reward", pa.float32(), "(B,)", "the combined reward in [-1, 1]"),
        *(Column(g, pa.float32(), "(B,)", f"the candidate's mean score on the {g} group (G[{g}]; null: not scored "
                 "on it)", nullable=True) for g in LAMBDA_GROUPS),
        Column("failure", _STR, "(B,)", "'teacher:dimension' of its lowest score: what sank it", nullable=True),
        Column("source", _STR, "(B,)", "where the reward came from", choices={"": ("teachers", "human")}),
        Column("disagreement", pa.float32(), "(B,)", "largest spread between two teachers on one group"),
    ),
    key=("prompt_id", "candidate_id"),
)

REFERENCE_LOGPROBS = ShardSpec(
    "reference_logprobs",
    "What the reference role returns: per-token logprobs of each candidate under the frozen reference.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate"),
        Column("ref_logprobs", _FLOATS, "(B, T_i)", "the experience batch's ref_logprobs"),
    ),
    key=("prompt_id", "candidate_id"),
    row_checks=(NonPositive("ref_logprobs"),),
)

RM_REWARDS = ShardSpec(
    "rm_rewards",
    "What the reward-model role returns: the raw scalar of each candidate and the weights' version.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt"),
        Column("candidate_id", _STR, "(B,)", "the candidate"),
        Column("reward", pa.float32(), "(B,)", "the reward model's scalar (unbounded)"),
        Column("reward_model_version", pa.int64(), "(B,)", "version of the reward model's weights that scored it"),
    ),
    key=("prompt_id", "candidate_id"),
)

SHARDS: dict[str, ShardSpec] = {
    s.kind: s for s in (DIALOGS, SUMMARIES, LABYRINTH, PROMPTS, CANDIDATES, SCORES, PAIRS, EXPERIENCE, JUDGE_ITEMS,
                        TOKEN_SEQUENCES, PREFERENCE_BATCH, REWARDS, REFERENCE_LOGPROBS, RM_REWARDS)
}


def shard_spec(kind: str) -> ShardSpec:
    """The spec of shard ``kind``; the error lists the valid kinds."""
    try:
        return SHARDS[kind]
    except KeyError:
        raise ValueError(f"unknown shard kind {kind!r}; valid kinds: {', '.join(SHARDS)}") from None
