"""rollout: tokens/s of the rollout actor ÷ tokens/s of a raw in-process ``model.generate`` on the same batch.

Thing: a :class:`RolloutGroup` of one Ray actor (``num_cpus=1``; on a GPU machine ``num_gpus=1``)
generating ``n`` candidates for each of a fixed batch of tiny-world prompts in one call (the actor's
``batch_size`` covers the whole batch). Timed around ``group.generate``: the prompt table through
the object store, encoding, ``generate``, the per-token logprob pass, the ``candidates`` table back.
Baseline: ``model.generate`` in this process on the same encoded, left-padded prompts with the
same sampling arguments and seed as the actor's backend (``TransformersBackend``), timed around
``generate`` alone. Tokens are the candidates' token ids up to and including EOS, counted the same
way on both sides. The baseline runs with as many torch threads as the actor has, so the ratio is
what the role adds (logprob pass, Arrow, Ray), not a difference in cores; the backend's own
``generate`` in process (sampling + logprob pass, no Ray) is timed too, to split that gap.
On a GPU machine with vLLM usable, also vLLM ÷ transformers tokens/s (both backends in process).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.harness import Context, alternate, ratio_stats, ray_cluster, section, spread, timed

SUITE = "rollout"
SIZES = {"quick": {"prompts": 16, "n": 4, "max_new_tokens": 32}, "full": {"prompts": 64, "n": 4, "max_new_tokens": 48}}
ACTOR_CPUS = 1


def tiny_world(overrides: list[str] | None = None):
    """``(cfg, model_dir)`` of ``configs/tiny.yaml``'s tiny world (built once, then cached)."""
    from ouro_ray.config import load_config
    from ouro_ray.models.resolve import resolve_model

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(str(repo / "configs/tiny.yaml"), list(overrides or []))  # the world's seed: the cached one
    return cfg, str(resolve_model(cfg.model.path, cfg.world, cfg.seed).model_dir)


def prompt_batch(cfg, count: int) -> pa.Table:
    """``count`` tiny-world held-out prompts (cycled with fresh ids when the held-out set is smaller)."""
    from ouro_ray.stages.sources import DialogSource, held_out_prompts

    if count < 1:
        raise ValueError(f"prompt count = {count}: need at least 1; fix: choose a size from {sorted(SIZES)}")
    with tempfile.TemporaryDirectory(prefix="ouro-bench-prompts-") as tmp:
        table = held_out_prompts(cfg, DialogSource(cfg, Path(tmp)))
    rows = table.take(pa.array([i % table.num_rows for i in range(count)]))
    ids = pa.array([f"bench-{i}" for i in range(count)], pa.string())
    return rows.set_column(rows.schema.get_field_index("prompt_id"), "prompt_id", ids)


def candidate_tokens(candidates: pa.Table) -> int:
    """Generated tokens in a ``candidates`` table (EOS included)."""
    return int(pc.sum(pc.list_value_length(candidates.column("token_ids"))).as_py() or 0)


