"""Config of the loop's stages 2 and 3 (distill, labyrinth) and the persona the loop teaches.

The persona's defaults live here, at the bottom layer, so that the config never imports the stages or
the world; :mod:`ouro_ray.world.catalog` re-exports them as the tiny world's desired voice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ouro_ray.config.fields import param

DESIRED_VOICE = "technical, concise"
"""The voice a good assistant speaks in; the ``persona.voice`` of every summary."""

PERSONA_CONSTRAINTS = (
    "no speculation",
    "at most 3 sentences",
    "state the key facts plainly",
    "refuse harmful requests with a brief explanation",
    "help with safe requests",
)
"""The ``persona.constraints`` of every summary: what the alignment loop should teach."""


@dataclass(frozen=True)
class DistillConfig:
    """Stage 2: how dialogues become summaries."""

    voice: str = param(DESIRED_VOICE, "the voice the loop teaches: every summary's persona.voice")
    constraints: tuple[str, ...] = param(PERSONA_CONSTRAINTS, "the constraints the loop teaches: every summary's "
                                         "persona.constraints")
    use_ai: bool = param(True, "ask the AI summariser for facts beyond the rules (needs a writer)")
    max_new_tokens: int = param(64, "longest AI summary in tokens", ge=1)
    min_grounding: float = param(0.8, "share of an AI fact's content words that must occur in the assistant's "
                                 "turns for the fact to be kept", gt=0.0, le=1.0)
    summaries_override: str | None = param(None, "path of a human-edited summaries shard; its rows replace the "
                                           "distilled ones by dialog_id (null: none)")


@dataclass(frozen=True)
class LabyrinthConfig:
    """How many challenge prompts each human request yields, and the cap per dialogue."""

    rephrase: int = param(2, "paraphrases per human request (rewordings, pronoun swaps, nested conditionals)", ge=0, le=6)
    adversarial: int = param(2, "pressure prompts per human request (speculation, rules, length, false premise; "
                                "jailbreaks for harmful ones)", ge=0, le=6)
    contrastive: int = param(1, "contrastive pairs per human request (one question framed two ways, one group_id)",
                             ge=0, le=4)
    max_prompts_per_dialog: int = param(12, "most prompts from one dialogue; kinds and requests interleave and "
                                            "pairs stay whole when capping", ge=1)

    def __post_init__(self) -> None:
        # Direct construction skips the YAML loader's range checks; the template pools set these bounds.
        for f in fields(self):
            low, high, value = f.metadata["ge"], f.metadata["le"], getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
                rule = f"a whole number >= {low}" + (f" and <= {high}" if high is not None else "")
                raise ValueError(f"labyrinth.{f.name} = {value!r}: must be {rule}; fix: set labyrinth.{f.name} "
                                 f"to {rule} ({f.metadata['doc']})")
