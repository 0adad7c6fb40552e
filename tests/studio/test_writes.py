"""Every write the studio takes: what it appends, and every bad input refused with nothing written."""

from __future__ import annotations

import threading

import pytest
from _studio_run import lines

from ouro_ray.data import read_shard
from ouro_ray.data.studio import StudioLog, summary_version

TEA = "dlg-0-tea-q1-r1"
SUMMARY = {"facts": ["Steep black tea for 4 minutes.", "Use boiling water."], "logic": ["a safe how-to request"],
           "persona": {"voice": "technical, concise", "constraints": ["no speculation", "at most 3 sentences"]}}


def _edit(**change) -> dict:
    base = summary_version(SUMMARY)
    return {"dialog_id": "dlg-0-tea", "round": 0, "base": base, **SUMMARY,
            "facts": [*SUMMARY["facts"], "Add milk if you like."], "seconds": 12.5, **change}


def _written(run_dir, kind: str) -> list[dict]:
    return lines(run_dir / "studio" / f"{kind}.jsonl")


# ---------------------------------------------------------------- summaries (stage 2)


def test_a_summary_edit_is_appended_and_becomes_the_current_version(client, run_dir) -> None:
    resp = client.post("/api/summaries", json=_edit())
    assert resp.status_code == 200, resp.text
    [record] = _written(run_dir, "summaries")
    assert record["facts"][-1] == "Add milk if you like." and record["round"] == 0 and record["seconds"] == 12.5
    assert record["base"] == summary_version(SUMMARY) and resp.json()["base"] == summary_version(record)
    page = client.get("/distill?tab=0").text
    assert "Add milk if you like." in page and "edited by a person" in page


def test_a_stale_edit_is_refused_with_409(client, run_dir) -> None:
    assert client.post("/api/summaries", json=_edit()).status_code == 200
    stale = client.post("/api/summaries", json=_edit(facts=["Steep green tea for 2 minutes."]))  # the old base
    assert stale.status_code == 409
    assert "changed in another tab since you opened it; reload" in stale.json()["error"]
    assert len(_written(run_dir, "summaries")) == 1


@pytest.mark.parametrize("change, status, message", [
    ({"dialog_id": "no-such-dialog"}, 404, "no such dialogue in round 0"),
    ({"round": 1}, 404, "no such dialogue in round 1"),
    ({"facts": []}, 422, "has no facts"),
    ({"facts": SUMMARY["facts"]}, 422, "same as the current version"),
    ({"facts": ["Use boiling water.", "  "]}, 422, "facts[1] is empty"),
    ({"logic": [""]}, 422, "logic[0] is empty"),
    ({"persona": {"voice": "terse", "constraints": ["ok", ""]}}, 422, "persona.constraints[1] is empty"),
    ({"facts": "one fact"}, 422, "facts"),
    ({"facts": [3]}, 422, "facts.0"),
    ({"seconds": -1}, 422, "seconds"),
])
def test_a_bad_summary_edit_is_refused_and_nothing_is_written(client, run_dir, change, status, message) -> None:
    resp = client.post("/api/summaries", json=_edit(**change))
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]
    assert _written(run_dir, "summaries") == []


def test_a_pending_chat_dialogue_gets_a_rule_draft_and_takes_an_edit(client, run_dir) -> None:
    page = client.get("/distill").text  # the default tab: the dialogues the next round reads
    assert "chat-20260101T000000-abcd" in page and "draft by rules" in page
    draft = run_dir_draft(run_dir)
    edit = {"dialog_id": "chat-20260101T000000-abcd", "round": None, "base": summary_version(draft),
            "facts": ["The Halden compiler targets the Z80 chip.", "It is a compiler."], "logic": draft["logic"],
            "persona": draft["persona"], "seconds": 4.0}
    assert client.post("/api/summaries", json=edit).status_code == 200
    assert _written(run_dir, "summaries")[0]["round"] is None


def run_dir_draft(run_dir) -> dict:
    from ouro_ray.studio.rundata import RunData

    summary, edit = RunData(run_dir).current_summary(None, "chat-20260101T000000-abcd")
    assert edit is None and summary["facts"] == ["The Halden compiler targets the Z80 chip."]
    return summary


# ---------------------------------------------------------------- scores and pairs (stage 5)