def actor_threads(num_cpus: float) -> int:
    """How many torch threads a Ray actor with ``num_cpus`` gets (Ray sets OMP_NUM_THREADS from it)."""
    import ray

    @ray.remote(num_cpus=num_cpus)
    def threads() -> int:
        import torch

        return torch.get_num_threads()

    return ray.get(threads.remote(), timeout=120)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads (then restore the count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class InProcess:
    """The baseline, ``model.generate`` in this process as ``TransformersBackend.generate`` calls it; and, for
    the breakdown, that backend's whole ``generate`` (sampling plus the logprob pass) without Ray."""

    def __init__(self, model_dir: str, rollout_cfg, prompts: pa.Table, sampling, seed: int, threads: int):
        import torch

        from ouro_ray.models.load import encode_prompts, load_causal_lm
        from ouro_ray.rollout.transformers_backend import TransformersBackend, left_pad

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model, tokenizer = load_causal_lm(model_dir, dtype=rollout_cfg.dtype, device=self.device)
        self.backend = TransformersBackend(model, tokenizer)
        self.prompt_tokens = encode_prompts(tokenizer, prompts.column("prompt").to_pylist())
        self.ids, self.mask = left_pad(self.prompt_tokens, tokenizer.pad_token_id)
        self.sampling, self.seed, self.threads = sampling, seed, threads
        self.tokens = 0

    def generate_tokens_per_s(self) -> float:
        import torch

        from ouro_ray.rollout.transformers_backend import trim_at_eos

        kwargs = self.backend._generate_kwargs(self.sampling)
        ids, mask = self.ids.to(self.device), self.mask.long().to(self.device)
        with torch_threads(self.threads), torch.no_grad(), \
                torch.random.fork_rng(devices=[self.device] if self.device == "cuda" else []):
            torch.manual_seed(self.seed)
            seconds, sequences = timed(lambda: self.backend.model.generate(
                input_ids=ids, attention_mask=mask, **kwargs).cpu())  # (B*n, P+T); .cpu() waits for a GPU
        generated = sequences[:, self.ids.shape[1]:]  # (B*n, T)
        self.tokens = int(trim_at_eos(generated, self.backend.eos_ids).sum())
        return self.tokens / seconds

    def backend_tokens_per_s(self) -> float:
        with torch_threads(self.threads):
            seconds, cands = timed(lambda: self.backend.generate(self.prompt_tokens, self.sampling, self.seed))
        return sum(len(c.token_ids) for c in cands) / seconds


def vllm_vs_transformers(model_dir: str, rollout_cfg, prompts: pa.Table, sampling, seed: int, reps: int) -> dict:
    """Both backends in this process on the same prompts: vLLM tokens/s ÷ transformers tokens/s."""
    import dataclasses

    from ouro_ray.models.load import encode_prompts
    from ouro_ray.rollout.select import make_backend

    def side(name: str):
        backend, tokenizer = make_backend(Path(model_dir), dataclasses.replace(rollout_cfg, backend=name), seed)
        tokens = encode_prompts(tokenizer, prompts.column("prompt").to_pylist())

        def tokens_per_s() -> float:
            seconds, cands = timed(lambda: backend.generate(tokens, sampling, seed))
            return sum(len(c.token_ids) for c in cands) / seconds
        return tokens_per_s

    vllm_tps, hf_tps = alternate(side("vllm"), side("transformers"), reps=reps)
    return {"ratio": ratio_stats(vllm_tps, hf_tps), "vllm_tokens_per_s": spread(vllm_tps),
            "transformers_tokens_per_s": spread(hf_tps)}


def run(ctx: Context) -> dict:
    import dataclasses

    import torch

    from actors.rollout import RolloutGroup
    from ouro_ray.config.roles import RoleResources, SamplingConfig
    from ouro_ray.rollout.select import vllm_status
    from ouro_ray.seeding import derive_seed

    size = SIZES["quick" if ctx.quick else "full"]
    load_before = os.getloadavg()[0]
    cfg, model_dir = tiny_world()
    prompts = prompt_batch(cfg, size["prompts"])
    sampling = SamplingConfig(n=size["n"], temperature=1.0, max_new_tokens=size["max_new_tokens"])
    gpus = 1.0 if torch.cuda.is_available() else 0.0
    workers = RoleResources(num_workers=1, num_cpus=ACTOR_CPUS, num_gpus=gpus, batch_size=prompts.num_rows)
    rollout_cfg = dataclasses.replace(cfg.rollout, backend="transformers", sampling=sampling, workers=workers)
    seed = derive_seed(ctx.seed, "bench-rollout")
    group = None
    with ray_cluster(ctx):
        try:
            threads = actor_threads(ACTOR_CPUS)
            group = RolloutGroup(model_dir, rollout_cfg, seed=seed, prefix="bench-rollout", namespace=ctx.namespace)
            # The group gives its single slice derive_seed(seed, 'slice', 0): the baseline samples with the same one.
            raw = InProcess(model_dir, rollout_cfg, prompts, sampling, derive_seed(seed, "slice", 0), threads)
            counts, backend_tps = {"actor": 0}, []

            def actor_tokens_per_s() -> float:
                seconds, candidates = timed(lambda: group.generate(prompts, seed=seed))
                counts["actor"] = candidate_tokens(candidates)
                backend_tps.append(raw.backend_tokens_per_s())  # outside the actor's time: the breakdown only
                return counts["actor"] / seconds

            actor_tps, raw_tps = alternate(actor_tokens_per_s, raw.generate_tokens_per_s, reps=ctx.reps)
            backend = group.info()[0]["backend"]
        finally:
            if group is not None:
                group.close()
    absolute = {"actor_tokens_per_s": spread(actor_tps), "in_process_generate_tokens_per_s": spread(raw_tps),
                "in_process_backend_tokens_per_s": spread(backend_tps[-len(actor_tps):]),
                "tokens_per_batch": {"actor": counts["actor"], "in_process": raw.tokens},
                "torch_threads": {"actor": threads, "in_process": threads},
                "load_avg_1m": {"start": load_before, "end": os.getloadavg()[0]}}
    notes = ["the actor's time includes the per-token logprob pass over prompt + candidate, which raw generate "
             "does not do; in_process_backend_tokens_per_s (TransformersBackend.generate in this process: "
             "sampling + logprob pass, no Ray) splits the gap into that pass and what Ray adds",
             "start-up (actor, model load) is not timed",
             "tokens_per_batch equal on both sides: same seed, same sampling, same tokens"
             if counts["actor"] == raw.tokens else "tokens_per_batch differ between the sides: compare tokens/s"]
    usable, reason = vllm_status()
    if usable:
        absolute["vllm"] = vllm_vs_transformers(model_dir, rollout_cfg, prompts, sampling, seed, ctx.reps)
    else:
        absolute["vllm"] = f"skipped: {reason}"
        notes.append(f"vLLM vs. transformers skipped: {reason}")
    return section(SUITE, ratio_name="actor tokens/s / in-process generate tokens/s",
                   ratio=ratio_stats(actor_tps, raw_tps), absolute=absolute,
                   params={"model": "tiny-world (configs/tiny.yaml)", "prompts": prompts.num_rows, "n": sampling.n,
                           "max_new_tokens": sampling.max_new_tokens, "temperature": sampling.temperature,
                           "actor": {"num_workers": 1, "num_cpus": ACTOR_CPUS, "num_gpus": gpus},
                           "backend": backend, "reps": ctx.reps},
                   notes=notes, better="higher")
