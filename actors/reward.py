"""Stage 5, Score (learned teacher): the reward-model role and its group.

``RewardWorker`` holds a sequence-classification head on a causal LM (``num_labels=1``) and gives one
raw scalar per candidate. It reads a ``candidates`` batch's token columns: prompt + candidate ids,
concatenated and right-padded, and pools the hidden state of each row's *last real token* (found
from the attention mask, not from ``pad_token_id``: with pad == eos, HF's own pooling would skip a
candidate's final EOS). Output: :data:`REWARD_SCHEMA`, stamped with the producer.

Where the weights come from (``RewardModelConfig``):

* ``path: null`` — the policy's initial directory. Its causal-LM checkpoint has no ``score`` head,
  so the head is new; it is drawn from ``N(0, 1/hidden_size)`` with a generator seeded by
  ``derive_seed(seed, 'reward-head')``: every worker of a group holds the same head, and a raw score
  starts at O(1). A directory that ships a trained head keeps it.
* ``path: DIR`` — another model. Token ids in a ``candidates`` batch are the *policy's*; they are
  read directly only when the two tokenizers have the same vocabulary (checked once, at start).
  Otherwise :meth:`RewardWorker.score` refuses the batch with a clear error: the batch carries no
  prompt text to re-tokenize (decoding the policy's chat-templated ids and re-encoding them would
  feed the reward model another model's template). Score text instead: :meth:`score_texts`, which
  :class:`~ouro_ray.judges.reward_model.RewardModelJudge` uses, tokenizes the prompt (with the
  reward model's chat template) and the candidate text with the reward model's own tokenizer.

Weights (:meth:`RewardWorker.load_weights`, and pulled from ``weight_store`` before every batch as the
rollout does): a ``full`` payload with the head's names is the reward model's own state dict (an RM
trainer publishing) and replaces everything. With ``follow_policy: true`` a payload without the head
is the policy's causal LM: only the shared trunk (``model.*``) is loaded, the head is kept and
``lm_head`` ignored. A ``lora`` payload (the policy's adapter) is attached to the trunk in place.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import torch

from actors.group import ActorGroup
from actors.rollout import producer_of, stamp
from actors.weights import WeightFollower
from ouro_ray.config.roles import RewardModelConfig
from ouro_ray.data.schemas import SHARDS
from ouro_ray.data.validate import validate_batch
from ouro_ray.models.device import pick_device
from ouro_ray.models.load import encode_prompts, load_tokenizer
from ouro_ray.models.reward import load_reward_model, pooled_rewards, same_vocabulary, sequence_tensors
from ouro_ray.weights import WeightPayload, apply_weights, named_tensors

REWARD_SCHEMA = SHARDS["rm_rewards"].schema
"""What the reward role returns (the ``rm_rewards`` shard in :mod:`ouro_ray.data.schemas`)."""

_TOKENS = pa.list_(pa.int32())


# ---------------------------------------------------------------- role


class RewardWorker:
    """Raw reward-model scalars for candidates, with hot-swappable weights."""

    def __init__(self, model_dir: str, cfg: RewardModelConfig, *, seed: int = 0, weight_store: Any = None,
                 worker_index: int = 0, forward_batch_size: int = 16, name: str = "reward"):
        self.cfg, self.name, self.batch_size = cfg, f"{name}/{worker_index}", forward_batch_size
        rm_dir = Path(cfg.path).expanduser() if cfg.path else Path(model_dir)
        if not (rm_dir / "config.json").is_file():
            raise FileNotFoundError(f"reward_model.path = {cfg.path!r}: no config.json in {rm_dir}; fix: point it at "
                                    "a Hugging Face directory, or null to start from the policy's weights")
        device = pick_device()
        self.model, self.tokenizer, self.new_head = load_reward_model(rm_dir, dtype=cfg.dtype, device=device, seed=seed)
        self.shares_policy_tokens = rm_dir == Path(model_dir) or same_vocabulary(load_tokenizer(model_dir), self.tokenizer)
        self.trunk_prefix = f"{self.model.base_model_prefix}."
        self.head_names = {k for k in self.model.state_dict() if not k.startswith(self.trunk_prefix)}
        self._adapted: torch.nn.Module | None = None  # the peft wrapper once a LoRA payload arrived
        self.weights = WeightFollower(weight_store, self._apply)
        self.weights.sync()  # a restarted worker takes the latest version before any work

    # ------------------------------------------------------------ weights

    def sync_weights(self) -> int:
        """Load the newest published weights, if newer than ours; returns the version now held."""
        return self.weights.sync()

    def load_weights(self, payload: WeightPayload) -> int:
        """Load ``payload`` (RM state dict, policy trunk, or LoRA adapter; see the module doc); the new version."""
        return self.weights.take(payload)

    def _apply(self, payload: WeightPayload) -> None:
        if payload.kind == "lora":
            # The adapter goes into the trunk's modules in place; a causal-LM task type would wrap the
            # classifier in a generation wrapper, so it is dropped.
            plain = dataclasses.replace(payload, lora_config={**(payload.lora_config or {}), "task_type": None})
            self._adapted = apply_weights(self._adapted or self.model, plain)
        elif self.head_names <= payload.arrays.keys():
            self._load_state(dict(named_tensors(payload)), strict=True)
        elif self.cfg.follow_policy:
            self._load_state({k: t for k, t in named_tensors(payload) if k.startswith(self.trunk_prefix)}, strict=False)
        else:
            raise ValueError(
                f"weights version {payload.version} lack the reward head {sorted(self.head_names)}: they look like the "
                "policy's causal LM; fix: set reward_model.follow_policy=true to share the policy's trunk, or publish "
                "the reward model's own state dict")

    def _load_state(self, state: dict[str, torch.Tensor], strict: bool) -> None:
        target = self._adapted.get_base_model() if self._adapted is not None else self.model
        missing, unexpected = target.load_state_dict(state, strict=False)
        missing = [k for k in missing if strict or k.startswith(self.trunk_prefix)]
        if missing or unexpected:
            raise KeyError(f"weights do not fit the reward model: missing {sorted(missing)[:3]}, unexpected "
                           f"{sorted(unexpected)[:3]}; fix: publish weights of the same architecture")

    # ------------------------------------------------------------ scoring

    def score(self, candidates: pa.Table) -> pa.Table:
        """:data:`REWARD_SCHEMA` rows for a ``candidates`` batch, in its row order."""
        validate_batch(candidates, "candidates", producer_of(candidates))
        if not self.shares_policy_tokens:
            raise ValueError(
                f"reward_model.path = {self.cfg.path!r} has a tokenizer whose vocabulary differs from the policy's, so "
                "the batch's token ids mean other words to it; fix: use a reward model built on the policy's tokenizer, "
                "or score text with RewardModelJudge / score_texts (re-tokenized by the reward model)")
        self.sync_weights()
        rewards = self._score_tokens(candidates.column("prompt_token_ids"), candidates.column("token_ids"))
        table = pa.table({
            "prompt_id": candidates.column("prompt_id"),
            "candidate_id": candidates.column("candidate_id"),
            "reward": pa.array(rewards, pa.float32()),
            "reward_model_version": pa.array(np.full(len(rewards), self.weights.version, np.int64)),
        }, schema=REWARD_SCHEMA)
        return stamp(table, f"ouro/{self.name}")

    def score_texts(self, prompts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """(B,) float32 raw scalars for (prompt, candidate text) pairs, tokenized by the reward model.

        The prompt is rendered as the policy's prompts are (``encode_prompts``: chat template, one
        user turn); the candidate is scored as a finished answer, with EOS appended.
        """
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidates: give one prompt per candidate")
        self.sync_weights()
        eos = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        cand_ids = [list(ids) + eos for ids in self.tokenizer(list(candidates), add_special_tokens=False)["input_ids"]]
        prompt_ids = encode_prompts(self.tokenizer, list(prompts))
        return self._score_tokens(pa.array(prompt_ids, _TOKENS), pa.array(cand_ids, _TOKENS))

    def score_text_table(self, table: pa.Table) -> pa.Table:
        """:meth:`score_texts` over a table of ``prompt`` and ``candidate`` strings (the group's fan-out form)."""
        rewards = self.score_texts(table.column("prompt").to_pylist(), table.column("candidate").to_pylist())
        return pa.table({"reward": pa.array(rewards, pa.float32())})

    def _score_tokens(self, prompt_ids: pa.Array | pa.ChunkedArray, token_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        ids, mask, last = sequence_tensors(prompt_ids, token_ids, self.tokenizer.pad_token_id)
        vocab = self.model.get_input_embeddings().num_embeddings
        if ids.numel() and int(ids.max()) >= vocab:
            raise ValueError(f"token id {int(ids.max())} is outside the reward model's {vocab}-token embedding; "
                             "fix: score candidates of a policy that shares the reward model's tokenizer")
        return pooled_rewards(self.model, ids, mask, last, self.batch_size).numpy()

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.weights.version, "new_head": self.new_head,
                "shares_policy_tokens": self.shares_policy_tokens}


class RewardGroup:
    """The reward-model actors: candidates in, raw rewards out, in row order."""

    def __init__(self, model_dir: str, cfg: RewardModelConfig, *, seed: int = 0, weight_store: Any = None,
                 prefix: str = "ouro", namespace: str | None = None):
        self.cfg = cfg
        self.group = ActorGroup("reward", RewardWorker, cfg.workers, str(model_dir), cfg, seed=seed,
                                weight_store=weight_store, prefix=prefix, namespace=namespace)

    def score(self, candidates: pa.Table) -> pa.Table:
        """:data:`REWARD_SCHEMA` for every candidate; the same numbers whatever the number of workers."""
        def merge(parts: list[pa.Table]) -> pa.Table:
            return stamp(pa.concat_tables(parts) if parts else REWARD_SCHEMA.empty_table(), "ouro/reward")

        return self.group.map_rows("score", candidates, merge=merge)

    def score_texts(self, prompts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """(B,) float32 raw scalars for text pairs, spread over the workers (what the Judge adapter calls)."""
        if len(prompts) != len(candidates):
            raise ValueError(f"{len(prompts)} prompts but {len(candidates)} candidates: give one prompt per candidate")
        table = pa.table({"prompt": pa.array(list(prompts), pa.string()),
                          "candidate": pa.array(list(candidates), pa.string())})
        merged = self.group.map_rows("score_text_table", table,
                                     merge=lambda parts: pa.concat_tables(parts) if parts else None)
        return np.zeros(0, np.float32) if merged is None else merged.column("reward").to_numpy()

    def sync_weights(self) -> list[int]:
        """Make every worker load the latest published version now; their versions."""
        return self.group.call_all("sync_weights")

    def load_weights(self, payload: WeightPayload) -> list[int]:
        """Push ``payload`` to every worker directly (no store); their versions."""
        return self.group.call_all("load_weights", payload)

    def info(self) -> list[dict[str, Any]]:
        return self.group.call_all("info")

    def close(self) -> None:
        self.group.close()
