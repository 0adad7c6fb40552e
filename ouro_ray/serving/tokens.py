"""Token texts for ``ouro serve``'s logprobs, shared by the completions and chat routes.

The logprobs themselves are recorded during generation (:mod:`ouro_ray.serving.steps`).
"""

from __future__ import annotations

import re

_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_BYTES_PREFIX = "bytes:"
_ESCAPED_BYTE = re.compile(r"\\x([0-9a-f]{2})")


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet, char → byte (the map byte-level BPE vocabularies are written in)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


_BYTE_LEVEL = _byte_level_decoder()


def token_text(tokenizer, token_id: int) -> str:
    """The text one token adds (``" 3"`` stays ``" 3"``); ``"bytes:\\xe2\\x80"`` for part of a UTF-8 character.

    Why the ``bytes:`` form (OpenAI's): decoding a partial character alone gives ``"\\ufffd"``, so
    distinct tokens would share a key in ``top_logprobs`` and a client would see fewer than K entries.
    """
    text = tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(token_id)
    match = _BYTE_TOKEN.fullmatch(raw)
    if match:
        return f"{_BYTES_PREFIX}\\x{match.group(1).lower()}"
    if all(ch in _BYTE_LEVEL for ch in raw):
        return _BYTES_PREFIX + "".join(f"\\x{_BYTE_LEVEL[ch]:02x}" for ch in raw)
    return raw


def token_bytes(text: str) -> list[int]:
    """The UTF-8 bytes a :func:`token_text` stands for (the chat logprobs' ``bytes`` field)."""
    if text.startswith(_BYTES_PREFIX) and _ESCAPED_BYTE.sub("", text[len(_BYTES_PREFIX):]) == "":
        return [int(h, 16) for h in _ESCAPED_BYTE.findall(text)]
    return list(text.encode("utf-8"))
