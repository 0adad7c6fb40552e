"""Config of the tiny world: the synthetic corpus, the tiny causal LM and its pretraining.

The defaults are the demo size: a model of a few million parameters that builds in about two and a
half minutes on a 2-core CPU. The seed is not here; the top-level config owns the one ``seed`` and
:func:`ouro_ray.world.build_tiny_world` takes it as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ouro_ray.config.fields import param


@dataclass(frozen=True)
class CorpusConfig:
    """How many dialogs, and how often the pretrained behaviour is good or bad."""

    n_dialogs: int = param(1200, "number of synthetic dialogs to generate", ge=10)
    max_exchanges: int = param(2, "most human/assistant exchanges in one dialog", ge=1, le=8)
    concise_rate: float = param(
        0.5, "share of dialogs whose assistant speaks in the technical, concise voice (the rest ramble and speculate)",
        ge=0.0, le=1.0
    )
    unsafe_rate: float = param(0.25, "share of human requests that ask for harmful help (hacking, weapons)", ge=0.0, le=1.0)
    refusal_rate: float = param(
        0.5, "share of unsafe requests refused with a brief explanation (the rest get placeholder compliance)", ge=0.0, le=1.0
    )
    over_refusal_rate: float = param(0.15, "share of safe requests wrongly refused", ge=0.0, le=1.0)


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny causal LM trained from scratch (a Hugging Face Llama or Qwen2)."""

    arch: Literal["llama", "qwen2"] = param("llama", "model family of the tiny LM")
    vocab_size: int = param(2048, "most tokens the byte-level BPE tokenizer may learn (specials included)", ge=300)
    hidden_size: int = param(256, "width of the residual stream", ge=8)
    num_layers: int = param(4, "number of transformer blocks", ge=1)
    num_heads: int = param(4, "attention heads (must divide hidden_size)", ge=1)
    num_kv_heads: int = param(2, "key/value heads for grouped-query attention (must divide num_heads)", ge=1)
    intermediate_size: int = param(640, "width of the MLP", ge=8)
    max_seq_len: int = param(256, "longest token sequence the model trains on and attends over", ge=32)


@dataclass(frozen=True)
class PretrainConfig:
    """AdamW pretraining of the tiny LM on the rendered corpus."""

    steps: int = param(200, "optimizer steps", ge=1)
    batch_size: int = param(16, "dialogs per step", ge=1)
    lr: float = param(2e-3, "peak learning rate (linear warmup, then cosine decay to a tenth)", gt=0.0, lt=1.0)
    warmup_steps: int = param(20, "steps of linear learning-rate warmup", ge=0)
    weight_decay: float = param(0.01, "AdamW weight decay", ge=0.0, lt=1.0)
    log_every: int = param(25, "report the training loss every this many steps", ge=1)


def _judge_shape() -> TinyModelConfig:
    return TinyModelConfig(vocab_size=1536, hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2,
                           intermediate_size=384, max_seq_len=512)


@dataclass(frozen=True)
class JudgeModelConfig:
    """The world's judge: its own small LM, trained on the project's judge prompts labelled by ground truth."""

    enabled: bool = param(True, "build the judge beside the policy (the default AI judge of a tiny-world run)")
    model: TinyModelConfig = param(factory=_judge_shape, doc="shape of the judge LM (its own tokenizer and context)")
    steps: int = param(800, "optimizer steps (each on a fresh batch of examples)", ge=1)
    batch_size: int = param(16, "examples per step", ge=1)
    lr: float = param(2e-3, "peak learning rate (linear warmup, then cosine decay to a tenth)", gt=0.0, lt=1.0)
    warmup_steps: int = param(30, "steps of linear learning-rate warmup", ge=0)
    weight_decay: float = param(0.01, "AdamW weight decay", ge=0.0, lt=1.0)
    log_every: int = param(50, "report the training loss every this many steps", ge=1)


@dataclass(frozen=True)
class WorldConfig:
    """The tiny world: the embedded default model, built from a synthetic corpus (no model hub)."""

    corpus: CorpusConfig = param(factory=CorpusConfig, doc="the synthetic dialog corpus")
    model: TinyModelConfig = param(factory=TinyModelConfig, doc="shape of the tiny LM")
    pretrain: PretrainConfig = param(factory=PretrainConfig, doc="pretraining of the tiny LM")
    judge: JudgeModelConfig = param(factory=JudgeModelConfig, doc="the world's judge model (not the policy)")
    cache_dir: str | None = param(
        None, "where built worlds are cached by content hash; null means $OURO_CACHE or ~/.cache/ouro-ray/worlds"
    )

    def checks(self) -> list[tuple[str, str]]:
        """Cross-field problems as (dotted key from the top level, message with the fix)."""
        m, p = self.model, self.pretrain
        problems: list[tuple[str, str]] = []
        if m.hidden_size % m.num_heads:
            problems.append((
                "world.model.num_heads",
                f"world.model.num_heads = {m.num_heads}: must divide world.model.hidden_size = {m.hidden_size}; "
                f"fix: pick a divisor of {m.hidden_size}",
            ))
        elif (m.hidden_size // m.num_heads) % 2:
            problems.append((
                "world.model.num_heads",
                f"world.model.num_heads = {m.num_heads}: head size {m.hidden_size // m.num_heads} must be even "
                f"for rotary embeddings; fix: change num_heads or hidden_size",
            ))
        if m.num_heads % m.num_kv_heads:
            problems.append((
                "world.model.num_kv_heads",
                f"world.model.num_kv_heads = {m.num_kv_heads}: must divide world.model.num_heads = {m.num_heads}; "
                f"fix: pick a divisor of {m.num_heads}",
            ))
        j = self.judge
        if j.enabled and j.model.hidden_size % j.model.num_heads:
            problems.append(("world.judge.model.num_heads", f"world.judge.model.num_heads = {j.model.num_heads}: must "
                             f"divide world.judge.model.hidden_size = {j.model.hidden_size}; fix: pick a divisor"))
        if j.enabled and j.warmup_steps >= j.steps:
            problems.append(("world.judge.warmup_steps", f"world.judge.warmup_steps = {j.warmup_steps}: must be below "
                             f"world.judge.steps = {j.steps}; fix: lower warmup_steps or raise steps"))
        if p.warmup_steps >= p.steps:
            problems.append((
                "world.pretrain.warmup_steps",
                f"world.pretrain.warmup_steps = {p.warmup_steps}: must be below world.pretrain.steps = {p.steps}; "
                f"fix: lower warmup_steps or raise steps",
            ))
        return problems
