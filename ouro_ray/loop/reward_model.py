"""Stage 7's reward model: the round's preference pairs kept in a buffer, the reward model refitted on it
every ``reward_model.refit_every`` rounds, and served as one more teacher from then on.

The Ouroboros paper's replay buffer "periodically refits a light reward model". Each round keeps its
pairs in ``round_NNN/reward_pairs.parquet`` (a ``pairs`` shard):

- ``ranked``: per prompt, the best candidate over the worst by the round's combined reward, when they
  differ by at least ``scoring.pair_margin`` (the pairs DPO would train on);
- ``constitution``: the constitution's revision-over-original pairs;
- ``human``: pairs a person chose between;

of the sources ``reward_model.pair_sources`` names (the RLHF arm keeps a person's pairs only).

The buffer is the newest ``reward_model.buffer`` pairs of the rounds so far (read back from the round
directories, so a resumed run has the same buffer; older pairs leave first and are counted). A refit
is one Bradley-Terry update (:func:`ouro_ray.algos.bradley_terry_loss`, ``learner.rm_epochs`` passes)
of the reward model's own learner (Ray Train, or in the driver with ``reward_model.learner_workers: 0``),
which publishes its weights to the reward group's store; the group (``ouro/reward/<i>``) loads them
before its next batch. From the first refit on, stage 5 scores every candidate with it
(:class:`~ouro_ray.judges.reward_model.RewardModelJudge`: ``tanh(raw / reward_model.scale)``, teacher
``refit-reward-model``, content group), in training and in held-out measurement alike.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from ouro_ray.config.roles import RewardModelConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.loop.rundir import RunDir

TEACHER = "refit-reward-model"
"""The teacher name of the refitted reward model in ``scores`` (and ``scoring.teachers``)."""
PAIRS = "reward_pairs"
"""Each round's pairs: ``round_NNN/reward_pairs.parquet``."""


def round_pairs(candidates: pa.Table, prompts: pa.Table, rewards: pa.Table, margin: float,
                constitution: pa.Table | None = None, human: pa.Table | None = None) -> pa.Table:
    """The round's ``pairs``: ranked best-over-worst per prompt (reward gap ≥ ``margin``), then the
    constitution's and a person's pairs as given."""
    text = dict(zip(zip(candidates.column("prompt_id").to_pylist(), candidates.column("candidate_id").to_pylist()),
                    candidates.column("text").to_pylist()))
    prompt_of = dict(zip(prompts.column("prompt_id").to_pylist(), prompts.column("prompt").to_pylist()))
    by_prompt: dict[str, list[tuple[float, str]]] = {}
    for pid, cid, reward in zip(*(rewards.column(k).to_pylist() for k in ("prompt_id", "candidate_id", "reward"))):
        by_prompt.setdefault(pid, []).append((reward, cid))
    rows = []
    for pid, scored in by_prompt.items():
        (low, worst), (high, best) = min(scored), max(scored)
        if high - low >= margin and text[(pid, best)] != text[(pid, worst)]:
            rows.append({"prompt_id": pid, "prompt": prompt_of[pid], "chosen": text[(pid, best)],
                         "rejected": text[(pid, worst)], "source": "ranked"})
    schema = SHARDS["pairs"].schema
    parts = [pa.Table.from_pylist(rows, schema=schema)]
    parts += [t.select(schema.names).cast(schema) for t in (constitution, human) if t is not None and t.num_rows]
    return pa.concat_tables(parts)


def of_sources(pairs: pa.Table, sources: tuple[str, ...]) -> pa.Table:
    """The rows of ``pairs`` whose ``source`` is one of ``sources`` (``reward_model.pair_sources``)."""
    keep = [s in sources for s in pairs.column("source").to_pylist()]
    return pairs.filter(pa.array(keep, pa.bool_()))


class LoopRewardModel:
    """The buffer, the refit and the teacher (see the module doc). ``learner``: a
    :class:`~actors.learner_group.LearnerGroup` with ``algo: rm`` publishing to ``group``'s store;
    ``group``: the :class:`~actors.reward.RewardGroup`; ``tokenizer``: the reward model's."""

    def __init__(self, cfg: RewardModelConfig, learner: Any, group: Any, tokenizer: Any,
                 release: Sequence[Callable[[], None]] = ()):
        self.cfg, self.learner, self.group, self.tokenizer = cfg, learner, group, tokenizer
        self.release = list(release)  # the learner's close, the store's kill: what close() also stops

    @property
    def version(self) -> int:
        """Refits so far (the reward model learner's version; ``state.json`` records it per round)."""
        return int(self.learner.version)

    @property
    def teacher(self):
        """The reward model as a judge once refitted at least once (None before: an untrained head is noise)."""
        if self.version < 1:
            return None
        from ouro_ray.judges.reward_model import RewardModelJudge

        return RewardModelJudge(self.group, scale=self.cfg.scale, name=TEACHER)

    def buffer(self, run: RunDir, through: int, current: pa.Table | None = None) -> tuple[pa.Table, int]:
        """The newest ``buffer`` pairs of rounds 0..``through`` then ``current`` (this round's human pairs),
        and how many older ones were left out."""
        from ouro_ray.data import read_shard

        parts = [read_shard(path, "pairs").table for r in range(through + 1)
                 if (path := run.round_dir(r) / f"{PAIRS}.parquet").is_file()]
        schema = SHARDS["pairs"].schema
        parts = [t.cast(schema) for t in parts + ([current] if current is not None else [])]
        pairs = pa.concat_tables(parts) if parts else schema.empty_table()
        dropped = max(0, pairs.num_rows - self.cfg.buffer)
        return pairs.slice(dropped), dropped

    def due(self, r: int) -> bool:
        """Whether round r starts with a refit: every ``refit_every``-th round (round 0 too: its pairs are
        the person's only, so it refits only where a person compared candidates)."""
        return r % self.cfg.refit_every == 0

    def refit_round(self, run: RunDir, human: pa.Table | None, r: int) -> dict[str, float]:
        """Round r's refit when due, at the start of its scoring: on the buffer of earlier rounds' pairs and
        this round's human pairs (``human``, of the configured sources); {} when not due."""
        if not self.due(r):
            return {}
        current = None if human is None else of_sources(human, self.cfg.pair_sources)
        buffer, dropped = self.buffer(run, r - 1, current)
        return {"rm_buffer": buffer.num_rows, "rm_buffer_dropped": dropped, **self.refit(buffer, r)}

    def keep(self, run: RunDir, pairs: pa.Table, r: int) -> dict[str, float]:
        """Round r's pairs (:func:`round_pairs`) of the configured sources, kept for later refits."""
        pairs = of_sources(pairs, self.cfg.pair_sources)
        run.write(r, PAIRS, pairs, "pairs")
        return {"rm_pairs_new": pairs.num_rows}

    def refit(self, pairs: pa.Table, r: int) -> dict[str, float]:
        """One Bradley-Terry update on ``pairs``; the group loads the new weights before it scores again."""
        from ouro_ray.learner.batches import preference_batch, tokenize_pairs

        if pairs.num_rows == 0:
            return {"rm_refit_skipped": 1.0}
        chosen, rejected = tokenize_pairs(pairs, self.tokenizer)
        batch = preference_batch(chosen, rejected, prompt_ids=chosen.column("prompt_id").combine_chunks())
        metrics = self.learner.update(batch, producer=f"ouro run round {r} reward-model refit")
        self.group.sync_weights()
        return {f"rm_{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating))}

    def close(self) -> None:
        self.group.close()
        for close in self.release:
            close()
