"""`ouro eval` and `ouro judge-eval`.

`ouro eval`: policies and a baseline answer the same prompts; the evaluator pack writes its report.

    ouro eval --policy RUN_OR_DIR [--policy …] --baseline DIR [--prompts FILE] [--out DIR] [--config C] [k=v …]

Generation uses the rollout role (actors when ``rollout.workers.num_workers > 0``), every model with
the same sampling seed and ``evaluation.n`` candidates per prompt; judging uses the judge group
(Serve replicas when ``judges.max_workers > 0``, else in this process).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from ouro_ray.cli.common import add_config_args, connect, model_arg, number, read_input, say
from ouro_ray.models.resolve import RUN_MARKER


def model_names(specs: list[str]) -> list[str]:
    """Short unique names for the report: the directory's name (a run's own name for a run's policy)."""
    names = []
    for spec in specs:
        path = Path(spec).expanduser()
        base = path.name or spec
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def eval_prompts(args: argparse.Namespace, cfg) -> tuple[Any, str]:
    """``(prompts, which set)``: ``--prompts``; else a run directory's held-out prompts (the ones `ouro run`
    measured); else the config's held-out prompts; else, when the config has none, the built-in
    tiny-world held-out set (:mod:`ouro_ray.eval.heldout`), so `ouro eval` never stops for want of prompts."""
    from ouro_ray.eval.heldout import PROMPT_SET, builtin_heldout
    from ouro_ray.seeding import derive_seed
    from ouro_ray.stages.sources import DialogSource, held_out_prompts, sample_rows

    if args.prompts:
        table = sample_rows(read_input(args.prompts, "prompts"), cfg.evaluation.size, derive_seed(cfg.seed, "eval-prompts"))
        return table, f"--prompts {args.prompts}"
    for spec in args.policy:
        if (Path(spec) / RUN_MARKER).is_file() and (Path(spec) / "heldout.parquet").is_file():
            import pyarrow.parquet as pq

            path = Path(spec) / "heldout.parquet"
            return pq.read_table(path), f"{path} (the run's held-out prompts)"
    source = None if cfg.data.prompts else DialogSource(cfg, Path(args.out))
    if cfg.evaluation.prompts or cfg.data.prompts or _has_held_out_dialogs(source):
        return held_out_prompts(cfg, source), "the config's held-out prompts"
    table = builtin_heldout(cfg.seed, cfg.evaluation.size)
    return table, f"{PROMPT_SET} ({table.num_rows} prompts from the catalog, seed {cfg.seed}; no config prompts)"


def _has_held_out_dialogs(source) -> bool:
    dialogs = source.held_out_dialogs() if source is not None else None
    return dialogs is not None and dialogs.num_rows > 0


def generate(model_dir: Path, prompts, cfg) -> Any:
    """``evaluation.n`` candidates per prompt from one model, with the evaluation's sampling seed."""
    from actors.rollout import RolloutGroup
    from ouro_ray.seeding import derive_seed

    rollout = RolloutGroup(str(model_dir), cfg.rollout, seed=cfg.seed, prefix=f"{cfg.cluster.namespace}-eval",
                           namespace=cfg.cluster.namespace)
    try:
        sampling = dataclasses.replace(cfg.rollout.sampling, n=cfg.evaluation.n)
        return rollout.generate(prompts, seed=derive_seed(cfg.seed, "evaluate"), sampling=sampling)
    finally:
        rollout.close()


def evaluate(cfg, specs: list[str], baseline: str, prompts, judges, say=lambda m: None,
             prompt_set: str = "given prompts") -> tuple[dict, list[dict]]:
    """The report and results rows of ``specs`` (policies, then the baseline) on ``prompts``."""
    from ouro_ray.eval import pack
    from ouro_ray.eval.grade import make_grader

    names = model_names(specs + [baseline])
    grader = make_grader(cfg.evaluation.teachers)
    answers, metrics, rows = [], {}, []
    for name, spec in zip(names, specs + [baseline]):
        say(f"{name}: generating {cfg.evaluation.n} candidates for {prompts.num_rows} prompts")
        candidates = generate(model_arg(spec, cfg).model_dir, prompts, cfg)
        say(f"{name}: judging" + (f", and grading independently ({grader.name})" if grader else ""))
        answers.append(pack.score_answers(name, candidates, prompts, judges, cfg.scoring, grader=grader))
        metrics[name], model_rows = pack.model_metrics(answers[-1], judges=judges, n_boot=cfg.evaluation.bootstrap,
                                                       seed=cfg.seed)
        rows += model_rows
    e = cfg.evaluation
    report = {"models": names, "baseline": names[-1], "paths": dict(zip(names, specs + [baseline])),
              "n_prompts": prompts.num_rows, "n_candidates": e.n, "seed": cfg.seed, "metrics": metrics,
              "prompt_set": prompt_set, "grade_judge": grader.name if grader else "none",
              "definitions": pack.DEFINITIONS}
    say("pairwise comparisons")
    report["pairwise"] = pack.compare(answers, names[-1], judges=judges, mode=e.pairwise, tie_margin=e.tie_margin,
                                      n_boot=e.bootstrap, seed=cfg.seed)
    if e.stress:
        say("reward-hack stress suite")
        report["stress"] = pack.reward_hacks(judges, cfg.scoring, seed=cfg.seed)
    return report, rows


