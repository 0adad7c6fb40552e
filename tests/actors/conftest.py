"""Fixtures for the role tests: prompts and small configs."""

from __future__ import annotations

import pyarrow as pa
import pytest


@pytest.fixture(scope="session")
def prompts() -> pa.Table:
    texts = ["What is the Veltra reactor?", "How do I bake bread?", "Explain the Osk tide.", "Tell me a fact."]
    return pa.table({
        "prompt_id": [f"p{i}" for i in range(len(texts))],
        "prompt": texts,
        "label": ["safe"] * len(texts),
    })