def _scores(**change) -> dict:
    return {"round": 0, "prompt_id": TEA, "candidate_id": "c0", "scores": {"helpful": 4, "honest": 5, "persona": 2},
            "seconds": 7.0, **change}


def test_scores_are_appended(client, run_dir) -> None:
    assert client.post("/api/scores", json=_scores()).status_code == 200
    [record] = _written(run_dir, "scores")
    assert record["scores"] == {"helpful": 4, "honest": 5, "persona": 2} and record["seconds"] == 7.0
    assert "helpful 4 · honest 5 · persona 2" in client.get("/review").text  # marked with the last label


@pytest.mark.parametrize("change, status, message", [
    ({"scores": {"helpful": 6, "honest": 5, "persona": 2}}, 422, "scores.helpful = 6: a score is a whole number from 1"),
    ({"scores": {"helpful": 0, "honest": 5, "persona": 2}}, 422, "scores.helpful = 0"),
    ({"scores": {"helpful": 3.5, "honest": 5, "persona": 2}}, 422, "scores.helpful = 3.5"),
    ({"scores": {"helpful": "3", "honest": 5, "persona": 2}}, 422, "scores.helpful = '3'"),
    ({"scores": {"helpful": True, "honest": 5, "persona": 2}}, 422, "scores.helpful = True"),
    ({"scores": {"helpful": 3, "honest": 5}}, 422, "scores.persona is missing"),
    ({"scores": {"helpful": 3, "honest": 5, "persona": 2, "style": 1}}, 422, "scores.style: not a rubric dimension"),
    ({"candidate_id": "c9"}, 404, "no review item (round 0, prompt_id 'dlg-0-tea-q1-r1', candidate_id 'c9')"),
    ({"round": 7}, 404, "no review item"),
    ({"round": "0"}, 422, "round"),
])
def test_bad_scores_are_refused_and_nothing_is_written(client, run_dir, change, status, message) -> None:
    resp = client.post("/api/scores", json=_scores(**change))
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]
    assert _written(run_dir, "scores") == []


def test_a_pair_is_appended(client, run_dir) -> None:
    resp = client.post("/api/pairs", json={"round": 1, "prompt_id": "dlg-1-tea-q1-r1", "chosen": "c1", "rejected": "c0",
                                           "seconds": 3.0})
    assert resp.status_code == 200, resp.text
    assert [(p["round"], p["chosen"], p["rejected"]) for p in _written(run_dir, "pairs")] == [(1, "c1", "c0")]


@pytest.mark.parametrize("change, status, message", [
    ({"chosen": "c0", "rejected": "c0"}, 422, "chosen = rejected = 'c0'"),
    ({"rejected": "c7"}, 422, "rejected = 'c7': not a candidate of prompt dlg-0-tea-q1-r1 in round 0 (its candidates: c0, c1)"),
    ({"prompt_id": "dlg-1-tea-q1-r1"}, 404, "no review item for prompt_id 'dlg-1-tea-q1-r1' in round 0"),
    ({"round": 5}, 404, "no review item"),
])
def test_bad_pairs_are_refused_and_nothing_is_written(client, run_dir, change, status, message) -> None:
    body = {"round": 0, "prompt_id": TEA, "chosen": "c1", "rejected": "c0", "seconds": 2.0, **change}
    resp = client.post("/api/pairs", json=body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]
    assert _written(run_dir, "pairs") == []