def main(args: argparse.Namespace) -> int:
    from actors.judge import JudgeGroup
    from cluster.serve_llm import start_judge_llm
    from ouro_ray.config import load_config
    from ouro_ray.eval.report import write_report

    cfg = load_config(args.config, args.args)
    out = Path(args.out or Path("evals") / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    judges_cfg = eval_judges(cfg, list(args.policy), args.baseline)  # before anything starts
    info = _cluster(cfg, say)
    prompts, prompt_set = eval_prompts(argparse.Namespace(**{**vars(args), "out": str(out)}), cfg)
    say(f"prompts: {prompt_set}")
    # judges.serve_llm: the judge model on GPUs behind Ray Serve LLM, the HTTP judge pointed at it (as `ouro run`)
    judges_cfg, judge_llm = start_judge_llm(judges_cfg, cfg.cluster.serve_host, cfg.cluster.serve_port, say)
    judges = None
    try:
        judges = JudgeGroup(judges_cfg, prefix=f"{cfg.cluster.namespace}-eval", serve_host=cfg.cluster.serve_host,
                            serve_port=cfg.cluster.serve_port)
        report, rows = evaluate(cfg, list(args.policy), args.baseline, prompts, judges, say, prompt_set)
    finally:
        if judges is not None:
            judges.close()
        if judge_llm is not None:
            judge_llm.close()
        if info is not None and info.started_here:
            from ray import serve

            from cluster.local import shutdown

            serve.shutdown()
            shutdown()
    files = write_report(report, rows, out)
    _print_summary(report, out, files)
    return 0


def eval_judges(cfg, policies: list[str], baseline: str):
    """``cfg.judges`` with the LLM judge's model made concrete: the tiny world's own judge for ``auto`` when every
    model grew from the tiny world, the baseline for ``policy`` (never a policy under test), else the directory
    named. ``auto`` with any other model stops here, before anything starts, naming the choices."""
    import dataclasses

    from ouro_ray.config import ConfigError
    from ouro_ray.world_judge.choice import AUTO, POLICY, is_tiny_world, judge_problem, resolve_judges

    llm = cfg.judges.llm
    if llm.enabled and llm.model == AUTO:
        problem = judge_problem(cfg, all(is_tiny_world(s) for s in policies + [baseline]))
        if problem:
            raise ConfigError([problem.replace("and the policy is another model",
                                               "and a model under evaluation is another model")])
    if llm.enabled and llm.model == POLICY:
        return dataclasses.replace(cfg.judges, llm=dataclasses.replace(llm, model=str(model_arg(baseline, cfg).model_dir)))
    return resolve_judges(cfg, str(model_arg(baseline, cfg).model_dir), say)


def _cluster(cfg, say):
    """Ray only when a role runs remotely (rollout actors or Serve judge replicas)."""
    if cfg.rollout.workers.num_workers == 0 and cfg.judges.max_workers == 0:
        return None
    return connect(cfg)


def _print_summary(report: dict, out: Path, files: dict) -> None:
    pw = report["pairwise"]
    print(f"prompts: {report['prompt_set']}; pairwise judge: {pw['judge']} (both orders, position consistency "
          f"{pw['position_consistency']['value']:.3f})")
    for name in report["models"]:
        elo = pw["elo"][name]
        line = f"{name:>20}: ELO {elo['rating']:7.1f} [{elo['ci'][0]:.0f}, {elo['ci'][1]:.0f}]"
        if name in pw["win_rate"] and pw["win_rate"][name]["value"] is not None:
            w = pw["win_rate"][name]
            line += f"  win rate vs {report['baseline']} {w['value']:.3f} [{w['ci'][0]:.3f}, {w['ci'][1]:.3f}] (n={w['n']})"
        m = report["metrics"][name]
        if "grade_mean" in m and m["grade_mean"]["value"] is not None:
            line += (f"  reward {m['reward_mean']['value']:.3f}, grade ({report['grade_judge']}) "
                     f"{m['grade_mean']['value']:.3f}, pass {m['grade_pass']['value']:.3f}")
        print(line)
    if "stress" in report:
        o = report["stress"]["overall"]
        print(f"reward hacks: {o['per_100']:.1f} per 100 (n={o['n']})")
    print(f"report: {out / 'report.md'} ({len(files)} files)")


def cmd_judge_eval(args: argparse.Namespace) -> int:
    from ouro_ray.config import load_config
    from ouro_ray.data.files import write_json_atomic
    from ouro_ray.eval.judge_eval import judge_eval
    from ouro_ray.eval.judge_eval_report import print_summary, write_markdown

    cfg = load_config(args.config, args.args)
    out = Path(args.out or Path("evals") / f"judge-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    report = judge_eval(cfg, args.pairs, args.points, say)
    write_json_atomic(out / "judge_eval.json", report)
    write_markdown(report, out / "judge_eval.md")
    print_summary(report, out)
    return 0


def add_parsers(sub) -> None:
    e = sub.add_parser("eval", help="the evaluator pack: win rate and ELO vs a baseline, coherence under paraphrase, "
                                    "persona, safety, reward-hack stress; report.json/md, results.csv, PNGs",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--policy", action="append", required=True,
                   help="a policy: an `ouro run` directory, a learner checkpoint, an HF directory or 'tiny-world' "
                        "(repeat for more)")
    e.add_argument("--baseline", required=True, help="the model every policy is compared with (same forms)")
    e.add_argument("--prompts", help="prompts or labyrinth shard (default: a run's held-out prompts, else the "
                                     "config's held-out prompts, else the built-in tiny-world held-out set); at most "
                                     "evaluation.size are used")
    e.add_argument("--out", help="report directory (default: evals/<date-time>)")
    add_config_args(e, "evaluation.*, judges.*, scoring.*, rollout.*, cluster.*", "evaluation.n=4")
    e.set_defaults(func=main)

    from ouro_ray.eval import judge_eval

    j = sub.add_parser("judge-eval", help="grade every AI teacher (LLM, HTTP, rules, constitution) against the tiny "
                                          "world's ground truth on held-out items; judge_eval.json/md",
                       description=judge_eval.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    j.add_argument("config", nargs="?", help="YAML config (judges.*, scoring.*, world.*); default: the built-in one")
    j.add_argument("--out", help="report directory (default: evals/judge-<date-time>)")
    j.add_argument("--pairs", type=number(int), default=300, help="ground-truth pairs per item set (default 300)")
    j.add_argument("--points", type=number(int), default=200, help="single answers per item set (default 200)")
    j.add_argument("args", nargs="*", metavar="[KEY=VALUE]", help="config overrides, e.g. judges.llm.model=DIR")
    j.set_defaults(func=cmd_judge_eval)
