"""One learner update on a batch: DPO on a ``preference_batch``, PPO on an ``experience`` batch.

Every rank of a data-parallel group gets the whole batch (one zero-copy object) and takes rows
``rank, rank + W, …``. So all ranks run the same number of micro-batches (DDP needs every rank in
every all-reduce), a short rank repeats rows with weight 0. Loss math lives in ``ouro_ray.algos``;
this module only arranges tensors, micro-batches and accumulation (glue).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import pyarrow as pa
import torch

from ouro_ray.algos import (
    dpo_loss,
    entropy_bonus,
    gae,
    kl_penalty,
    masked_mean,
    ppo_policy_loss,
    ptx_loss,
    token_level_rewards,
    token_logprobs,
    value_loss,
    whiten,
)
from ouro_ray.config.learner import DPOConfig, OptimConfig, PPOConfig
from ouro_ray.learner.batches import PPOBatch, TokenBatch, tokens
from ouro_ray.learner.strategy import Strategy, reduce_metrics
from ouro_ray.seeding import derive_seed


def rank_rows(n: int, rank: int, world: int, shard_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """This rank's row indices and a validity flag per index (False: a weight-0 repeat).

    ``shard_rows`` set: the batch is already this rank's shard (a Ray Data split), padded by repeats
    to ``shard_rows``, the longest shard, so every rank runs as many micro-batches.
    """
    if n == 0:
        raise ValueError("the learner got an empty batch (or an empty shard); fix: send at least one row per "
                         "learner worker per update")
    if shard_rows is not None:
        index = np.arange(shard_rows)
        return index % n, index < n
    per_rank = math.ceil(n / world)
    index = rank + world * np.arange(per_rank)
    return index % n, index < n


def micro_batches(rows: np.ndarray, valid: np.ndarray, size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled micro-batches of ``size`` local rows (same count on every rank)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    for start in range(0, len(rows), size):
        pick = order[start:start + size]
        yield rows[pick], valid[pick]


def _accumulate(strategy: Strategy, optim: OptimConfig, losses: Iterator[torch.Tensor]) -> list[float]:
    """Backward each micro-batch loss; step every ``grad_accum`` micro-batches (and at the end)."""
    norms, pending = [], 0
    for k, loss in enumerate(losses):  # each loss is built lazily, so one micro-batch's graph lives at a time
        last_of_group = (k + 1) % optim.grad_accum == 0
        with contextlib.nullcontext() if last_of_group else strategy.no_sync():
            strategy.backward(loss)
        pending += 1
        if last_of_group:
            norms.append(strategy.step())
            pending = 0
    if pending:
        norms.append(strategy.step())
    return norms


def _token_logps(module, prompt, prompt_mask, ids, mask) -> torch.Tensor:
    logits, _ = module(prompt, prompt_mask, ids, mask)
    return token_logprobs(logits, ids) * mask  # (B, T), 0 where padded


def dpo_update(strategy: Strategy, batch: pa.Table, cfg: DPOConfig, optim: OptimConfig, pad_id: int,
               seed: int, shard_rows: int | None = None) -> dict[str, float]:
    """``cfg.epochs`` passes of DPO over this rank's rows; metrics averaged over micro-batches."""
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        if batch.column(column).null_count:
            raise ValueError(f"DPO needs the reference's logprobs but {column} has {batch.column(column).null_count} "
                             "nulls; fix: score both sides with the reference role and pass them to preference_batch")
    prompt, prompt_mask = tokens(batch, "prompt_token_ids", pad_id, side="left")
    chosen, chosen_mask = tokens(batch, "chosen_token_ids", pad_id)
    rejected, rejected_mask = tokens(batch, "rejected_token_ids", pad_id)
    ref_chosen = torch.as_tensor(batch.column("ref_chosen_logps").to_numpy(), dtype=torch.float32)
    ref_rejected = torch.as_tensor(batch.column("ref_rejected_logps").to_numpy(), dtype=torch.float32)
    rows, valid = rank_rows(batch.num_rows, strategy.rank, strategy.world_size, shard_rows)
    log: list[dict[str, torch.Tensor]] = []

    def losses():
        for epoch in range(cfg.epochs):
            for idx, ok in micro_batches(rows, valid, optim.micro_batch_size, derive_seed(seed, "dpo", epoch)):
                i = torch.as_tensor(idx)
                chosen_logps = _token_logps(strategy.module, prompt[i], prompt_mask[i], chosen[i], chosen_mask[i])
                pc = chosen_logps.sum(dim=-1)  # (b,)
                pr = _token_logps(strategy.module, prompt[i], prompt_mask[i], rejected[i], rejected_mask[i]).sum(dim=-1)
                keep = torch.as_tensor(ok)
                if not keep.any():  # a padding-only micro-batch still joins the all-reduce, with no gradient
                    yield (pc.sum() + pr.sum()) * 0.0
                    continue
                loss, metrics = dpo_loss(pc[keep], pr[keep], ref_chosen[i][keep], ref_rejected[i][keep], cfg.beta,
                                         kind=cfg.kind, label_smoothing=cfg.label_smoothing)
                if cfg.nll_coef > 0:  # RPO: the chosen side's token-mean NLL keeps the preferred texts likely
                    nll, nll_metrics = ptx_loss(chosen_logps[keep], chosen_mask[i][keep].float(), cfg.nll_coef)
                    loss, metrics = loss + nll, metrics | {"chosen_nll": nll_metrics["ptx_nll"]}
                log.append(metrics | {"loss": loss.detach()})
                yield loss

    norms = _accumulate(strategy, optim, losses())
    return _summarise(log, norms)


