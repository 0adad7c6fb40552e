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
