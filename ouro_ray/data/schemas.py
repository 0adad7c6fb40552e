"""The Arrow schema of every shard of the Ouroboros loop, defined once.

Notation for shapes: ``B`` rows in a batch; ``N_i`` items of row i (turns, facts, …); ``T_i`` tokens
of row i's candidate (response); ``P_i`` tokens of row i's prompt. Per-token columns are Arrow lists
(ragged); the learner pads them to ``(B, T)`` with ``T = max_i T_i`` and a mask.

Every column that crosses an actor boundary is a :class:`Column` here: name, Arrow type, shape, one-line
meaning, and the allowed values of any enumerated string inside it. ``SHARDS`` maps each shard kind
to its :class:`ShardSpec`. JSON records are checked with :func:`record_problems`; Arrow batches entering
an actor with :func:`validate_batch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

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


RowCheck = Callable[[Mapping[str, Any]], "str | None"]


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

# ---------------------------------------------------------------- row checks


def _same_length(*names: str) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        lengths = {n: len(row[n]) for n in names if row.get(n) is not None}
        if len(set(lengths.values())) > 1:
            return "per-token columns differ in length: " + ", ".join(f"{n}={k}" for n, k in lengths.items())
        return None

    return check


def _non_positive(name: str) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        bad = [i for i, v in enumerate(row.get(name) or ()) if v > 0]
        return f"{name}[{bad[0]}] = {row[name][bad[0]]}: a log-probability must be <= 0" if bad else None

    return check


def _non_empty(name: str) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        return f"{name}: must not be empty" if not row.get(name) else None

    return check


def _differs(a: str, b: str) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        return f"{a} and {b} are the same text: a pair must differ" if row.get(a) == row.get(b) else None

    return check


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
    row_checks=(_non_empty("turns"),),
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
    row_checks=(_non_empty("prompt"),),
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
    row_checks=(_non_empty("prompt"),),
)

CANDIDATES = ShardSpec(
    "candidates",
    "Stage 4: candidates the policy generated for each prompt.",
    (
        Column("prompt_id", _STR, "(B,)", "the prompt answered"),
        Column("candidate_id", _STR, "(B,)", "id of the candidate, unique within its prompt"),
        Column("text", _STR, "(B,)", "the decoded candidate"),
        Column("token_ids", _TOKENS, "(B, T_i)", "candidate token ids (prompt excluded)"),
        Column("logprobs", _FLOATS, "(B, T_i)", "log-probability of each candidate token under the policy"),
        Column("policy_version", pa.int64(), "(B,)", "version of the policy weights that generated it"),
    ),
    key=("prompt_id", "candidate_id"),
    row_checks=(_same_length("token_ids", "logprobs"), _non_positive("logprobs")),
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
    row_checks=(_non_empty("prompt"), _differs("chosen", "rejected")),
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
        _same_length("token_ids", "old_logprobs", "ref_logprobs", "values"),
        _non_empty("token_ids"),
        _non_positive("old_logprobs"),
        _non_positive("ref_logprobs"),
    ),
)

SHARDS: dict[str, ShardSpec] = {
    s.kind: s for s in (DIALOGS, SUMMARIES, LABYRINTH, PROMPTS, CANDIDATES, SCORES, PAIRS, EXPERIENCE)
}


def shard_spec(kind: str) -> ShardSpec:
    """The spec of shard ``kind``; the error lists the valid kinds."""
    try:
        return SHARDS[kind]
    except KeyError:
        raise ValueError(f"unknown shard kind {kind!r}; valid kinds: {', '.join(SHARDS)}") from None


# ---------------------------------------------------------------- JSON record checks


def _value_problems(tp: pa.DataType, value: Any, path: str, choices: Mapping[str, tuple[str, ...]],
                    sub: str, nullable: bool) -> list[str]:
    """Problems of one JSON value against an Arrow type, recursing into lists, structs and maps."""
    where = path or "record"
    if value is None:
        return [] if nullable else [f"{where}: missing or null, but required"]
    if pa.types.is_string(tp):
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__} {value!r:.60}"]
        allowed = choices.get(sub)
        if allowed and value not in allowed:
            return [f"{where}: {value!r} is not one of {' | '.join(allowed)}"]
        return []
    if pa.types.is_integer(tp):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: expected a whole number, got {value!r:.60}"]
        bits = tp.bit_width - 1
        return [] if -(2**bits) <= value < 2**bits else [f"{where}: {value} does not fit in {tp}"]
    if pa.types.is_floating(tp):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: expected a number, got {value!r:.60}"]
        return [] if math.isfinite(value) else [f"{where}: {value} is not a finite number"]
    if pa.types.is_boolean(tp):
        return [] if isinstance(value, bool) else [f"{where}: expected true or false, got {value!r:.60}"]
    if pa.types.is_map(tp):
        if not isinstance(value, dict):
            return [f"{where}: expected an object of name → number, got {type(value).__name__}"]
        out: list[str] = []
        for k, v in value.items():
            out += _value_problems(tp.item_type, v, f"{path}.{k}", choices, sub, False)
        return out
    if pa.types.is_list(tp):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__} {value!r:.60}"]
        out = []
        for i, item in enumerate(value):
            out += _value_problems(tp.value_type, item, f"{path}[{i}]", choices, sub, False)
        return out
    if pa.types.is_struct(tp):
        return _struct_problems(tp, value, path, choices, sub)
    raise TypeError(f"schema uses unsupported Arrow type {tp} at {where}")


def _struct_problems(tp: pa.StructType, value: Any, path: str, choices: Mapping[str, tuple[str, ...]],
                     sub: str) -> list[str]:
    where = path or "record"
    if not isinstance(value, dict):
        return [f"{where}: expected an object, got {type(value).__name__} {value!r:.60}"]
    names = [tp.field(i).name for i in range(tp.num_fields)]
    out = [f"{path + '.' if path else ''}{k}: unknown field{_suggest(k, names)}; expected fields: {', '.join(names)}"
           for k in value if k not in names]
    for f in (tp.field(i) for i in range(tp.num_fields)):
        out += _value_problems(f.type, value.get(f.name), f"{path + '.' if path else ''}{f.name}",
                               choices, f"{sub}.{f.name}".lstrip("."), f.nullable)
    return out


def _suggest(name: str, valid: list[str]) -> str:
    import difflib

    near = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _strings_to_lists(tp: pa.DataType, value: Any) -> Any:
    if isinstance(value, str) and tp == _STRS:
        return [value]
    if isinstance(value, dict) and pa.types.is_struct(tp):
        return {k: _strings_to_lists(tp.field(k).type, v) if tp.get_field_index(k) >= 0 else v
                for k, v in value.items()}
    return value


def normalize_record(spec: ShardSpec, record: Mapping[str, Any]) -> dict[str, Any]:
    """The JSONL leniency, lossless and documented: a single string where a list of strings is
    expected becomes a one-item list (e.g. ``"logic": "A, so B"``). Nothing else is rewritten."""
    return {k: _strings_to_lists(spec.column(k).type, v) if k in spec.names else v for k, v in record.items()}


def record_problems(spec: ShardSpec, record: Any) -> list[str]:
    """Every problem of one JSON record against ``spec``; empty means valid."""
    if not isinstance(record, dict):
        return [f"expected a JSON object with {', '.join(spec.names)}, got {type(record).__name__}"]
    out = [f"{k}: unknown field{_suggest(k, list(spec.names))}; expected fields: {', '.join(spec.names)}"
           for k in record if k not in spec.names]
    for c in spec.columns:
        out += _value_problems(c.type, record.get(c.name), c.name, c.choices, "", c.nullable)
    if not out:
        out += [p for check in spec.row_checks if (p := check(record))]
    return out


# ---------------------------------------------------------------- Arrow batch checks


class BatchSchemaError(ValueError):
    """An Arrow batch that does not match its shard schema, naming the column and the producer."""


def validate_batch(batch: pa.RecordBatch | pa.Table, kind: str, producer: str) -> None:
    """Check a batch entering an actor: columns, types, nulls and enumerations.

    Raises :class:`BatchSchemaError` naming the shard, the column and the producer. Cheap: it
    inspects types and runs vectorised checks, never converting rows to Python.
    """
    spec = shard_spec(kind)
    problems: list[str] = []
    names = set(batch.schema.names)
    for c in spec.columns:
        if c.name not in names:
            problems.append(f"column {c.name!r} is missing ({c.meaning})")
            continue
        got = batch.schema.field(c.name).type
        if got != c.type:
            problems.append(f"column {c.name!r} has type {got}, expected {c.type}")
            continue
        col = batch.column(c.name)
        if not c.nullable and col.null_count:
            problems.append(f"column {c.name!r} has {col.null_count} nulls but is required")
        for sub, allowed in c.choices.items():
            problems += _enum_problems(col, c.name, sub, allowed)
    for extra in sorted(names - set(spec.names)):
        problems.append(f"column {extra!r} is not in the {kind} schema{_suggest(extra, list(spec.names))}")
    if problems:
        raise BatchSchemaError(f"{kind} batch from {producer}: " + "; ".join(problems))


def _enum_problems(col: pa.Array | pa.ChunkedArray, name: str, sub: str, allowed: tuple[str, ...]) -> list[str]:
    values = col
    for part in [p for p in sub.split(".") if p]:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        while pa.types.is_list(values.type):
            values = pc.list_flatten(values)
        values = pc.struct_field(values, part)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    while pa.types.is_list(values.type):
        values = pc.list_flatten(values)
    bad = pc.filter(values, pc.invert(pc.is_in(values, value_set=pa.array(allowed))))
    bad = pc.drop_null(bad)
    if len(bad):
        label = f"{name}.{sub}" if sub else name
        return [f"column {label!r} has {bad[0].as_py()!r}, allowed: {' | '.join(allowed)}"]
    return []
