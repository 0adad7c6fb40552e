"""Stage 6's batches from a round's candidates: PPO experience, or DPO pairs from the ranking.

DPO pairs come from two places: per prompt, the best and the worst candidate by combined reward when
they differ by at least ``scoring.pair_margin`` (their token ids are reused as sampled, no
re-tokenising), and the constitution's (revision, original) text pairs, tokenized here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

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


def dpo_batch(candidates: pa.Table, rewards: pa.Table, constitution_pairs: pa.Table, reference, tokenizer,
              margin: float) -> pa.Table:
    """The ``preference_batch``: ranked pairs plus constitution pairs, with the reference's summed logprobs."""
    chosen, rejected = ranked_pairs(candidates, rewards, margin)
    if constitution_pairs.num_rows:
        c_chosen, c_rejected = tokenize_pairs(constitution_pairs, tokenizer)
        chosen = pa.concat_tables([chosen, c_chosen.cast(chosen.schema)])
        rejected = pa.concat_tables([rejected, c_rejected.cast(rejected.schema)])
    if chosen.num_rows == 0:
        return SHARDS["preference_batch"].schema.empty_table()
    return preference_batch(chosen, rejected, reference.logprobs(chosen), reference.logprobs(rejected),
                            chosen.column("prompt_id").combine_chunks())


def revision_rows(constitution_pairs: pa.Table, tokenizer) -> pa.Table:
    """The constitution's chosen texts as ``token_sequences`` (the PPO-ptx rows of a round: Constitutional AI's
    supervised stage, fine-tuning on the revised answers; with ``judges.constitution.pairs = ranked`` also the
    originals the ranker kept over a worse revision)."""
    if constitution_pairs.num_rows == 0:
        return SHARDS["token_sequences"].schema.empty_table()
    chosen, _ = tokenize_pairs(constitution_pairs, tokenizer)
    return chosen