def _summarise(log: list[dict[str, torch.Tensor]], norms: list[float]) -> dict[str, float]:
    out = {k: float(torch.stack([m[k] for m in log]).float().mean()) for k in (log[0] if log else {})}
    out["grad_norm"] = float(np.mean(norms)) if norms else 0.0
    return out


def _with_advantages(module, t: PPOBatch, cfg: PPOConfig, kl_coef: float) -> PPOBatch:
    """Old values, per-token KL to the reference, shaped token rewards, GAE advantages and returns."""
    with torch.no_grad():
        _, old_values = module(t.tokens.prompt, t.tokens.prompt_mask, t.tokens.ids, t.tokens.mask)
    mask = t.mask  # (B, T)
    kl = kl_penalty(t.old_logprobs, t.ref_logprobs, cfg.kl_kind) * mask  # (B, T)
    reward = t.reward.clamp(-cfg.reward_clip, cfg.reward_clip) if cfg.reward_clip > 0 else t.reward  # (B,)
    rewards = token_level_rewards(reward, kl, kl_coef, mask)  # (B, T)
    advantages, returns = gae(rewards, old_values * mask, mask, cfg.gamma, cfg.lam)
    if cfg.whiten_advantages:
        advantages = whiten(advantages, mask)
    return t.with_advantages(old_values * mask, kl, advantages, returns)


def _ptx_term(strategy: Strategy, ptx: TokenBatch, k: int, size: int, coef: float):
    """PPO-ptx (InstructGPT eq. 2): the NLL of pretraining rows, micro-batch ``k`` of them, cyclically."""
    rows = ptx.rows(torch.arange(k * size, (k + 1) * size) % ptx.ids.shape[0])
    logits, _ = strategy.module(rows.prompt, rows.prompt_mask, rows.ids, rows.mask)
    return ptx_loss(token_logprobs(logits, rows.ids), rows.mask.float(), coef)


