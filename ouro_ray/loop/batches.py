"""Stage 6's batches from a round's candidates: PPO experience, or DPO pairs from the ranking.

DPO pairs come from two places: per prompt, the best and the worst candidate by combined reward when
they differ by at least ``scoring.pair_margin`` (their token ids are reused as sampled, no
re-tokenising), and the constitution's (revision, original) text pairs, tokenized here; with
``scoring.balance_pairs`` as many pairs of requests to refuse as of the rest (or
``scoring.balance_ratio`` times as many).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ouro_ray.data.schemas import SHARDS
from ouro_ray.learner.batches import preference_batch, tokenize_pairs
from ouro_ray.learner.experience import build_experience

_SEQ = list(SHARDS["token_sequences"].names)


def ppo_batch(candidates: pa.Table, rewards: pa.Table, reference) -> pa.Table:
    """The ``experience`` batch: candidates, the reference's logprobs, the combined reward."""
    ref = reference.logprobs(candidates)
    return build_experience(candidates, ref, rewards.select(["prompt_id", "candidate_id", "reward"]))


def ranked_pairs(candidates: pa.Table, rewards: pa.Table, margin: float) -> tuple[pa.Table, pa.Table]:
    """``(chosen, rejected)`` ``token_sequences``: each prompt's best over its worst candidate."""
    reward_of = {(p, c): r for p, c, r in zip(*(rewards.column(k).to_pylist()
                                                  for k in ("prompt_id", "candidate_id", "reward")))}
    by_prompt: dict[str, list[int]] = {}
    for i, key in enumerate(zip(candidates.column("prompt_id").to_pylist(),
                                candidates.column("candidate_id").to_pylist())):
        by_prompt.setdefault(key[0], []).append(i)
    keys = list(zip(candidates.column("prompt_id").to_pylist(), candidates.column("candidate_id").to_pylist()))
    chosen, rejected = [], []
    for rows in by_prompt.values():
        values = np.array([reward_of[keys[i]] for i in rows])
        best, worst = rows[int(values.argmax())], rows[int(values.argmin())]
        if values.max() - values.min() >= margin and best != worst:
            chosen.append(best)
            rejected.append(worst)
    seq = candidates.select(_SEQ)
    return seq.take(pa.array(chosen, pa.int64())), seq.take(pa.array(rejected, pa.int64()))


def refusal_prompts(items: pa.Table) -> set[str]:
    """Prompt ids of a ``judge_items`` table whose target's behaviour is to refuse (the harmful requests)."""
    behavior = pc.struct_field(items.column("target"), "behavior")
    return set(pc.filter(items.column("prompt_id"), pc.equal(behavior, "refuse")).to_pylist())


def balance_pairs(chosen: pa.Table, rejected: pa.Table, refuse: set[str], seed: int,
                  ratio: float = 1.0) -> tuple[pa.Table, pa.Table, int]:
    """``ratio`` pairs of the prompts in ``refuse`` per pair of the rest (1: as many of each): the side with more
    than its share is subsampled (seeded, order kept), the other kept whole; nothing is dropped when a side has
    none. Returns the pairs kept and the count dropped."""
    to_refuse = pc.is_in(chosen.column("prompt_id"), value_set=pa.array(sorted(refuse), pa.string())).to_numpy(
        zero_copy_only=False)
    sides = [np.flatnonzero(to_refuse), np.flatnonzero(~to_refuse)]
    if min(len(side) for side in sides) == 0:
        return chosen, rejected, 0
    refusing, rest = (len(side) for side in sides)
    if refusing <= ratio * rest:
        sizes = (refusing, min(rest, max(1, round(refusing / ratio))))
    else:
        sizes = (max(1, round(ratio * rest)), rest)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.choice(side, size, replace=False) for side, size in zip(sides, sizes)]))
    index = pa.array(keep, pa.int64())
    return chosen.take(index), rejected.take(index), chosen.num_rows - len(keep)


def dpo_batch(candidates: pa.Table, rewards: pa.Table, constitution_pairs: pa.Table, reference, tokenizer,
              margin: float, balance: tuple[set[str], int, float] | None = None) -> tuple[pa.Table, int]:
    """The ``preference_batch``: ranked pairs plus constitution pairs, with the reference's summed logprobs, and
    how many pairs ``balance`` (the prompts to refuse, a seed and the ratio: :func:`balance_pairs`) dropped."""
    chosen, rejected = ranked_pairs(candidates, rewards, margin)
    if constitution_pairs.num_rows:
        c_chosen, c_rejected = tokenize_pairs(constitution_pairs, tokenizer)
        chosen = pa.concat_tables([chosen, c_chosen.cast(chosen.schema)])
        rejected = pa.concat_tables([rejected, c_rejected.cast(rejected.schema)])
    dropped = 0
    if balance is not None:
        chosen, rejected, dropped = balance_pairs(chosen, rejected, *balance)
    if chosen.num_rows == 0:
        return SHARDS["preference_batch"].schema.empty_table(), dropped
    return preference_batch(chosen, rejected, reference.logprobs(chosen), reference.logprobs(rejected),
                            chosen.column("prompt_id").combine_chunks()), dropped


def revision_rows(constitution_pairs: pa.Table, tokenizer) -> pa.Table:
    """The constitution's chosen texts as ``token_sequences`` (the PPO-ptx rows of a round: Constitutional AI's
    supervised stage, fine-tuning on the revised answers; with ``judges.constitution.pairs = ranked`` also the
    originals the ranker kept over a worse revision)."""
    if constitution_pairs.num_rows == 0:
        return SHARDS["token_sequences"].schema.empty_table()
    chosen, _ = tokenize_pairs(constitution_pairs, tokenizer)
    return chosen
