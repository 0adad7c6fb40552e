"""A small synthetic run directory for the studio tests: two rounds, written as ``ouro run`` writes them."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ouro_ray.data import to_table, write_shard

TOKEN = "test-token-0123456789"
PERSONA = {"voice": "technical, concise", "constraints": ["no speculation", "at most 3 sentences"]}


class EchoPolicy:
    """Stands in for the run's policy: answers with what it was asked and the reply index."""

    def __init__(self):
        self.calls: list[tuple[list[dict], int]] = []

    def reply(self, turns: list[dict], index: int) -> str:
        self.calls.append((turns, index))
        return f"You said: {turns[-1]['text']} (reply {index})"


def _dialog(dialog_id: str, question: str, answer: str) -> dict:
    return {"dialog_id": dialog_id, "turns": [{"role": "human", "text": question}, {"role": "assistant", "text": answer}]}


def _candidates(rows: list[tuple[str, str, str]], version: int) -> list[dict]:
    return [{"prompt_id": p, "candidate_id": c, "text": t, "prompt_token_ids": [1, 2], "token_ids": [3, 4],
             "logprobs": [-0.5, -0.25], "policy_version": version} for p, c, t in rows]


def _prompt(prompt_id: str, text: str, facts: list[str]) -> dict:
    return {"dialog_id": prompt_id.split("-q")[0], "prompt_id": prompt_id, "kind": "rephrase", "prompt": text,
            "target": {"facts": facts, **PERSONA, "behavior": "answer"}, "group_id": None}


def _review(r: int, reason: str, prompt: dict, candidate_id: str, text: str) -> dict:
    return {"round": r, "reason": reason, "prompt_id": prompt["prompt_id"], "candidate_id": candidate_id,
            "prompt": prompt["prompt"], "candidate": text, "reward": 0.25, "disagreement": 1.5 if reason == "disagreement"
            else 0.1, "teachers": {"facts": {"scores": {"content": -1.0}, "notes": "0/1 facts kept"},
                                   "llm-judge": {"scores": {"helpful": 0.5, "honest": 0.2, "persona": -0.3},
                                                 "notes": None}}}


def _round(run: Path, r: int) -> list[dict]:
    """Round r's shards; returns its review items."""
    out = run / f"round_{r:03d}"
    d0, d1 = f"dlg-{r}-tea", f"dlg-{r}-moon"
    dialogs = [_dialog(d0, "How do I make tea?", "Steep black tea for 4 minutes. Use boiling water."),
               _dialog(d1, "How far is the moon?", "The moon is 384400 km away.")]
    summaries = [{"dialog_id": d0, "facts": ["Steep black tea for 4 minutes.", "Use boiling water."],
                  "logic": ["a safe how-to request"], "persona": PERSONA},
                 {"dialog_id": d1, "facts": ["The moon is 384400 km away."], "logic": ["a safe question"],
                  "persona": PERSONA}]
    prompts = [_prompt(f"{d0}-q1-r1", "Tell me how to make tea.", ["Steep black tea for 4 minutes."]),
               _prompt(f"{d1}-q1-r1", "What is the distance to the moon?", ["The moon is 384400 km away."])]
    cands = [(prompts[0]["prompt_id"], "c0", "Steep it for 4 minutes."), (prompts[0]["prompt_id"], "c1", "Boil it."),
             (prompts[1]["prompt_id"], "c0", "Far."), (prompts[1]["prompt_id"], "c1", "384400 km.")]
    write_shard(to_table(dialogs, "dialogs"), out / "dialogs.parquet", "dialogs")
    write_shard(to_table(summaries, "summaries"), out / "summaries.parquet", "summaries")
    write_shard(to_table(prompts, "labyrinth"), out / "labyrinth.parquet", "labyrinth")
    write_shard(to_table(_candidates(cands, r), "candidates"), out / "candidates.parquet", "candidates")
    return [_review(r, "disagreement", prompts[0], "c0", cands[0][2]), _review(r, "spot check", prompts[1], "c1", cands[3][2])]


def build_run(run: Path) -> Path:
    """Two finished rounds, held-out answers of rounds 0 and 1, metrics, and one chat dialogue not read yet."""
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"tool": "ouro run"}))
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "distill": {"voice": PERSONA["voice"],
                                                                           "constraints": PERSONA["constraints"]}}))
    (run / "state.json").write_text(json.dumps({"completed_rounds": 2, "policy_version": 2, "pool": [],
                                                "chat_seen": []}))
    held = [_prompt(f"held-{i}-q1-r1", f"Held-out question {i}?", [f"Fact {i}."]) for i in range(3)]
    write_shard(to_table(held, "labyrinth"), run / "heldout.parquet", "labyrinth")
    review = []
    for r in (0, 1):
        review += _round(run, r)
        answers = [(h["prompt_id"], f"c{k}", f"round {r} answer {k} to {h['prompt_id']}") for h in held for k in (0, 1)]
        write_shard(to_table(_candidates(answers, r), "candidates"), run / f"round_{r:03d}" / "heldout_candidates.parquet",
                    "candidates")
    (run / "review.jsonl").write_text("".join(json.dumps(i) + "\n" for i in review))
    metrics = [{"round": r, "reward_mean": 0.1 * r, "reward_mean_ci": [0.0, 0.2 * r + 0.1], "grade_mean": 0.05 * r,
                "win_rate": 0.6 if r else None, "kl": 0.01 * r} for r in (0, 1, 2)]
    (run / "metrics.json").write_text(json.dumps({"rounds": metrics}))
    chat = _dialog("chat-20260101T000000-abcd", "What is the Halden compiler?", "The Halden compiler targets the Z80 chip.")
    (run / "chat").mkdir()
    (run / "chat" / "dialogs.jsonl").write_text(json.dumps(chat) + "\n")
    return run


def lines(path: Path) -> list[dict]:
    """The JSON lines of a file ([] when it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
