"""A byte-level BPE tokenizer trained on the corpus, wrapped as a Hugging Face fast tokenizer.

The chat template renders a conversation as ``<|bos|>`` then, per message, a role marker, the
text and ``<|eos|>``. The end of each turn is the eos token so that ``generate`` stops at the end
of the assistant's turn without extra settings. Roles ``user`` and ``human`` are the same speaker.
"""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
HUMAN, ASSISTANT, SYSTEM = "<|human|>", "<|assistant|>", "<|system|>"
SPECIAL_TOKENS = (PAD, BOS, EOS, HUMAN, ASSISTANT, SYSTEM)
"""Special tokens, in id order (pad is 0), so a tiny vocab keeps them at fixed small ids."""

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] in ['user', 'human'] -%}{{- '" + HUMAN + "' -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- '" + ASSISTANT + "' -}}"
    "{%- elif message['role'] == 'system' -%}{{- '" + SYSTEM + "' -}}"
    "{%- else -%}{{- raise_exception('unknown chat role ' ~ message['role']"
    " ~ '; use user, human, assistant or system') -}}"
    "{%- endif -%}"
    "{{- message['content'] ~ eos_token -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '" + ASSISTANT + "' -}}{%- endif -%}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int, max_seq_len: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE of at most ``vocab_size`` tokens on ``texts``; return it wrapped.

    Any string can be encoded (byte-level), so text outside the corpus never maps to unknown.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size = {vocab_size}: a byte-level BPE needs at least {256 + len(SPECIAL_TOKENS)} tokens "
            f"(256 bytes + {len(SPECIAL_TOKENS)} specials); fix: raise world.model.vocab_size"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok, max_seq_len)


def wrap_tokenizer(tok: Tokenizer, max_seq_len: int) -> PreTrainedTokenizerFast:
    """The ``transformers`` face of ``tok``: special tokens named, chat template set."""
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=max_seq_len,
        # Left padding is what batched generation with a decoder-only model needs.
        padding_side="left",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped
