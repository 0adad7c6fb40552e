"""``ouro generate``, ``ouro score`` and ``ouro train``: stages 4, 5 and 6 alone on shard files, with the loop's code.

Glue around the loop's own pieces: the rollout, reference and judge roles run in this process
(``ouro run`` spreads them over Ray actors; the results are the same); ``ouro train`` with
``learner.num_workers > 0`` joins or starts a Ray cluster for Ray Train, as ``ouro run`` does.
Inputs are read as ``ouro validate`` reads them; shards are written atomically in the format the
file name says (``.jsonl`` or ``.parquet``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from ouro_ray.cli.common import UsageError, add_config_args, check_format, connect, in_process, model_arg, read_input, say
from ouro_ray.config import ConfigError

TRAINS_ON = {"ppo": "--candidates CANDIDATES with --scores SCORES",
             "dpo": "--pairs PAIRS and/or --candidates CANDIDATES with --scores SCORES (ranked into pairs)",
             "rm": "--pairs PAIRS (a pairs shard)"}


# ---------------------------------------------------------------- 4. generate


def cmd_generate(args: argparse.Namespace) -> int:
    import pyarrow.compute as pc

    from actors.rollout import RolloutGroup
    from ouro_ray.config import load_config
    from ouro_ray.data import write_shard
    from ouro_ray.seeding import derive_seed

    cfg = load_config(args.config, args.args)
    check_format(args.out)
    prompts = read_input(args.prompts, "prompts")
    rollout = RolloutGroup(str(model_arg(args.model, cfg).model_dir), in_process(cfg.rollout), seed=cfg.seed)
    try:
        candidates = rollout.generate(prompts, seed=derive_seed(cfg.seed, "generate"))
    finally:
        rollout.close()
    write_shard(candidates, args.out, "candidates")
    lengths = pc.list_value_length(candidates.column("token_ids"))
    mean = pc.mean(lengths).as_py() or 0.0
    print(f"{args.out}: {candidates.num_rows} candidates for {prompts.num_rows} prompts; mean {mean:.1f} tokens")
    return 0


# ---------------------------------------------------------------- 5. score


def _judges(cfg):
    """``cfg.judges`` with the LLM judge's model made concrete (``auto``: the tiny world's own judge; any other
    policy must name one, checked before a model loads)."""
    from ouro_ray.config import ConfigError
    from ouro_ray.world_judge.choice import is_tiny_world, judge_problem, resolve_judges

    problem = judge_problem(cfg, is_tiny_world(cfg.model.path))
    if problem:
        raise ConfigError([problem])
    if not cfg.judges.llm.enabled:
        return cfg.judges
    return resolve_judges(cfg, str(model_arg(cfg.model.path, cfg, key="model.path").model_dir), say)


def write_rewards(rewards, path: Path) -> Path:
    """The rewards table (one row per candidate) as JSON lines or Parquet, atomically."""
    from ouro_ray.data.shards import write_table

    return write_table(rewards, path)


def _scored(candidates, prompts, cfg):
    """``(scores, rewards, judge output)``: the loop's scoring path with the judges in this process."""
    from actors.judge_worker import JudgeWorker
    from ouro_ray.judges.scoring import score_candidates

    human = read_input(cfg.data.scores, "scores") if cfg.data.scores else None
    judges_cfg = _judges(cfg)
    judges = _LazyJudges(lambda: JudgeWorker(judges_cfg))
    try:
        scored = score_candidates(candidates, prompts, judges, cfg.scoring, human)
    except KeyError as exc:
        if judges.built:  # a judge's own KeyError, not a missing prompt
            raise
        raise ValueError(f"--prompts: {exc.args[0]}") from None
    return scored.scores, scored.rewards, scored.output


class _LazyJudges:
    """The judges, built on first use: a missing prompt is reported before any judge model loads."""

    def __init__(self, build):
        self._build, self._worker = build, None

    @property
    def built(self) -> bool:
        return self._worker is not None

    def score(self, items, revise: bool = True):
        self._worker = self._worker or self._build()
        return self._worker.score(items, revise)


def _reward_summary(rewards) -> str:
    from ouro_ray.config.loop import LAMBDA_GROUPS
    from ouro_ray.judges.scoring import mean_by

    fmt = lambda value: "n/a" if value is None else f"{value:+.3f}"  # noqa: E731
    groups = ", ".join(f"{g} {fmt(mean_by(rewards.column(g).to_pylist()))}" for g in LAMBDA_GROUPS)
    humans = rewards.column("source").to_pylist().count("human")
    return (f"mean reward {fmt(mean_by(rewards.column('reward').to_pylist()))} ({groups})"
            + (f"; {humans} set by human scores" if humans else ""))


