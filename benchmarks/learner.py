"""learner: DPO pairs/s of the Ray Train learner (2 CPU workers, DDP) ÷ TRL's DPOTrainer in one process.

Both train the tiny-world policy with sigmoid DPO (β 0.1, AdamW lr 1e-4, betas (0.9, 0.95), clip 1.0)
on the same pairs: tiny-world prompts, two sampled candidates each (chosen, rejected), and the
reference's summed logprobs computed once beforehand (as the loop's reference role does; TRL with
``precompute_ref_log_probs``, in its constructor). Every micro-batch holds 8 pairs and every
optimizer step 16 on both sides: ours 8 per worker × 2 workers, TRL 8 × 2 accumulation steps.
Thing: :class:`LearnerGroup` ``update(batch)`` (one pass over the batch; no checkpoint, no weight
store) after one warm-up update. Baseline: ``DPOTrainer.train()``, one epoch over the same pairs as
text (the same token ids decoded with the tiny tokenizer; TRL tokenizes them in its constructor),
with 1 torch thread or 2 (the cores ours uses), whichever trained faster in a short probe (for a model
this small, intra-op threads can cost more than they give). pairs/s = pairs ÷ wall seconds of the call.
Without TRL (``pip install -e .[bench]``) the suite raises: a learner figure without its baseline
is not a result.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread, timed
from benchmarks.rollout import prompt_batch, tiny_world, torch_threads

SUITE = "learner"
SIZES = {"quick": {"pairs": 32, "max_new_tokens": 24}, "full": {"pairs": 192, "max_new_tokens": 48}}
MICRO_BATCH, WORKERS, BETA, LR = 8, 2, 0.1, 1e-4


def require_trl():
    """The trl module, or an ImportError that says how to install it."""
    try:
        import trl
    except Exception as exc:  # a trl built for other transformers fails with more than ImportError
        raise ImportError(f"the learner suite compares against TRL's DPOTrainer, but trl cannot be imported "
                          f"({type(exc).__name__}: {exc}); fix: pip install -e .[bench]") from exc
    return trl


def preference_pairs(cfg, model_dir: str, pairs: int, max_new_tokens: int, seed: int) -> pa.Table:
    """A ``preference_batch`` of ``pairs`` rows: candidates c0/c1 and c2/c3 of tiny-world prompts, with the
    reference's sums joined."""
    import dataclasses

    from actors.reference import ReferenceGroup
    from actors.rollout import RolloutGroup
    from ouro_ray.config.roles import ReferenceConfig, RoleResources, SamplingConfig
    from ouro_ray.data.schemas import SHARDS
    from ouro_ray.learner.batches import preference_batch

    if pairs < 2 or pairs % 2:
        raise ValueError(f"pairs = {pairs}: need an even number >= 2 (two pairs per prompt); fix: choose a size "
                         f"from {sorted(SIZES)}")
    local = RoleResources(num_workers=0, batch_size=64)
    rollout_cfg = dataclasses.replace(cfg.rollout, backend="transformers", workers=local,
                                      sampling=SamplingConfig(n=4, temperature=1.0, max_new_tokens=max_new_tokens))
    with torch_threads(1):  # untimed set-up; one thread is the faster on this tiny model (see trl_threads)
        candidates = RolloutGroup(model_dir, rollout_cfg, seed=seed).generate(prompt_batch(cfg, pairs // 2), seed=seed)
    sequences = candidates.select(list(SHARDS["token_sequences"].names))  # prompt-major, 4 per prompt
    chosen = sequences.take(pa.array(range(0, sequences.num_rows, 2)))
    rejected = sequences.take(pa.array(range(1, sequences.num_rows, 2)))
    reference = ReferenceGroup(model_dir, ReferenceConfig(workers=RoleResources(num_workers=0, batch_size=64)))
    return preference_batch(chosen, rejected, reference.logprobs(chosen), reference.logprobs(rejected),
                            chosen.column("prompt_id").combine_chunks())


def as_text(batch: pa.Table, tokenizer) -> dict[str, list[str]]:
    """The pairs as TRL's text columns: the chat-rendered prompt, each side without its EOS (TRL appends it)."""
    def decode(rows: list[list[int]], drop_eos: bool) -> list[str]:
        eos = tokenizer.eos_token_id
        rows = [r[:-1] if drop_eos and r and r[-1] == eos else r for r in rows]
        return tokenizer.batch_decode(rows, skip_special_tokens=False)

    return {"prompt": decode(batch.column("prompt_token_ids").to_pylist(), False),
            "chosen": decode(batch.column("chosen_token_ids").to_pylist(), True),
            "rejected": decode(batch.column("rejected_token_ids").to_pylist(), True)}


def pair_tokens(prompt: list, chosen: list, rejected: list) -> float:
    """Mean tokens a pair puts through the model (prompt + chosen, prompt + rejected)."""
    return sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(prompt, chosen, rejected)) / max(len(prompt), 1)


def trl_trainer(model_dir: str, batch: pa.Table, out: str, seed: int):
    """TRL's DPOTrainer on ``batch`` as text, configured like our learner (see the module docstring)."""
    from datasets import Dataset
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from ouro_ray.models.load import load_causal_lm

    model, tokenizer = load_causal_lm(model_dir, trainable=True)
    longest = max(len(p) + max(len(c), len(r)) for p, c, r in zip(*(batch.column(k).to_pylist() for k in (
        "prompt_token_ids", "chosen_token_ids", "rejected_token_ids"))))
    args = TRLDPOConfig(
        output_dir=out, per_device_train_batch_size=MICRO_BATCH, gradient_accumulation_steps=WORKERS,
        num_train_epochs=1, learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, beta=BETA, loss_type=["sigmoid"],
        max_length=longest + 8, precompute_ref_log_probs=True, precompute_ref_batch_size=64, use_cpu=True,
        save_strategy="no", report_to="none", logging_strategy="no", disable_tqdm=True, seed=seed,
        dataloader_num_workers=0,
        bf16=False, fp16=False, gradient_checkpointing=False)  # TRL defaults to bf16 and checkpointing; ours: fp32
    dataset = Dataset.from_dict(as_text(batch, tokenizer))
    return DPOTrainer(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer)


def trl_threads(trainer, probe_pairs: int = 64) -> tuple[int, dict[int, float]]:
    """The torch thread count (1 or one per learner worker: the same cores as ours) at which TRL trains
    fastest here, from one epoch over the first ``probe_pairs`` pairs each; and pairs/s at each.

    For a model this small, intra-op threads can cost more than they give (and much more when other
    work loads the machine), so the baseline gets whichever is faster rather than torch's default.
    """
    full = trainer.train_dataset
    trainer.train_dataset = full.select(range(min(probe_pairs, len(full))))  # read anew by every train()
    tried = {}
    try:
        for n in sorted({1, WORKERS}):
            with torch_threads(n):
                tried[n] = len(trainer.train_dataset) / timed(trainer.train)[0]
    finally:
        trainer.train_dataset = full
    return max(tried, key=tried.get), tried


def run(ctx: Context) -> dict:
    from actors.learner_group import LearnerGroup
    from ouro_ray.config.learner import DPOConfig, LearnerConfig, OptimConfig
    from ouro_ray.seeding import derive_seed

    trl = require_trl()
    load_before = os.getloadavg()[0]
    size = SIZES["quick" if ctx.quick else "full"]
    seed = derive_seed(ctx.seed, "bench-learner")
    cfg, model_dir = tiny_world()
    batch = preference_pairs(cfg, model_dir, size["pairs"], size["max_new_tokens"], seed)
    learner_cfg = LearnerConfig(algo="dpo", num_workers=WORKERS, num_cpus_per_worker=1.0, use_gpu="no",
                                optim=OptimConfig(lr=LR, micro_batch_size=MICRO_BATCH, max_grad_norm=1.0),
                                dpo=DPOConfig(beta=BETA), call_timeout_s=600.0)
    group = None
    with ray_cluster(ctx), tempfile.TemporaryDirectory(prefix="ouro-bench-learner-") as tmp:
        try:
            trainer = trl_trainer(model_dir, batch, str(Path(tmp) / "trl"), seed)
            trl_tokens = pair_tokens(*(list(trainer.train_dataset[k])
                                       for k in ("prompt_ids", "chosen_ids", "rejected_ids")))
            start_s, group = timed(lambda: LearnerGroup(learner_cfg, model_dir, storage_path=str(Path(tmp) / "ours"),
                                                        seed=seed, prefix="bench-learner"))
            first_s, _ = timed(lambda: group.update(batch, checkpoint=False))  # Ray Train's start-up lands in the first update
            trainer.train()  # TRL's warm-up: its optimizer and accelerator state are built in the first train()
            threads, tried = trl_threads(trainer)

            def ours() -> float:
                return batch.num_rows / timed(lambda: group.update(batch, checkpoint=False))[0]

            def theirs() -> float:
                with torch_threads(threads):
                    return batch.num_rows / timed(trainer.train)[0]

            ours_ps, trl_ps = alternate(ours, theirs, reps=ctx.reps, warmup=0)  # both warmed up above
        finally:
            if group is not None:
                group.close()
    our_tokens = pair_tokens(*(batch.column(k).to_pylist() for k in (
        "prompt_token_ids", "chosen_token_ids", "rejected_token_ids")))
    return section(SUITE, ratio_name="Ray Train learner pairs/s / TRL DPOTrainer pairs/s",
                   ratio=ratio_stats(ours_ps, trl_ps), better="higher",
                   absolute={"ray_train_pairs_per_s": spread(ours_ps), "trl_pairs_per_s": spread(trl_ps),
                             "ray_train_start_and_first_update_s": start_s + first_s,
                             "trl_probe_pairs_per_s_by_torch_threads": tried,
                             "load_avg_1m": {"start": load_before, "end": os.getloadavg()[0]},
                             "tokens_per_pair": {"ours": our_tokens, "trl": trl_tokens}},
                   params={"model": "tiny-world (configs/tiny.yaml)", "pairs": batch.num_rows, "loss": "sigmoid",
                           "beta": BETA, "lr": LR, "micro_batch_pairs": MICRO_BATCH, "pairs_per_optimizer_step":
                           MICRO_BATCH * WORKERS, "ours": {"num_workers": WORKERS, "num_cpus_per_worker": 1.0,
                                                           "strategy": "ddp (gloo)"},
                           "trl": {"version": trl.__version__, "torch_threads": threads},
                           "cpus": os.cpu_count(), "reps": ctx.reps},
                   notes=["both sides use reference logprobs computed before timing (ours: in the batch; TRL: "
                          "precompute_ref_log_probs in its constructor)",
                          "one untimed warm-up call each (ours: with Ray Train's start-up, "
                          "ray_train_start_and_first_update_s); no checkpoints or weight publishing while timed",
                          "ours: 2 processes x 1 torch thread (Ray sets OMP_NUM_THREADS per worker); TRL: 1 process "
                          "with whichever of 1 or 2 torch threads trained faster in a 64-pair probe "
                          "(trl_probe_pairs_per_s_by_torch_threads)",
                          "TRL re-tokenizes the decoded text, so its token counts differ slightly (tokens_per_pair)"])