def ppo_update(strategy: Strategy, batch: pa.Table, cfg: PPOConfig, optim: OptimConfig, pad_id: int, seed: int,
               kl_coef: float, ptx: pa.Table | None = None, shard_rows: int | None = None) -> dict[str, float]:
    """``cfg.epochs`` passes of clipped PPO with a value head over this rank's rows of an experience batch.

    With ``cfg.ptx_coef > 0``, ``ptx`` (a ``token_sequences`` table: pretraining text, or in ``ouro run`` the
    constitution's revisions) adds the PPO-ptx term to every micro-batch's loss; an empty table adds none.
    """
    if cfg.ptx_coef > 0 and ptx is None:
        raise ValueError("learner.ppo.ptx_coef > 0 but no pretraining batch was given; fix: pass ptx rows "
                         "(a token_sequences table) with each update, or set learner.ppo.ptx_coef=0")
    ptx_t = None
    if ptx is not None and cfg.ptx_coef > 0 and ptx.num_rows:  # a round with no rows (no revision won): no term
        ptx_t = TokenBatch.from_table(ptx, pad_id)
    rows, valid = rank_rows(batch.num_rows, strategy.rank, strategy.world_size, shard_rows)
    t = PPOBatch.from_table(batch.take(pa.array(rows)), pad_id).masked(torch.as_tensor(valid))
    t = _with_advantages(strategy.module, t, cfg, kl_coef)
    local = np.arange(len(rows))
    per_epoch = math.ceil(len(rows) / optim.micro_batch_size)
    log: list[dict[str, torch.Tensor]] = []
    epochs_run = 0

    def losses():
        nonlocal epochs_run
        for epoch in range(cfg.epochs):
            if epoch and cfg.stop_kl is not None and _epoch_kl(log[-per_epoch:], strategy) > cfg.stop_kl:
                return  # the last epoch moved the policy too far from the one that sampled (cleanrl's target_kl)
            epochs_run += 1
            for idx, _ in micro_batches(local, valid, optim.micro_batch_size, derive_seed(seed, "ppo", epoch)):
                m = t.rows(torch.as_tensor(idx))
                mask = m.mask  # (b, T)
                logits, values = strategy.module(m.tokens.prompt, m.tokens.prompt_mask, m.tokens.ids, m.tokens.mask)
                logprobs = token_logprobs(logits, m.tokens.ids)  # (b, T)
                pg_loss, pg_metrics = ppo_policy_loss(logprobs, m.old_logprobs, m.advantages, mask, cfg.clip_eps)
                vf_loss, vf_metrics = value_loss(values, m.old_values, m.returns, mask, cfg.value_clip_eps)
                entropy = entropy_bonus(logits.float(), mask)
                loss = pg_loss + cfg.vf_coef * vf_loss - cfg.entropy_coef * entropy
                extra = {}
                if ptx_t is not None:
                    ptx_term, extra = _ptx_term(strategy, ptx_t, len(log), optim.micro_batch_size, cfg.ptx_coef)
                    loss = loss + ptx_term
                log.append(pg_metrics | vf_metrics | extra | {"pg_loss": pg_loss.detach(), "vf_loss": vf_loss.detach(),
                                                              "entropy": entropy.detach()})
                yield loss

    norms = _accumulate(strategy, optim, losses())
    out = _summarise(log, norms)
    out["kl_to_ref"] = float(masked_mean(t.kl, t.mask))
    out["reward_mean"] = float(t.reward[torch.as_tensor(valid)].mean())
    out["epochs"] = float(epochs_run)
    return out


def _epoch_kl(log: list[dict[str, torch.Tensor]], strategy: Strategy) -> float:
    """An epoch's mean approximate KL over its micro-batches and every rank (so all ranks stop at the same epoch)."""
    kl = float(torch.stack([m["approx_kl"] for m in log]).float().mean())
    return reduce_metrics({"approx_kl": kl}, strategy.world_size)["approx_kl"]


def rm_update(strategy: Strategy, batch: pa.Table, epochs: int, optim: OptimConfig, pad_id: int, seed: int,
              shard_rows: int | None = None) -> dict[str, float]:
    """``epochs`` passes of Bradley-Terry training of the reward model over this rank's pairs."""
    from ouro_ray.algos import bradley_terry_loss
    from ouro_ray.learner.reward_model import pair_tensors

    tensors = pair_tensors(batch, pad_id)
    rows, valid = rank_rows(batch.num_rows, strategy.rank, strategy.world_size, shard_rows)
    log: list[dict[str, torch.Tensor]] = []

    def losses():
        for epoch in range(epochs):
            for idx, ok in micro_batches(rows, valid, optim.micro_batch_size, derive_seed(seed, "rm", epoch)):
                i = torch.as_tensor(idx)
                r_chosen = strategy.module(*(t[i] for t in tensors["chosen"]))
                r_rejected = strategy.module(*(t[i] for t in tensors["rejected"]))
                keep = torch.as_tensor(ok)
                if not keep.any():  # a padding-only micro-batch still joins the all-reduce, with no gradient
                    yield (r_chosen.sum() + r_rejected.sum()) * 0.0
                    continue
                loss, metrics = bradley_terry_loss(r_chosen[keep], r_rejected[keep])
                log.append(metrics | {"loss": loss.detach()})
                yield loss

    return _summarise(log, _accumulate(strategy, optim, losses()))