def cmd_score(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.data import write_shard

    cfg = load_config(args.config, args.args)
    out = Path(args.out)
    rewards_out = Path(args.rewards) if args.rewards else out.with_name(f"{out.stem}-rewards{out.suffix}")
    check_format(args.out, rewards_out, args.pairs_out)
    candidates = read_input(args.candidates, "candidates")
    scores, rewards, output = _scored(candidates, read_input(args.prompts, "prompts"), cfg)
    write_shard(scores, args.out, "scores")
    write_rewards(rewards, rewards_out)
    print(f"{args.out}: {scores.num_rows} scores of {rewards.num_rows} candidates")
    print(f"{rewards_out}: {_reward_summary(rewards)}")
    if output.pairs.num_rows and args.pairs_out:
        write_shard(output.pairs, args.pairs_out, "pairs")
        print(f"{args.pairs_out}: {output.pairs.num_rows} constitution pairs")
    elif output.pairs.num_rows:
        say(f"{output.pairs.num_rows} constitution pairs not written; pass --pairs-out PAIRS.jsonl to keep them")
    return 0


# ---------------------------------------------------------------- 6. train


def _learner_config(cfg, algo: str):
    """The learner section with the subcommand's algorithm, checked again for that algorithm."""
    learner = dataclasses.replace(cfg.learner, algo=algo)
    problems = [f"{key}: {message}" for key, message in learner.checks()]
    if problems:
        raise ConfigError(problems)
    return learner


def _check_inputs(args: argparse.Namespace) -> None:
    """Each algorithm's inputs, refused before any model loads; the message names the flags."""
    ranked, pairs = bool(args.candidates or args.scores), bool(args.pairs)
    if ranked and not (args.candidates and args.scores):
        missing = "--scores" if not args.scores else "--candidates"
        raise UsageError(f"{args.algo} needs {missing} too: --candidates and --scores go together (the candidates "
                         "and their scores from `ouro score`)")
    if not {"ppo": ranked and not pairs, "dpo": ranked or pairs, "rm": pairs and not ranked}[args.algo]:
        given = " and ".join(f for f, on in (("--candidates/--scores", ranked), ("--pairs", pairs)) if on)
        raise UsageError(f"{args.algo} trains on {TRAINS_ON[args.algo]}; got {given or 'neither'}")


def _fresh_out(out: str) -> Path:
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"--out {out} exists and is not an empty directory; fix: pass a new directory or remove it")
    return path


def _batch(args: argparse.Namespace, cfg, model_dir: str):
    """The learner's batch, built by the loop's own batch code (the reference is ``--model``)."""
    from actors.reference import ReferenceGroup
    from ouro_ray.data.schemas import SHARDS
    from ouro_ray.judges.scoring import REWARDS_SCHEMA, combine
    from ouro_ray.learner.batches import preference_batch, tokenize_pairs
    from ouro_ray.loop.batches import dpo_batch, ppo_batch
    from ouro_ray.models.load import load_tokenizer

    pairs = read_input(args.pairs, "pairs") if args.pairs else SHARDS["pairs"].schema.empty_table()
    if args.algo == "rm":  # no reference: the reward model needs only the two sides
        chosen, rejected = tokenize_pairs(pairs, load_tokenizer(model_dir))
        return preference_batch(chosen, rejected, prompt_ids=chosen.column("prompt_id").combine_chunks())
    candidates, rewards = SHARDS["candidates"].schema.empty_table(), REWARDS_SCHEMA.empty_table()
    if args.candidates:
        candidates, rewards = read_input(args.candidates, "candidates"), combine(read_input(args.scores, "scores"), cfg.scoring)
    reference = ReferenceGroup(model_dir, in_process(cfg.reference))
    try:
        if args.algo == "ppo":
            return ppo_batch(candidates, rewards, reference)
        return dpo_batch(candidates, rewards, pairs, reference, load_tokenizer(model_dir), cfg.scoring.pair_margin)[0]
    finally:
        reference.close()


def _update(learner_cfg, model_dir: str, batch, cfg, out: Path) -> dict:
    """One update; the checkpoint's HF directory (policy, or reward model for rm) copied to ``out``."""
    import shutil

    from actors.learner_group import LearnerGroup
    from cluster.local import shutdown
    from ouro_ray.learner.learner import POLICY_DIR

    root = Path(cfg.learner.storage_path).expanduser() if cfg.learner.storage_path else out.absolute().parent
    root.mkdir(parents=True, exist_ok=True)
    storage = Path(tempfile.mkdtemp(prefix=".ouro-train-", dir=root))  # fresh: a used one would be resumed
    info = connect(cfg) if learner_cfg.num_workers > 0 else None
    try:
        learner = LearnerGroup(learner_cfg, model_dir, storage_path=str(storage), seed=cfg.seed)
        try:
            metrics = learner.update(batch, producer="ouro train")
        finally:
            learner.close()
        checkpoint = learner.latest_checkpoint()
        if checkpoint is None:
            raise RuntimeError(f"the learner wrote no checkpoint under {storage}")
        shutil.copytree(checkpoint / POLICY_DIR, out, dirs_exist_ok=True)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        if info is not None and info.started_here:
            shutdown()
    return metrics


