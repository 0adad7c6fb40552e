"""The Ouroboros loop: one round is the seven steps, each its own short method.

    dialogs    = dialogue(r)                   1  files, chat sessions, synthetic; the studio's records
    summaries  = distill(dialogs)              2  {facts, logic, persona}; human edits win
    prompts    = labyrinth(summaries, r)       3  rephrase / adversarial / contrastive + replayed
    candidates = regenerate(prompts, r)        4  n per prompt, rollout group
    rewards    = score(candidates, prompts, r) 5  teachers → λ-weighted reward; review queue
    replay(prompts, rewards, r)                7  failures, clustered, re-enter next round
    update     = update(experience, r)         6  PPO on experience, or DPO on ranked pairs

Stage 7 needs only the rewards, so it runs before the update: everything round r + 1 needs from
round r is then known before round r trains. ``loop.mode=async`` uses that to make the next rounds'
experience on a thread while the update runs (see :mod:`ouro_ray.loop.pipeline`).

Round 0 of ``metrics.json`` is the policy before any update, measured on the held-out prompts;
entry r + 1 is measured after round r's update, on the same prompts with the same sampling seed.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cluster import telemetry
from ouro_ray.config import OuroConfig
from ouro_ray.data import read_shard
from ouro_ray.eval import pack
from ouro_ray.eval.grade import make_grader
from ouro_ray.judges.human import SimulatedHuman, ask_pairs
from ouro_ray.judges.scoring import check_unreadable, label_review, review_queue, score_candidates
from ouro_ray.loop import replay as replay_stage
from ouro_ray.loop.evaluate import round_metrics, stack_stress, token_kl
from ouro_ray.loop.pipeline import Ahead, StageClock
from ouro_ray.loop.reward_model import round_pairs
from ouro_ray.loop.roles import Roles, generate_current
from ouro_ray.loop.rundir import RunDir
from ouro_ray.loop.studio import StudioReader, StudioRound, concat_pairs, human_summaries, scores_file_counts, unused_pairs
from ouro_ray.seeding import derive_seed
from ouro_ray.stages.distill import distill as distill_stage
from ouro_ray.stages.labyrinth import labyrinth as labyrinth_stage
from ouro_ray.stages.sources import DialogSource, prompt_kind, read_prompts, rephrase_prompts, sample_rows

STAGES = ("dialogue", "distill", "labyrinth", "regenerate", "score", "replay", "update", "evaluate")
"""The stages in the order a round runs them."""
STEP = {"dialogue": "1", "distill": "2", "labyrinth": "3", "regenerate": "4", "score": "5", "replay": "7",
        "update": "6", "evaluate": "eval"}
"""Each stage's number among the seven steps."""


@dataclass
class Experience:
    """Round r up to its update: what stage 6 consumes, and the run state as stage 7 left it."""

    round: int
    prompts: pa.Table
    candidates: pa.Table
    rewards: pa.Table
    scored: dict
    stats: dict
    state: dict
    """``pool``, ``chat_seen`` (and the reward model's version) after this round (what state.json records once the round
    finishes)."""


