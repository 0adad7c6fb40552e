"""Atomic file writes: a reader sees the old file or the whole new one, never half of either.

Every file the project writes for others to read (shards, manifests, run records, reports, plots)
goes through :func:`atomic_path`: the content is written to a temporary file beside the target and
renamed onto it only when the writer finished without an exception (a rename within one directory is
atomic on POSIX); on failure the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (parents created); rename it onto ``path`` only if the block
    succeeds. ``suffix``: the temporary file's ending, for writers that choose a format by it (``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """``text`` into ``path`` (UTF-8), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON (UTF-8, newline-terminated) into ``path``, atomically."""
    return write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def append_line(path: str | Path, line: str) -> Path:
    """Append one line (a JSON record) to ``path`` durably, as one writer among many.

    An exclusive ``flock`` serialises writers (two studio tabs, the studio and ``ouro chat``); the line is
    one ``write`` on an ``O_APPEND`` descriptor, then ``fsync``: once this returns the line survives a
    killed process. A previous writer killed mid-line left a fragment without a newline: a newline is
    written first, so the fragment stays a line of its own that readers quarantine, never glued to this one.
    """
    import fcntl

    if "\n" in line:
        raise ValueError(f"append_line writes one line; the text holds a newline: {line[:80]!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        os.write(fd, (("\n" if torn else "") + line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    return path


def json_objects(path: str | Path) -> Iterator[tuple[int, dict | None]]:
    """``(line number, record)`` for each non-blank line of a JSONL file that others append to; ``record`` is
    None for a line that is not a UTF-8 JSON object (a fragment of an interrupted write), for the caller
    to count.

    Lines end at ``b"\n"`` only, as :func:`append_line` writes them: a record whose text holds U+2028 or a
    lone ``\r`` stays one record (``str.splitlines`` would cut it in two).
    """
    with Path(path).open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                record = None
            yield n, record if isinstance(record, dict) else None



def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 4 MiB blocks: the key of content-addressed caches."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