def test_two_writers_at_once_lose_nothing(client, run_dir) -> None:
    """Two tabs labelling at the same moment: every label arrives, one whole JSON line each."""
    def label(k: int) -> None:
        for i in range(15):
            resp = client.post("/api/scores", json=_scores(scores={"helpful": 1 + (i % 5), "honest": 1 + k, "persona": 3}))
            assert resp.status_code == 200

    threads = [threading.Thread(target=label, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    read = StudioLog(run_dir).read("scores")
    assert read.quarantined == 0 and len(read.records) == 60
    assert sorted(r["scores"]["honest"] for r in read.records) == sorted([1, 2, 3, 4] * 15)


def test_a_fragment_a_killed_writer_left_is_skipped_and_the_next_label_kept(client, run_dir) -> None:
    (run_dir / "studio").mkdir()
    (run_dir / "studio" / "scores.jsonl").write_text('{"round": 0, "prompt_id": "dlg-0-te')  # no newline: torn
    assert client.post("/api/scores", json=_scores()).status_code == 200
    read = StudioLog(run_dir).read("scores")
    assert read.quarantined == 1 and [r["candidate_id"] for r in read.records] == ["c0"]
    assert client.get("/review").status_code == 200
    assert "1 unreadable line(s)" in client.get("/run").text


def test_a_label_whose_text_holds_a_line_separator_stays_one_record(run_dir) -> None:
    log = StudioLog(run_dir)
    log.append("scores", {"candidate_id": "c0", "note": "one\u2028two\rthree\x85four", "seconds": 1.0})
    (run_dir / "studio" / "scores.jsonl").open("ab").write(b'{"torn": "\xe2\x80\n')  # half a character
    log.append("scores", {"candidate_id": "c1", "seconds": 2.0})
    read = log.read("scores")
    assert [r["candidate_id"] for r in read.records] == ["c0", "c1"] and read.quarantined == 1
    assert read.records[0]["note"] == "one\u2028two\rthree\x85four"


# ---------------------------------------------------------------- chat (stage 1)


def test_chat_replies_with_the_policy_and_writes_nothing(client, run_dir, policy) -> None:
    first = client.post("/api/chat/reply", json={"turns": [], "message": "  Hello there  "})
    assert first.json() == {"reply": "You said: Hello there (reply 0)"}
    turns = [{"role": "human", "text": "Hello there"}, {"role": "assistant", "text": first.json()["reply"]}]
    second = client.post("/api/chat/reply", json={"turns": turns, "message": "And tea?"})
    assert second.json()["reply"] == "You said: And tea? (reply 1)"
    assert policy.calls[1][0] == [*turns, {"role": "human", "text": "And tea?"}]
    assert not (run_dir / "studio").exists() and len(lines(run_dir / "chat" / "dialogs.jsonl")) == 1


@pytest.mark.parametrize("body, message", [
    ({"turns": [], "message": "   "}, "message is empty"),
    ({"turns": [{"role": "assistant", "text": "hi"}], "message": "x"}, "turns[0].role = 'assistant'"),
    ({"turns": [{"role": "robot", "text": "hi"}], "message": "x"}, "turns.0.role"),
    ({"turns": [{"role": "human", "text": "hi"}], "message": "x"}, "wait for the policy's answer"),
])
def test_a_bad_chat_message_is_refused(client, policy, body, message) -> None:
    resp = client.post("/api/chat/reply", json=body)
    assert resp.status_code == 422 and message in resp.json()["error"]
    assert policy.calls == []


def test_saving_a_dialogue_appends_a_valid_dialogs_record_and_a_chats_record(client, run_dir) -> None:
    turns = [{"role": "human", "text": "How do I make tea?"}, {"role": "assistant", "text": "Steep it."},
             {"role": "human", "text": "How long?"}, {"role": "assistant", "text": "4 minutes."}]
    assert "chat-20260101T000000-abcd" in client.get("/distill").text  # the drafts so far, before the save
    resp = client.post("/api/chat/save", json={"turns": turns, "seconds": 42.0})
    assert resp.status_code == 200, resp.text
    saved = resp.json()
    assert saved["exchanges"] == 2 and saved["next_round"] == f"ouro run --resume {run_dir} rounds=3"
    table = read_shard(run_dir / "chat" / "dialogs.jsonl", "dialogs").table  # the shard stays valid
    assert table.column("dialog_id").to_pylist()[-1] == saved["dialog_id"]
    assert table.to_pylist()[-1]["turns"] == turns
    [chats] = _written(run_dir, "chats")
    assert (chats["dialog_id"], chats["exchanges"], chats["seconds"]) == (saved["dialog_id"], 2, 42.0)
    assert saved["dialog_id"] in client.get("/distill").text  # pending: the next round reads it


@pytest.mark.parametrize("turns, message", [
    ([], "nothing to save"),
    ([{"role": "human", "text": "hi"}], "nothing to save"),
    ([{"role": "human", "text": ""}, {"role": "assistant", "text": "x"}], "turns[0].text is empty"),
])
def test_a_bad_dialogue_is_not_saved(client, run_dir, turns, message) -> None:
    resp = client.post("/api/chat/save", json={"turns": turns, "seconds": 1.0})
    assert resp.status_code == 422 and message in resp.json()["error"]
    assert len(lines(run_dir / "chat" / "dialogs.jsonl")) == 1 and _written(run_dir, "chats") == []