class Loop:
    """Runs rounds into a :class:`RunDir` with the given role groups; resumable after any round."""

    def __init__(self, cfg: OuroConfig, run: RunDir, roles: Roles, model_dir: str, held_out: pa.Table,
                 source: DialogSource | None, writer: Any = None, stage: Callable[[str, str], None] = lambda name, lane: None):
        self.cfg, self.run, self.roles, self.held_out, self.source = cfg, run, roles, held_out, source
        self.model_dir, self.writer, self._on_stage = model_dir, writer, stage
        self.clock = StageClock()
        self._lane = threading.local()
        self.state = run.state()
        self.fixed_prompts = read_prompts(cfg.data.prompts) if cfg.data.prompts else None
        self.human = read_shard(cfg.data.scores, "scores").table if cfg.data.scores else None
        self.summaries_override = (read_shard(cfg.distill.summaries_override, "summaries").table
                                   if cfg.distill.summaries_override else None)
        self.grader = make_grader(cfg.evaluation.teachers)  # held-out answers only: never scores training ones
        self.person = SimulatedHuman(cfg.human, derive_seed(cfg.seed, "human")) if cfg.human.simulated else None
        self.studio = StudioReader(run, cfg.replay.threshold)  # what people did in `ouro studio`

    @property
    def lane(self) -> str:
        """'main', or 'ahead' on the thread that makes later rounds' experience (async mode)."""
        return getattr(self._lane, "name", "main")

    def stage(self, name: str, r: int) -> None:
        """Mark the start of round r's stage ``name``: its wall time becomes ``seconds_<name>`` of round r.

        The held-out evaluation after round r's update counts towards round r (the one before any
        update is round -1).
        """
        self.clock.start(name, r, self.lane)
        self._on_stage(name, self.lane)

    # ---------------------------------------------------------------- one round = the seven steps
    def experience(self, r: int) -> Experience:
        """Steps 1-5 and 7 of round r: all the update needs (async mode runs this ahead)."""
        dialogs, studio = self.dialogue(r)
        summaries, distilled = self.distill(dialogs, r, studio.overrides)
        prompts, drawn = self.labyrinth(summaries, dialogs, r)
        candidates = self.regenerate(prompts, r)
        rewards, scored = self.score(candidates, prompts, r, studio.pairs)
        replayed = self.replay(prompts, rewards, r, studio.replay)
        self.clock.stop()
        stats = {"train_reward_mean": float(np.mean(rewards.column("reward").to_numpy())),
                 "train_prompts": prompts.num_rows, "train_candidates": candidates.num_rows, **studio.stats,
                 **distilled, **drawn, **scored["stats"], **replayed, "pool": len(self.state["pool"])}
        state = {"pool": copy.deepcopy(self.state["pool"]), "chat_seen": list(self.state["chat_seen"]),
                 "studio_seen": dict(self.state.get("studio_seen", {}))}
        if self.roles.reward_model is not None:  # async mode refits ahead: state.json records this round's
            state["reward_model_version"] = self.roles.reward_model.version
        return Experience(r, prompts, candidates, rewards, scored, stats, state)

    def round(self, r: int, experience: Experience | None = None) -> dict:
        """Round r: its experience (made here, or ahead in async mode), then the update (step 6)."""
        experience = experience or self.experience(r)
        versions = experience.candidates.column("policy_version").to_numpy()
        staleness = {"train_policy_version": int(versions.min()), "staleness": int(self.roles.learner.version
                                                                                   - versions.min())}
        update = self.update(experience, r)
        return {**experience.stats, **staleness, **{f"update_{k}": v for k, v in update.items()}}

    # 1 -----------------------------------------------------------------------------------------
    def dialogue(self, r: int) -> tuple[pa.Table | None, StudioRound]:
        """Round r's dialogues (and the studio's records since the last round: dialogues a person's summary
        edit sends back through distill join them)."""
        self.stage("dialogue", r)
        dialogs, chat_ids = (None, []) if self.fixed_prompts is not None else self.source.round_dialogs(
            r, set(self.state["chat_seen"]))
        self.state["chat_seen"] = sorted(set(self.state["chat_seen"]) | set(chat_ids))
        batch = set() if dialogs is None else set(dialogs.column("dialog_id").to_pylist())
        studio, self.state["studio_seen"] = self.studio.read(self.state.get("studio_seen", {}), batch, r)
        if dialogs is None:
            return None, studio
        studio.stats["chat_quarantined"] = self.source.chat_quarantined
        if studio.revisit_dialogs is not None:
            dialogs = pa.concat_tables([dialogs, studio.revisit_dialogs.cast(dialogs.schema)])
        if dialogs.num_rows == 0:
            raise ValueError(f"round {r}: no dialogues (data.dialogs all held out, no chat sessions, no synthetic "
                             "dialogues); fix: add data.dialogs, set data.synthetic_dialogs, or use data.prompts")
        self.run.write(r, "dialogs", dialogs, "dialogs")
        return dialogs, studio

    # 2 -----------------------------------------------------------------------------------------
    def distill(self, dialogs: pa.Table | None, r: int, edits: pa.Table | None = None) -> tuple[pa.Table | None, dict]:
        """Stage 2; human summaries win: the studio's ``edits``, then ``distill.summaries_override``. Counts the
        AI facts dropped as ungrounded and the summaries a person's replaced."""
        self.stage("distill", r)
        if dialogs is None:
            return None, {}
        overrides = human_summaries(dialogs, edits, self.summaries_override)
        result = distill_stage(dialogs, self.cfg.distill, self.writer, overrides)
        self.run.write(r, "summaries", result.summaries, "summaries")
        return result.summaries, {f"distill_{k}": result.stats[k] for k in ("ai_facts_dropped", "overridden")}

    # 3 -----------------------------------------------------------------------------------------
    def labyrinth(self, summaries: pa.Table | None, dialogs: pa.Table | None, r: int) -> tuple[pa.Table, dict]:
        """Round r's prompts (fresh ones and ones replayed from the pool); counts the replayed ones and the
        fresh ones cut by the per-dialogue cap and by ``loop.prompts_per_round``."""
        self.stage("labyrinth", r)
        counts: dict[str, int] = {}
        seed = derive_seed(self.cfg.seed, "labyrinth", r)
        fresh = (rephrase_prompts(self.fixed_prompts, self.cfg.data.rephrase, seed) if self.fixed_prompts is not None
                 else labyrinth_stage(summaries, dialogs, self.cfg.labyrinth, seed, counts))
        kind, cap, share = prompt_kind(fresh), self.cfg.loop.prompts_per_round, self.cfg.replay.share
        n_replay = round(share * cap) if cap else round(share / (1 - share) * fresh.num_rows)
        records, self.state["pool"] = replay_stage.take(self.state["pool"], n_replay, self.cfg.seed, r)
        sampled = sample_rows(fresh, (cap - len(records)) if cap else 0, derive_seed(self.cfg.seed, "prompts", r))
        counts |= {"replayed": len(records), "prompts_cut": fresh.num_rows - sampled.num_rows}
        prompts = pa.concat_tables([sampled, pa.Table.from_pylist(records, schema=sampled.schema)]) if records else sampled
        self.run.write(r, "prompts" if kind == "prompts" else "labyrinth", prompts, kind)
        return prompts, counts

    # 4 -----------------------------------------------------------------------------------------
    def regenerate(self, prompts: pa.Table, r: int) -> pa.Table:
        self.stage("regenerate", r)
        candidates = generate_current(self.roles, prompts, derive_seed(self.cfg.seed, "rollout", r))
        self.run.write(r, "candidates", candidates, "candidates")
        return candidates

    # 5 -----------------------------------------------------------------------------------------
    def score(self, candidates: pa.Table, prompts: pa.Table, r: int,
              studio_pairs: pa.Table | None = None) -> tuple[pa.Table, dict]:
        """Stage 5: a person's pairwise choices (the simulated person's, the studio's ``studio_pairs``) and the
        reward model's refit first (they teach this round already), then every teacher, the review queue and
        the person's labels on it."""
        self.stage("score", r)
        before = None  # the person's ledger as the round starts
        if self.person is not None:
            self.person.open_round(r)
            before = dataclasses.replace(self.person.ledger)
        asks = self.person is not None and self.cfg.human.pairs_per_round > 0  # choices between two candidates
        compared = ask_pairs(self.person, candidates, prompts, self.cfg.human.pairs_per_round,
                             derive_seed(self.cfg.seed, "human-pairs", r)) if asks else None
        human = concat_pairs(compared, studio_pairs)  # a person's choices: the simulated one's, the studio's
        rm = self.roles.reward_model
        refit = rm.refit_round(self.run, human, r) if rm is not None else {}
        scored = score_candidates(candidates, prompts, self.roles.judges, self.cfg.scoring, self.human, self.teachers())
        queue = review_queue(scored.rewards, scored.scores, scored.items, self.cfg.scoring, self.cfg.seed, r)
        scored, labelled = (label_review(scored, queue, self.person, self.cfg.scoring) if self.person is not None
                            else (scored, 0))
        items, scores, rewards, out = scored.items, scored.scores, scored.rewards, scored.output
        check_unreadable(out.stats, self.cfg.judges.http.max_unreadable, r)
        self.run.write(r, "scores", scores, "scores")
        self.run.write_table(r, "rewards", rewards)
        if out.pairs.num_rows:
            self.run.write(r, "constitution_pairs", out.pairs, "pairs")
        self.run.append_jsonl("review.jsonl", queue)
        kept = (rm.keep(self.run, round_pairs(candidates, prompts, rewards, self.cfg.scoring.pair_margin, out.pairs,
                                              human), r) if rm is not None else {})
        sources = rewards.column("source").to_pylist()
        stats = {"review_disagreements": sum(q["reason"] == "disagreement" for q in queue),
                 "review_unreadable": sum(q["reason"] == "unreadable" for q in queue),
                 "review_spot_checks": sum(q["reason"] == "spot check" for q in queue),
                 "human_scored": sources.count("human"), **scores_file_counts(self.human, candidates), **out.stats,
                 "constitution_pairs": out.pairs.num_rows, **refit, **kept,
                 **unused_pairs(human, rm is not None and "human" in self.cfg.reward_model.pair_sources,
                                self.cfg.learner.algo == "dpo")}
        if before is not None:
            stats |= {"human_labels": labelled, "human_pairs": 0 if compared is None else compared.num_rows,
                      "review_unlabelled": len(queue) - labelled, **self.person.ledger.since(before)}
        return rewards, {"stats": stats, "items": items, "pairs": out.pairs, "human_pairs": human}

    # 6 -----------------------------------------------------------------------------------------
    def update(self, experience: Experience, r: int) -> dict:
        self.stage("update", r)
        from ouro_ray.loop.batches import dpo_batch, ppo_batch, refusal_prompts, revision_rows

        candidates, rewards, counts = experience.candidates, experience.rewards, {}
        if self.cfg.learner.algo == "ppo":
            batch, kind = ppo_batch(candidates, rewards, self.roles.reference), "experience"
        else:
            pairs = concat_pairs(experience.scored["pairs"], experience.scored["human_pairs"]) or experience.scored["pairs"]
            balance = ((refusal_prompts(experience.scored["items"]), derive_seed(self.cfg.seed, "balance-pairs", r),
                        self.cfg.scoring.balance_ratio) if self.cfg.scoring.balance_pairs else None)
            batch, dropped = dpo_batch(candidates, rewards, pairs, self.roles.reference, self.tokenizer,
                                       self.cfg.scoring.pair_margin, balance)
            kind, counts = "preference_batch", ({"pairs_dropped": float(dropped)} if balance else {})
        self.run.write(r, kind, batch, kind)
        if batch.num_rows == 0:
            return {"skipped": 1.0, **counts}
        ptx = None
        if self.cfg.learner.algo == "ppo" and self.cfg.learner.ppo.ptx_coef > 0:  # Constitutional AI's SL stage
            ptx = revision_rows(experience.scored["pairs"], self.tokenizer)
        metrics = self.roles.learner.update(batch, producer=f"ouro run round {r}", ptx=ptx)
        return {**{k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, **counts}

    @property
    def tokenizer(self):
        if not hasattr(self, "_tokenizer"):
            from ouro_ray.models.load import load_tokenizer

            self._tokenizer = load_tokenizer(self.model_dir)
        return self._tokenizer

    # 7 -----------------------------------------------------------------------------------------
    def replay(self, prompts: pa.Table, rewards: pa.Table, r: int, flagged: list[dict] = ()) -> dict:
        """Round r's failing prompts join the pool, clustered, with those a person ``flagged`` in the studio;
        counts the failing prompts and the entries ``replay.max_pool`` cut."""
        self.stage("replay", r)
        failing = replay_stage.failing_prompts(prompts, rewards, self.cfg.replay.threshold, r) + list(flagged)
        self.state["pool"], cut = replay_stage.update_pool(self.state["pool"], failing, self.cfg.replay)
        self.run.write_json(f"round_{r:03d}/replay.json", {
            "failing": [{"prompt_id": e["record"]["prompt_id"], "cluster": e["cluster"],
                         "mean_reward": round(e["mean_reward"], 4)} for e in failing],
            "pool_clusters": replay_stage.clusters(self.state["pool"])})
        return {"failing_prompts": len(failing), "pool_cut": cut}

    def teachers(self) -> list:
        """The driver's own teachers beside the judge group: the refitted reward model once it exists."""
        rm = self.roles.reward_model
        teacher = rm.teacher if rm is not None else None
        return [teacher] if teacher is not None else []

    # ---------------------------------------------------------------- evaluation and the run
    def evaluate(self, r: int) -> dict:
        """Held-out prompts, ``evaluation.n`` candidates each, the same sampling seed every round; the
        evaluator pack's figures, the independent grade beside the training teachers' reward (its verdicts
        in ``round_NNN/heldout_grades.parquet``, nowhere the learner reads), and the win rate against
        round 0's policy from round 1 on."""
        self.stage("evaluate", r - 1)
        sampling = dataclasses.replace(self.cfg.rollout.sampling, n=self.cfg.evaluation.n)
        candidates = generate_current(self.roles, self.held_out, derive_seed(self.cfg.seed, "evaluate"), sampling)
        answers = pack.score_answers(f"round {r}", candidates, self.held_out, self.roles.judges, self.cfg.scoring,
                                     self.human, self.grader, self.teachers())
        initial = self.initial_answers() if r > 0 else None
        kl = token_kl(candidates, self.roles.reference.logprobs(candidates))
        lengths = pc.list_value_length(candidates.column("token_ids")).to_numpy()
        metrics = {"round": r, "policy_version": int(candidates.column("policy_version")[0].as_py()),
                   **round_metrics(answers, initial, self.roles.judges, self.cfg.evaluation, self.cfg.seed),
                   "kl": kl, "length": float(np.mean(lengths)) if len(lengths) else 0.0}
        self.run.write(r, "heldout_candidates", candidates, "candidates")
        self.run.write(r, "heldout_scores", answers.scores, "scores")
        if answers.grades is not None:
            self.run.write_table(r, "heldout_grades", answers.grades)
        if r == 0:
            self._initial = answers
        if r == self.cfg.rounds and self.cfg.evaluation.stress:  # the stack that trained the final policy
            figures, stress = stack_stress(self.roles.judges, self.cfg.scoring, self.teachers(), self.cfg.seed)
            self.run.write_json("stress.json", {"round": r, **stress})
            metrics.update(figures)
        return metrics

    def initial_answers(self) -> pack.Answers:
        """Round 0's held-out answers, judged (read back from the run directory after a resume)."""
        if getattr(self, "_initial", None) is None:
            candidates = read_shard(self.run.round_dir(0) / "heldout_candidates.parquet", "candidates").table
            self._initial = pack.score_answers("round 0", candidates, self.held_out, self.roles.judges,
                                               self.cfg.scoring, self.human, self.grader)
        return self._initial

    def run_rounds(self, on_round: Callable[[int, dict], None] = lambda r, m: None) -> list[dict]:
        """Round 0's measurement (fresh runs), then every remaining round; returns metrics rounds."""
        history = self.run.read_json("metrics.json", {"rounds": []})["rounds"]
        done = self.state["completed_rounds"]
        history = [m for m in history if m["round"] <= done]
        for name in ("review.jsonl", "timeline.jsonl"):  # rows of an interrupted round (rerun now)
            self.run.drop_round_rows(name, done)
        if not history:
            measured = self.evaluate(0)
            history.append({**measured, **self._finish_clock(-1)})
            self.run.write_json("metrics.json", {"rounds": history})
            on_round(0, history[-1])
        self._round_started = time.time()
        if self.cfg.loop.mode == "sync":
            for r in range(done, self.cfg.rounds):
                self._train_round(r, history, on_round)
            return history
        staleness = self.cfg.loop.max_staleness
        self.updated_through = done - 1  # round r's experience may start once round r-1-staleness has trained
        with Ahead(self._experience_ahead, done, self.cfg.rounds,
                   lambda r: self.updated_through >= r - 1 - staleness) as ahead:
            for r in range(done, self.cfg.rounds):
                waited = time.monotonic()
                experience = ahead.take(r)
                self.clock.add(r, "wait_experience", time.monotonic() - waited)
                self._train_round(r, history, on_round, experience, ahead)
        return history

    def _experience_ahead(self, r: int) -> Experience:
        self._lane.name = "ahead"
        return self.experience(r)

    def _train_round(self, r: int, history: list[dict], on_round: Callable[[int, dict], None],
                     experience: Experience | None = None, ahead: Ahead | None = None) -> None:
        train = self.round(r, experience)
        if ahead is not None:
            self.updated_through = r
            ahead.poke()
        measured = self.evaluate(r + 1)
        finished = time.time()
        history.append({**measured, **train, **self._finish_clock(r),
                        "seconds_round": round(finished - self._round_started, 3)})
        telemetry.record("ouro_loop_items_per_s", train["train_candidates"] / max(finished - self._round_started, 1e-9),
                         run=self.run.path.name)
        telemetry.record("ouro_loop_round", r + 1, run=self.run.path.name)
        self._round_started = finished
        self.finish_round(r, history, experience.state if experience else None)
        on_round(r + 1, history[-1])

    def _finish_clock(self, r: int) -> dict[str, float]:
        """Round r's stage seconds; its timeline rows go to RUN_DIR/timeline.jsonl."""
        self.clock.stop()
        seconds, rows = self.clock.take(r)
        self.run.append_jsonl("timeline.jsonl", rows)
        return seconds

    def finish_round(self, r: int, history: list[dict], state: dict | None = None) -> None:
        """Export the policy, write metrics, then the state (last: a crash before it reruns round r).

        ``state``: the pool and chat dialogues as round r left them (async mode has moved on since).
        """
        checkpoint = self.roles.learner.latest_checkpoint()
        if checkpoint is not None and (checkpoint / "policy").is_dir():
            self.run.export_policy(checkpoint / "policy")
        self.run.write_json("metrics.json", {"rounds": history})
        if any(m.get("grade_mean") is not None for m in history):
            from ouro_ray.loop.report import plot_grade_gap

            plot_grade_gap(history, self.run.path / "grade_gap.png", title=f"ouro run {self.run.path.name}")
        self.state.update(completed_rounds=r + 1, policy_version=int(self.roles.learner.version))
        if self.roles.reward_model is not None:
            self.state["reward_model_version"] = self.roles.reward_model.version
        self.run.save_state({**self.state, **(state or {})})