def _saved_as(algo: str, out: Path) -> str:
    if algo == "rm":
        return "a reward model (AutoModelForSequenceClassification; use it as reward_model.path)"
    if (out / "adapter_config.json").is_file():
        return "a LoRA adapter (learner.lora.enabled) on --model"
    return "the policy (AutoModelForCausalLM; use it as --model or model.path)"


def cmd_train(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config

    cfg = load_config(args.config, args.args)
    learner_cfg = _learner_config(cfg, args.algo)
    if args.algo == "dpo" and cfg.scoring.balance_pairs:
        raise UsageError("scoring.balance_pairs = true balances pairs by each prompt's target behaviour, which ouro "
                         "run has and ouro train's inputs do not; fix: pass scoring.balance_pairs=false")
    _check_inputs(args)
    out = _fresh_out(args.out)
    model_dir = str(model_arg(args.model, cfg).model_dir)
    batch = _batch(args, cfg, model_dir)
    if batch.num_rows == 0:
        hint = (f"no two candidates of a prompt differ by scoring.pair_margin = {cfg.scoring.pair_margin:g}; fix: "
                "lower it or pass --pairs" if args.algo == "dpo" else "fix: pass non-empty shards")
        raise ValueError(f"the inputs give {args.algo} no training rows: {hint}")
    metrics = _update(learner_cfg, model_dir, batch, cfg, out)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
    print(f"{args.algo} update on {batch.num_rows} rows: {shown}")
    print(f"{out}: {_saved_as(args.algo, out)}")
    return 0


# ---------------------------------------------------------------- parsers


def add_parsers(sub) -> None:
    g = sub.add_parser("generate", help="stage 4: prompts → candidates from a policy",
                       description="Stage 4 alone: the rollout role runs in this process (`ouro run` spreads it "
                                   "over rollout actors), with rollout.sampling and the seed's 'generate' stream.")
    g.add_argument("prompts", help="a prompts or labyrinth shard (JSONL or Parquet)")
    g.add_argument("--model", required=True, help="'tiny-world', a Hugging Face model directory or an `ouro run` "
                   "directory (its policy)")
    g.add_argument("--out", required=True, help="candidates shard to write (.jsonl or .parquet)")
    add_config_args(g, "rollout.*, seed, world.*", "rollout.sampling.n=2")
    g.set_defaults(func=cmd_generate)

    s = sub.add_parser("score", help="stage 5: candidates → teachers' scores and one reward per candidate",
                       description="Stage 5 alone: every configured teacher (judges.*) in this process, human "
                                   "scores from data.scores joined, combined by scoring.* into rewards.")
    s.add_argument("candidates", help="a candidates shard (from `ouro generate`)")
    s.add_argument("--prompts", required=True, help="the prompts or labyrinth shard the candidates answer")
    s.add_argument("--out", required=True, help="scores shard to write (.jsonl or .parquet)")
    s.add_argument("--rewards", help="rewards file to write, one row per candidate, .jsonl or .parquet "
                   "(default: OUT's name + '-rewards')")
    s.add_argument("--pairs-out", help="pairs shard for the constitution's (revision, original) pairs, if any")
    add_config_args(s, "judges.*, scoring.*, data.scores, model.path for judges.llm.model=policy", "judges.llm.enabled=false")
    s.set_defaults(func=cmd_score)

    t = sub.add_parser("train", help="stage 6: one learner update (ppo, dpo or rm), saved as a model directory",
                       description="Stage 6 alone: one update with the learner section (the algorithm from the "
                                   "argument); the reference is --model, run in this process; learner.num_workers "
                                   "> 0 trains on Ray Train (joins cluster.address or starts a local cluster).")
    t.add_argument("algo", choices=list(TRAINS_ON), help="; ".join(f"{a}: {v}" for a, v in TRAINS_ON.items()))
    t.add_argument("--model", required=True, help="the model to start from (and the reference): 'tiny-world', a "
                   "Hugging Face model directory or an `ouro run` directory")
    t.add_argument("--out", required=True, help="new (or empty) directory for the trained Hugging Face model")
    t.add_argument("--candidates", help="a candidates shard (ppo, dpo)")
    t.add_argument("--scores", help="the candidates' scores shard (from `ouro score`), combined by scoring.*")
    t.add_argument("--pairs", help="a pairs shard: prompt_id, prompt, chosen, rejected, source (dpo, rm)")
    add_config_args(t, "learner.*, reference.*, scoring.*, cluster.*, seed", "learner.num_workers=0")
    t.set_defaults(func=cmd_train)
