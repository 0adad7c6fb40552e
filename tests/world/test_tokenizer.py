"""The byte-level BPE tokenizer and its chat template."""

from __future__ import annotations

import pytest

from ouro_ray.world.tokenizer import ASSISTANT, BOS, EOS, HUMAN, SPECIAL_TOKENS, train_tokenizer

TEXTS = ["How to make a sandwich?", "Put your filling between two slices of bread."] * 20


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=300, max_seq_len=64)


def test_specials_have_fixed_ids(tok) -> None:
    assert tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(len(SPECIAL_TOKENS)))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert len(tok) <= 300


def test_user_and_human_render_the_same(tok) -> None:
    as_user = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    as_human = tok.apply_chat_template([{"role": "human", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert as_user == as_human == f"{BOS}{HUMAN}Hi{EOS}{ASSISTANT}"


def test_generation_prompt_only_when_asked(tok) -> None:
    msgs = [{"role": "human", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    assert tok.apply_chat_template(msgs, tokenize=False) == f"{BOS}{HUMAN}Hi{EOS}{ASSISTANT}Hello.{EOS}"


def test_unknown_role_is_a_clear_error(tok) -> None:
    with pytest.raises(Exception, match="unknown chat role robot"):
        tok.apply_chat_template([{"role": "robot", "content": "Hi"}], tokenize=False)


def test_any_text_round_trips(tok) -> None:
    text = "Ünïcode — and words never seen: Zyxwv 42!"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text


def test_vocab_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="raise world.model.vocab_size"):
        train_tokenizer(TEXTS, vocab_size=100, max_seq_len=64)
