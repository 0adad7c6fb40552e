"""Paths the tests share (importable because pytest's pythonpath includes tests/)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "data" / "examples"
