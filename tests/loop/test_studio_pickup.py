"""The next round reads what people did in the studio: summary edits (the dialogue distilled again under
the edit), review scores (replay, pairs), pairs, votes and chats counted; records read once; unknown ids
and torn lines counted, never dropped silently. In process, with the stand-in roles and the rule teachers."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from _standins import standin_loop

from ouro_ray.data.studio import StudioLog
from ouro_ray.loop.studio import StudioReader, concat_pairs, human_summaries, unused_pairs
from ouro_ray.stages.sources import DialogSource


@pytest.fixture
def loop(tmp_path):
    loop = standin_loop(tmp_path / "run", ["data.synthetic_dialogs=3", "loop.prompts_per_round=0", "distill.use_ai=false",
                                            "learner.algo=ppo", "learner.ppo.ptx_coef=0", "judges.constitution.enabled=false",
                                            "evaluation.teachers=[none]", "replay.share=0.2"])
    loop.source = DialogSource(loop.cfg, loop.run.path)
    return loop


def _round0(loop):
    experience = loop.experience(0)
    loop.run.save_state({**loop.state, **experience.state, "completed_rounds": 1})
    return experience


def _two_candidates(loop, r: int = 0) -> tuple[str, str, str]:
    """A prompt of round r with two different candidates: (prompt_id, candidate a, candidate b)."""
    rows = pq.read_table(loop.run.round_dir(r) / "candidates.parquet").to_pylist()
    by_prompt: dict[str, dict[str, str]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt_id"], {})[row["candidate_id"]] = row["text"]
    pid = next(p for p, c in by_prompt.items() if len(set(c.values())) >= 2)
    a, b = sorted(by_prompt[pid])[:2]
    return pid, a, b


def test_the_next_round_picks_up_edits_scores_pairs_votes_and_chats(loop):
    _round0(loop)
    studio = StudioLog(loop.run.path)
    summary = pq.read_table(loop.run.round_dir(0) / "summaries.parquet").to_pylist()[0]
    fact = "The answer must mention the corrected fact."
    studio.append("summaries", {"dialog_id": summary["dialog_id"], "round": 0, "base": "x", "seconds": 30.0,
                                "facts": [*summary["facts"], fact], "logic": summary["logic"],
                                "persona": summary["persona"]})
    pid, a, b = _two_candidates(loop)
    studio.append("scores", {"round": 0, "prompt_id": pid, "candidate_id": a, "seconds": 12.0,
                             "scores": {"helpful": 1, "honest": 2, "persona": 1}})
    studio.append("scores", {"round": 0, "prompt_id": pid, "candidate_id": b, "seconds": 12.0,
                             "scores": {"helpful": 2, "honest": 2, "persona": 2}})
    studio.append("pairs", {"round": 0, "prompt_id": pid, "chosen": b, "rejected": a, "seconds": 6.0})
    studio.append("votes", {"left": "round 0", "right": "round 1", "prompt_id": "h", "candidate_id": "c0",
                            "winner": "left", "seconds": 9.0})
    studio.append("chats", {"dialog_id": "chat-x", "exchanges": 1, "seconds": 60.0})
    studio.append("scores", {"round": 0, "prompt_id": pid, "candidate_id": "c9", "seconds": 3.0,  # no such candidate
                             "scores": {"helpful": 5, "honest": 5, "persona": 5}})

    experience = loop.experience(1)
    stats = experience.stats
    assert stats["studio_edits"] == 1 and stats["studio_revisited"] == 1  # round 0's dialogue, distilled again
    assert stats["studio_scores"] == 3 and stats["studio_unknown"] == 1 and stats["studio_votes"] == 1
    assert stats["studio_chats"] == 1 and stats["studio_pairs"] == 2  # the explicit pair + the two scores' pair
    assert stats["studio_replayed"] == 1  # both answers scored low: the prompt comes back
    assert stats["studio_minutes"] == pytest.approx((30 + 12 + 12 + 6 + 9 + 60 + 3) / 60)
    assert stats["human_pairs_unused"] == 2  # PPO with no reward model: counted, not silently dropped
    assert stats["distill_overridden"] == 1  # the person's summary replaced the distilled one
    edited = {s["dialog_id"]: s for s in pq.read_table(loop.run.round_dir(1) / "summaries.parquet").to_pylist()}
    assert fact in edited[summary["dialog_id"]]["facts"]  # the person's edit won over the distilled summary
    prompts = pq.read_table(loop.run.round_dir(1) / "labyrinth.parquet").to_pylist()
    assert any(p["dialog_id"] == summary["dialog_id"] and fact in p["target"]["facts"] for p in prompts)
    assert any(e["cluster"].startswith("human:") and e["record"]["prompt_id"] == pid for e in loop.state["pool"])
    assert experience.state["studio_seen"] == {"chats": 1, "summaries": 1, "scores": 3, "pairs": 1, "votes": 1}
    pairs = experience.scored["human_pairs"].to_pylist()
    texts = {r["candidate_id"]: r["text"] for r in pq.read_table(loop.run.round_dir(0) / "candidates.parquet").to_pylist()
             if r["prompt_id"] == pid}
    assert all(p["chosen"] == texts[b] and p["rejected"] == texts[a] and p["source"] == "human" for p in pairs)

    again = loop.experience(2).stats  # nothing new: every record was read once
    assert again["studio_edits"] == again["studio_scores"] == again["studio_revisited"] == again["studio_votes"] == 0


def test_a_torn_line_is_quarantined_and_counted_and_later_lines_still_read(tmp_path):
    studio = StudioLog(tmp_path)
    studio.append("votes", {"left": "a", "right": "b", "prompt_id": "p", "candidate_id": "c", "winner": "tie",
                            "seconds": 1.0})
    with studio.path("votes").open("a") as fh:
        fh.write('{"left": "a", "right": "b", "pro')  # a writer killed mid-line
    studio.append("votes", {"left": "a", "right": "b", "prompt_id": "p", "candidate_id": "c", "winner": "left",
                            "seconds": 2.0})
    read = studio.read("votes")
    assert [r["winner"] for r in read.records] == ["tie", "left"] and read.quarantined == 1
    lines = studio.path("votes").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["winner"] == "left"  # the fragment kept to its own line


def test_records_naming_nothing_of_the_run_are_counted(tmp_path, loop):
    _round0(loop)
    studio = StudioLog(loop.run.path)
    studio.append("summaries", {"dialog_id": "no-such-dialog", "round": 0, "base": "x", "seconds": 1.0,
                                "facts": ["a fact"], "logic": [], "persona": {"voice": "v", "constraints": []}})
    studio.append("pairs", {"round": 7, "prompt_id": "p", "chosen": "c0", "rejected": "c1", "seconds": 1.0})
    pid, a, _ = _two_candidates(loop)
    studio.append("pairs", {"round": 0, "prompt_id": pid, "chosen": a, "rejected": a, "seconds": 1.0})
    studio.append("scores", {"round": 0, "prompt_id": pid, "candidate_id": a, "seconds": 1.0,
                             "scores": {"helpful": 9, "honest": 1, "persona": 1}})  # out of 1..5
    out, seen = StudioReader(loop.run, 0.0).read({}, set(), 1)
    assert out.stats["studio_unknown"] == 4 and out.pairs is None and not out.replay and not out.revisit
    assert seen["pairs"] == 2 and seen["summaries"] == 1


def test_human_summaries_studio_edit_wins_over_the_file_and_only_this_batch():
    import pyarrow as pa

    from ouro_ray.data.schemas import SHARDS

    persona = {"voice": "v", "constraints": []}
    dialogs = pa.Table.from_pylist([{"dialog_id": "d1", "turns": [{"role": "human", "text": "hi"}]}],
                                   schema=SHARDS["dialogs"].schema)
    file = pa.Table.from_pylist([{"dialog_id": "d1", "facts": ["file"], "logic": [], "persona": persona},
                                 {"dialog_id": "d2", "facts": ["other"], "logic": [], "persona": persona}],
                                schema=SHARDS["summaries"].schema)
    edits = pa.Table.from_pylist([{"dialog_id": "d1", "facts": ["studio"], "logic": [], "persona": persona}],
                                 schema=SHARDS["summaries"].schema)
    assert human_summaries(dialogs, edits, file).to_pylist()[0]["facts"] == ["studio"]
    assert human_summaries(dialogs, None, file).num_rows == 1  # d2 is not in the batch
    assert human_summaries(dialogs, None, None) is None
    assert concat_pairs(None, None) is None
    assert unused_pairs(None, False, False) == {} and unused_pairs(file.slice(0, 0), True, False) == {}


def test_prompts_cut_by_the_round_cap_and_pool_entries_cut_by_max_pool_are_counted(tmp_path):
    loop = standin_loop(tmp_path / "run", ["data.synthetic_dialogs=3", "distill.use_ai=false", "loop.prompts_per_round=5",
                                           "replay.share=0", "replay.threshold=1.0", "replay.max_pool=2",
                                           "labyrinth.max_prompts_per_dialog=4", "evaluation.teachers=[none]"])
    loop.source = DialogSource(loop.cfg, loop.run.path)
    stats = loop.experience(0).stats
    made = stats["train_prompts"] + stats["prompts_cut"]  # the labyrinth's prompts before the round's cap
    assert stats["train_prompts"] == 5 and stats["prompts_cut"] == made - 5 > 0
    assert stats["labyrinth_capped"] > 0  # 3 dialogues' requests make more than 4 prompts each
    # threshold 1.0: every prompt fails (a hedge candidate each); the pool keeps 2, the rest are counted as cut
    assert stats["failing_prompts"] == 5 and stats["pool"] == 2 and stats["pool_cut"] == 3


def test_rows_of_the_scores_file_that_name_no_candidate_of_the_round_are_counted():
    import pyarrow as pa

    from ouro_ray.data.schemas import SHARDS
    from ouro_ray.loop.studio import scores_file_counts

    candidates = pa.table({"prompt_id": ["p", "p"], "candidate_id": ["c0", "c1"]})
    human = pa.Table.from_pylist([
        {"prompt_id": p, "candidate_id": c, "scores": {"helpful": 1.0}, "reward": 1.0, "rater": "human"}
        for p, c in (("p", "c0"), ("p", "c1"), ("q", "c0"))], schema=SHARDS["scores"].schema)
    assert scores_file_counts(human, candidates) == {"human_file_matched": 2, "human_file_unmatched": 1}
    assert scores_file_counts(None, candidates) == {}


def test_a_half_written_line_in_the_chat_shard_is_quarantined_not_a_crash(loop):
    from ouro_ray.stages.dialogue import RUN_CHAT_SHARD, append_dialog

    shard = loop.run.path / RUN_CHAT_SHARD
    append_dialog({"dialog_id": "chat-a", "turns": [{"role": "human", "text": "What is the Orlin bridge?"},
                                                     {"role": "assistant", "text": "A bridge."}]}, shard)
    with shard.open("a") as fh:
        fh.write('{"dialog_id": "chat-b", "turns": [{"role": "hum')  # the writer was killed here
    stats = loop.experience(0).stats
    dialogs = pq.read_table(loop.run.round_dir(0) / "dialogs.parquet").column("dialog_id").to_pylist()
    assert "chat-a" in dialogs and stats["chat_quarantined"] == 1
    assert (loop.run.path / "chat" / "quarantine.jsonl").is_file()
