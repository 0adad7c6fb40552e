"""``ouro chat``: stage 1 for a human, with lines piped in as a script would type them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ouro_ray.cli import main
from ouro_ray.data import ShardError, read_shard
from ouro_ray.stages.dialogue import append_dialog, chat

OURO = Path(sys.executable).parent / "ouro"
SCRIPT = "What is the Orlin bridge?\nThanks. How do I boil an egg?\n/end\nHow to hack a system?\n/quit\n"
TYPED = [["What is the Orlin bridge?", "Thanks. How do I boil an egg?"], ["How to hack a system?"]]


def _ouro_chat(*args: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(OURO), "chat", *args, "rollout.sampling.max_new_tokens=16"], input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env=os.environ | {"RAY_ENABLE_AUTO_CONNECT": "0"})


def _dialogs(path: Path) -> list[dict]:
    return read_shard(path, "dialogs").table.to_pylist()  # raises on any invalid record


def test_piped_lines_become_dialogs_appended_to_the_shard(tmp_path, tiny_model_dir):
    out = tmp_path / "d.jsonl"
    done = _ouro_chat("--model", tiny_model_dir, "--out", str(out), stdin=SCRIPT)
    assert done.returncode == 0, done.stderr
    dialogs = _dialogs(out)
    assert [len(d["turns"]) // 2 for d in dialogs] == [2, 1]
    for dialog, typed in zip(dialogs, TYPED):
        turns = dialog["turns"]
        assert [t["role"] for t in turns] == ["human", "assistant"] * len(typed)
        assert [t["text"] for t in turns[::2]] == typed
        assert all(isinstance(t["text"], str) and t["text"] for t in turns[1::2])
    assert done.stdout.count("policy> ") == 3 and "you> " not in done.stdout  # no prompt when stdin is a pipe
    assert f"saved {dialogs[0]['dialog_id']} (2 exchanges) -> {out}" in done.stderr

    assert _ouro_chat("--model", tiny_model_dir, "--out", str(out), stdin=SCRIPT).returncode == 0
    ids = [d["dialog_id"] for d in _dialogs(out)]
    assert len(ids) == 4 and len(set(ids)) == 4  # appended, not overwritten
    assert all(i.startswith("chat-") for i in ids)


def test_a_run_directory_chats_with_its_policy_into_its_chat_shard(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "policy").symlink_to(tiny_model_dir, target_is_directory=True)
    done = _ouro_chat("--model", str(run_dir), stdin="Hello there\n")  # EOF saves the dialogue
    assert done.returncode == 0, done.stderr
    [dialog] = _dialogs(run_dir / "chat" / "dialogs.jsonl")
    assert dialog["turns"][0] == {"role": "human", "text": "Hello there"}


def test_unusable_model_or_output_exits_2_with_the_fix(tmp_path, tiny_model_dir, capsys):
    bogus = tmp_path / "no-such-model"
    assert main(["chat", "--model", str(bogus), "--out", str(tmp_path / "d.jsonl")]) == 2
    err = capsys.readouterr().err
    assert str(bogus) in err and "fix:" in err
    assert main(["chat", "--model", tiny_model_dir]) == 2
    assert "--out is required" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{}")
    assert main(["chat", "--model", str(tmp_path)]) == 2
    assert "has not finished a round yet" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text(f"model:\n  path: {tiny_model_dir}\n")
    (tmp_path / "state.json").write_text('{"policy_version": 2}')
    assert main(["chat", "--model", str(tmp_path)]) == 2  # updated, and its policy is gone: say so
    assert "has not finished a round yet" in capsys.readouterr().err
    assert main(["chat", "--model", tiny_model_dir, "--out", str(tmp_path / "d.txt")]) == 2
    assert "unknown shard format" in capsys.readouterr().err


def test_a_run_before_its_first_update_chats_with_the_model_it_started_from(tmp_path, tiny_model_dir):
    from ouro_ray.models.resolve import resolve_model

    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "config.yaml").write_text(f"model:\n  path: {tiny_model_dir}\n")
    resolved = resolve_model(tmp_path)  # no state.json yet: the run has not updated its policy
    assert resolved.model_dir == Path(tiny_model_dir) and resolved.run_dir == tmp_path
    (tmp_path / "state.json").write_text('{"policy_version": 0, "completed_rounds": 1}')  # a round whose update was skipped
    assert resolve_model(tmp_path).model_dir == Path(tiny_model_dir)


def test_dialogues_append_to_parquet_and_empty_dialogues_are_not_saved(tmp_path, capsys):
    out = tmp_path / "dialogs.parquet"
    for _ in range(2):
        lines = iter(["", "/end", "hi", "/help", "", "", "/nope", "bye", None])
        chat(lambda turns, i: f"reply {i} to {turns[-1]['text']}", out, lambda: next(lines))
    dialogs = _dialogs(out)
    assert [[t["text"] for t in d["turns"]] for d in dialogs] == [["hi", "reply 0 to hi"], ["bye", "reply 1 to bye"]] * 2
    said = capsys.readouterr()
    assert "/quit" in said.out and "unknown command /nope" in said.err  # /help listed, typo refused not sent


def test_a_bad_dialogue_is_never_written(tmp_path):
    out = tmp_path / "dialogs.jsonl"
    append_dialog({"dialog_id": "a", "turns": [{"role": "human", "text": "hi"}]}, out)
    with pytest.raises(ShardError, match="user"):
        append_dialog({"dialog_id": "b", "turns": [{"role": "user", "text": "hi"}]}, out)
    assert [d["dialog_id"] for d in _dialogs(out)] == ["a"]


def test_a_long_conversation_keeps_its_last_tokens_and_a_too_long_answer_is_refused(tiny_model_dir):
    from ouro_ray.config.roles import SamplingConfig
    from ouro_ray.stages.dialogue import ChatPolicy, ChatUsageError

    policy = ChatPolicy(Path(tiny_model_dir), SamplingConfig(max_new_tokens=8), seed=0)
    assert policy.context == 256 - 8  # the small world's max_seq_len minus the answer's room
    turns = [{"role": "human", "text": "tell me about the Orlin bridge " * 100}]
    assert isinstance(policy.reply(turns, 0), str)  # ~700 tokens cut to the last 248: no position overflow
    with pytest.raises(ChatUsageError, match="rollout.sampling.max_new_tokens = 256"):
        ChatPolicy(Path(tiny_model_dir), SamplingConfig(max_new_tokens=256), seed=0)


def test_a_conversation_longer_than_the_context_drops_its_oldest_tokens_counted_and_logged(tiny_model_dir, caplog):
    import dataclasses
    import json as _json

    from ouro_ray.config.roles import SamplingConfig
    from ouro_ray.stages.dialogue import ChatPolicy

    positions = _json.loads((Path(tiny_model_dir) / "config.json").read_text())["max_position_embeddings"]
    sampling = dataclasses.replace(SamplingConfig(), max_new_tokens=positions - 8)  # 8 tokens of context left
    policy = ChatPolicy(Path(tiny_model_dir), sampling, seed=0)
    policy.reply([{"role": "human", "text": "Hi."}], 0)
    assert policy.dropped_tokens == 0
    long = " ".join(["What is the Orlin bridge?"] * 6)
    with caplog.at_level("WARNING"):
        policy.reply([{"role": "human", "text": long}], 1)
    assert policy.dropped_tokens > 0 and f"the oldest {policy.dropped_tokens} were left out" in caplog.text
