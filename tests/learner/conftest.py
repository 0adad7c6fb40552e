"""Fixtures for the learner tests: tokenized catalog pairs with the reference's logprobs joined."""

from __future__ import annotations

import pyarrow as pa
import pytest
from _pairs import catalog_pairs, split_pairs


@pytest.fixture(scope="session")
def preference_batches(tiny_model_dir) -> tuple[pa.Table, pa.Table]:
    """(train, held_out) ``preference_batch`` tables for the small tiny model."""
    from actors.reference import ReferenceGroup
    from ouro_ray.config.roles import ReferenceConfig, RoleResources
    from ouro_ray.learner.batches import preference_batch, tokenize_pairs
    from ouro_ray.models.load import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    reference = ReferenceGroup(tiny_model_dir, ReferenceConfig(workers=RoleResources(num_workers=0, batch_size=32)))

    def batch(pairs: pa.Table) -> pa.Table:
        chosen, rejected = tokenize_pairs(pairs, tokenizer)
        return preference_batch(chosen, rejected, reference.logprobs(chosen), reference.logprobs(rejected),
                                pairs.column("prompt_id"))

    train, held = split_pairs(catalog_pairs())
    return batch(train), batch(held)
