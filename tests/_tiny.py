"""The small tiny-world config the tests share: ~100k parameters, builds in a few seconds on 2 cores."""

from __future__ import annotations

from pathlib import Path

from ouro_ray.config.world import JudgeModelConfig
from ouro_ray.world import CorpusConfig, PretrainConfig, TinyModelConfig, WorldConfig

SEED = 7


def small_world_config(cache_dir: Path | str | None = None) -> WorldConfig:
    """A world small enough for tests: ~100k parameters, 40 steps, a few seconds on 2 CPU cores."""
    return WorldConfig(
        corpus=CorpusConfig(n_dialogs=160),
        model=TinyModelConfig(
            vocab_size=512, hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
            intermediate_size=128, max_seq_len=256,
        ),
        pretrain=PretrainConfig(steps=40, batch_size=8, lr=3e-3, warmup_steps=5, log_every=10),
        judge=small_judge_config(),
        cache_dir=None if cache_dir is None else str(cache_dir),
    )


def small_judge_config() -> JudgeModelConfig:
    """The world's judge at test size: a fraction of the demo judge's steps, still far better than a coin."""
    return JudgeModelConfig(
        model=TinyModelConfig(vocab_size=1024, hidden_size=96, num_layers=2, num_heads=2, num_kv_heads=1,
                              intermediate_size=256, max_seq_len=512),
        steps=300, batch_size=12, lr=3e-3, warmup_steps=20, log_every=100,
    )


def one_round_overrides(model_dir: str, serve_port: int) -> list[str]:
    """A one-round `ouro run` of the small model on the session's Ray cluster: the rule judges on one Serve replica,
    DPO in process, a small held-out set (tests that run `ouro run` end to end add what they test)."""
    return [
        f"model.path={model_dir}", "cluster.namespace=ouro-test", f"cluster.serve_port={serve_port}", "rounds=1",
        "data.synthetic_dialogs=3", "loop.prompts_per_round=8", "distill.use_ai=false", "judges.llm.enabled=false",
        "judges.constitution.enabled=false", "rollout.sampling.n=2", "rollout.sampling.max_new_tokens=12",
        "rollout.workers.num_workers=1", "rollout.workers.num_cpus=0.5", "reference.workers.num_workers=1",
        "reference.workers.num_cpus=0.25", "judges.min_workers=1", "judges.max_workers=1", "judges.num_cpus=0.25",
        "learner.algo=dpo", "learner.num_workers=0", "scoring.spot_checks=4", "evaluation.held_out_dialogs=2",
        "evaluation.size=4", "evaluation.n=2", "evaluation.bootstrap=100", "evaluation.stress=false"]
