"""Which model the LLM judge runs: the policy never grades itself unless asked to.

``judges.llm.model`` is ``auto`` (the default), ``policy`` or a model directory (or ``tiny-world``):

- ``auto``: when the policy is the tiny world, the judge the world built beside it (its own
  tokenizer and LM, trained on ground truth; see :mod:`ouro_ray.world_judge`, built on first need). For any other
  policy there is no judge to pick, so ``ouro run`` / ``ouro eval`` / ``ouro score`` stop before
  anything starts and name the choices: a judge model directory, an HTTP judge, or rules only.
- ``policy``: the initial policy's own weights (a model grading itself; kept to measure how bad that is).
- a directory: any Hugging Face causal LM.

Imports no torch or Ray: the check runs before a cluster starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

AUTO = "auto"
POLICY = "policy"
TINY_WORLD = "tiny-world"


def judge_problem(cfg: Any, tiny_world_policy: bool) -> str | None:
    """Why the configured LLM judge cannot be resolved (None when it can), with the fix."""
    llm = cfg.judges.llm
    if not llm.enabled or llm.model != AUTO:
        return None
    if not tiny_world_policy:
        return ("judges.llm.model = 'auto' picks a judge only for the tiny world, and the policy is another model; "
                "fix: set judges.llm.model to a judge model directory (any Hugging Face causal LM), or use an "
                "HTTP judge (judges.http.base_url=URL judges.http.model=NAME judges.llm.enabled=false), or rules "
                "only (judges.llm.enabled=false)")
    if not cfg.world.judge.enabled:
        return ("judges.llm.model = 'auto' picks the tiny world's judge, but world.judge.enabled = false; fix: set "
                "world.judge.enabled=true, or name a judge model directory in judges.llm.model")
    return None


def is_tiny_world(spec: str | Path) -> bool:
    """Whether a model spec is the tiny world's policy or grew from it: 'tiny-world', a world's model
    directory, an `ouro run` directory (or a checkpoint in one) whose run started from the tiny world."""
    if str(spec) == TINY_WORLD:
        return True
    path = Path(spec).expanduser().resolve()
    if (path.parent / "manifest.json").is_file() and path.name == "model":
        return True
    for run_dir in (path, *path.parents):
        config = run_dir / "config.yaml"
        if (run_dir / "run.json").is_file() and config.is_file():
            import yaml

            model = (yaml.safe_load(config.read_text()) or {}).get("model", {}) or {}
            return model.get("path", TINY_WORLD) == TINY_WORLD
    return False


def resolve_judges(cfg: Any, policy_dir: str, progress: Callable[[str], None] = lambda _: None) -> Any:
    """``cfg.judges`` with ``judges.llm.model`` made a concrete directory for the judge workers (``progress``:
    the lines of a judge build, when ``auto`` needs one)."""
    llm = cfg.judges.llm
    if not llm.enabled:
        return cfg.judges
    if llm.model == AUTO:
        problem = judge_problem(cfg, True)
        if problem:
            raise ValueError(problem)
        path = str(world_judge_dir(cfg, policy_dir, progress))
    elif llm.model == POLICY:
        path = policy_dir
    else:
        from ouro_ray.models.resolve import resolve_model

        path = str(resolve_model(llm.model, cfg.world, cfg.seed, key="judges.llm.model").model_dir)
    return dataclasses.replace(cfg.judges, llm=dataclasses.replace(llm, model=path))


def world_judge_dir(cfg: Any, policy_dir: str | Path, progress: Callable[[str], None] = lambda _: None) -> Path:
    """The judge of the policy's world: the sibling ``judge/`` of a world's model directory when built,
    else the judge of the world that ``cfg.world`` and ``cfg.seed`` build (built now if needed)."""
    sibling = sibling_judge(policy_dir)
    if sibling is not None:
        return sibling
    from ouro_ray.world_judge.build import build_world_judge

    return build_world_judge(cfg.world, cfg.seed, progress=progress)


def sibling_judge(policy_dir: str | Path | None) -> Path | None:
    """The judge directory beside a tiny world's model directory (None when ``policy_dir`` is no world model)."""
    if policy_dir is None:
        return None
    sibling = Path(policy_dir).expanduser().parent / "judge"
    if (sibling.parent / "manifest.json").is_file() and (sibling / "build.json").is_file():
        return sibling
    return None
