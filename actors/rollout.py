"""Stage 4, Regenerate: the rollout role and its group.

``RolloutWorker`` turns a batch of prompts (a ``labyrinth`` or ``prompts`` Arrow table) into a
``candidates`` table: ``n`` candidates per prompt with token ids, per-token logprobs, text and the
policy version that produced them. Before every batch it asks the weight store for a newer version
and loads it, so its output is stamped with the weights that really generated it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from actors.group import ActorGroup
from actors.weights import WeightFollower
from cluster import telemetry
from ouro_ray.config.roles import RolloutConfig, SamplingConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.tensors import arrays_to_lists
from ouro_ray.data.validate import validate_batch
from ouro_ray.models.load import encode_prompts
from ouro_ray.rollout.protocol import GeneratedCandidate
from ouro_ray.rollout.select import make_backend

PRODUCER_KEY = b"ouro.producer"


def producer_of(table: pa.Table) -> str:
    """Who made a batch (stamped in its schema metadata), for error messages."""
    meta = table.schema.metadata or {}
    return meta.get(PRODUCER_KEY, b"the caller").decode()


def stamp(table: pa.Table, producer: str) -> pa.Table:
    """``table`` with ``producer`` recorded in its schema metadata (no data copied)."""
    return table.replace_schema_metadata((table.schema.metadata or {}) | {PRODUCER_KEY: producer.encode()})


def prompt_kind(table: pa.Table) -> str:
    """'labyrinth' or 'prompts': the two shard kinds a rollout accepts."""
    return "labyrinth" if "target" in table.column_names else "prompts"


def candidates_table(prompt_ids: list[str], prompt_tokens: list[list[int]], cands: list[GeneratedCandidate],
                     n: int, version: int) -> pa.Table:
    """The ``candidates`` table for prompt-major ``cands`` (``n`` per prompt)."""
    k = np.arange(len(cands)) % n
    return pa.table({
        "prompt_id": pa.array([prompt_ids[c.prompt_index] for c in cands], pa.string()),
        "candidate_id": pa.array([f"c{i}" for i in k], pa.string()),
        "text": pa.array([c.text for c in cands], pa.string()),
        "prompt_token_ids": arrays_to_lists([np.asarray(prompt_tokens[c.prompt_index], np.int32) for c in cands], pa.int32()),
        "token_ids": arrays_to_lists([c.token_ids for c in cands], pa.int32()),
        "logprobs": arrays_to_lists([c.logprobs for c in cands], pa.float32()),
        "policy_version": pa.array(np.full(len(cands), version, np.int64)),
    }, schema=SHARDS["candidates"].schema)


class RolloutWorker:
    """Generates candidates with the current policy weights (transformers or vLLM)."""

    def __init__(self, model_dir: str, cfg: RolloutConfig, *, seed: int = 0, weight_store: Any = None,
                 worker_index: int = 0, name: str = "rollout"):
        self.cfg, self.name = cfg, f"{name}/{worker_index}"
        self.backend, self.tokenizer = make_backend(model_dir, cfg, seed)
        self.weights = WeightFollower(weight_store, self.backend.load_payload)
        self.weights.sync()  # a restarted worker takes the latest version before any work

    def sync_weights(self) -> int:
        """Load the newest published weights, if newer than ours; returns the version now held."""
        return self.weights.sync()

    def generate(self, prompts: pa.Table, seed: int, sampling: SamplingConfig | None = None) -> pa.Table:
        """``sampling.n`` candidates per row of ``prompts``, stamped with the policy version used."""
        validate_batch(prompts, prompt_kind(prompts), producer_of(prompts))
        sampling = sampling or self.cfg.sampling
        self.sync_weights()
        prompt_ids = prompts.column("prompt_id").to_pylist()
        tokens = encode_prompts(self.tokenizer, prompts.column("prompt").to_pylist())
        started = time.perf_counter()
        cands = self.backend.generate(tokens, sampling, seed)
        generated = sum(len(c.token_ids) for c in cands)
        telemetry.record("ouro_rollout_tokens_total", generated, worker=self.name)
        telemetry.record("ouro_rollout_tokens_per_s", generated / max(time.perf_counter() - started, 1e-9),
                         worker=self.name)
        return stamp(candidates_table(prompt_ids, tokens, cands, sampling.n, self.weights.version), f"ouro/{self.name}")

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend.name, "version": self.weights.version}


class RolloutGroup:
    """The rollout actors: prompts in, candidates out, spread over the workers by row slices."""

    def __init__(self, model_dir: str, cfg: RolloutConfig, *, seed: int = 0, weight_store: Any = None,
                 prefix: str = "ouro", namespace: str | None = None):
        self.cfg = cfg
        self.group = ActorGroup("rollout", RolloutWorker, cfg.workers, str(model_dir), cfg, seed=seed,
                                weight_store=weight_store, prefix=prefix, namespace=namespace)

    def generate(self, prompts: pa.Table, seed: int, sampling: SamplingConfig | None = None) -> pa.Table:
        """Candidates for every prompt; the same table for a given seed whatever the number of workers."""
        def merge(parts: list[pa.Table]) -> pa.Table:
            table = pa.concat_tables(parts) if parts else SHARDS["candidates"].schema.empty_table()
            return stamp(table, "ouro/rollout")

        return self.group.map_rows("generate", prompts, seed=seed, sampling=sampling, merge=merge)

    def sync_weights(self) -> list[int]:
        """Make every worker load the latest published version now; their versions."""
        return self.group.call_all("sync_weights")

    def info(self) -> list[dict[str, Any]]:
        return self.group.call_all("info")

    def close(self) -> None:
        self.group.close()
