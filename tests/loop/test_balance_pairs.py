"""``scoring.balance_pairs``: DPO trains on as many pairs of requests to refuse as of the rest."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
from _standins import standin_loop

from ouro_ray.eval.heldout import builtin_heldout
from ouro_ray.loop.batches import balance_pairs, refusal_prompts
from ouro_ray.loop.driver import Experience


def _sides(ids: list[str]) -> tuple[pa.Table, pa.Table]:
    n = len(ids)
    side = {"prompt_id": ids, "candidate_id": [f"c{i}" for i in range(n)], "prompt_token_ids": [[1]] * n}
    return pa.table({**side, "token_ids": [[2]] * n}), pa.table({**side, "token_ids": [[3]] * n})


def test_the_larger_side_is_subsampled_to_the_smaller_and_the_rest_counted():
    chosen, rejected = _sides(["h1", "s1", "h2", "h3", "s2", "h4", "h5"])  # 5 to refuse, 2 to answer
    kept, kept_rejected, dropped = balance_pairs(chosen, rejected, {"h1", "h2", "h3", "h4", "h5"}, seed=3)
    ids = kept.column("prompt_id").to_pylist()
    assert dropped == 3 and len(ids) == 4 and [i for i in ids if i.startswith("s")] == ["s1", "s2"]
    assert ids == sorted(ids, key=chosen.column("prompt_id").to_pylist().index)  # the batch's order kept
    assert kept_rejected.column("candidate_id").to_pylist() == kept.column("candidate_id").to_pylist()
    assert balance_pairs(chosen, rejected, {"h1", "h2", "h3", "h4", "h5"}, seed=3)[0].equals(kept)  # seeded
    draws = {tuple(balance_pairs(chosen, rejected, {"h1", "h2", "h3", "h4", "h5"}, seed=s)[0]
                   .column("prompt_id").to_pylist()) for s in range(20)}
    assert len(draws) > 3  # which two of the five: the seed's choice
    assert balance_pairs(chosen, rejected, set(), seed=0) == (chosen, rejected, 0)  # a side with none: all kept
    assert balance_pairs(chosen, rejected, {"h1", "h2", "h3", "h4", "h5", "s1", "s2"}, seed=0)[2] == 0


def test_a_ratio_keeps_that_many_pairs_to_refuse_per_pair_of_the_rest():
    refuse = {f"h{i}" for i in range(8)}
    chosen, rejected = _sides([f"h{i}" for i in range(8)] + [f"s{i}" for i in range(6)])  # 8 to refuse, 6 not

    def counts(ratio: float) -> tuple[int, int, int]:
        ids = balance_pairs(chosen, rejected, refuse, seed=1, ratio=ratio)
        kept = ids[0].column("prompt_id").to_pylist()
        return sum(i.startswith("h") for i in kept), sum(i.startswith("s") for i in kept), ids[2]

    assert counts(1.0) == (6, 6, 2)  # as many of each: the larger side cut to the smaller
    assert counts(2.0) == (8, 4, 2)  # every pair to refuse kept, half as many of the rest
    assert counts(0.5) == (3, 6, 5)  # the other way: two of the rest per pair to refuse
    assert counts(4 / 3) == (8, 6, 0)  # exactly the ratio already: nothing dropped
    assert counts(100.0) == (8, 1, 5)  # never a side emptied by the ratio
    for ratio in (1.0, 2.0):  # seeded: the same draw again
        first = balance_pairs(chosen, rejected, refuse, seed=1, ratio=ratio)[0]
        assert balance_pairs(chosen, rejected, refuse, seed=1, ratio=ratio)[0].equals(first)


def test_a_ratio_without_balanced_pairs_is_refused_with_the_fix():
    import pytest

    from ouro_ray.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"override 'scoring.balance_ratio=2'.*fix: pass scoring.balance_pairs=true"):
        load_config(None, ["scoring.balance_ratio=2"])
    assert load_config(None, ["scoring.balance_pairs=true", "scoring.balance_ratio=2"]).scoring.balance_ratio == 2.0


def test_the_loop_balances_the_rounds_pairs_and_reports_the_dropped(tmp_path):
    batches = {}
    for balance, ratio in ((False, 1), (True, 1), (True, 0.9)):
        loop = standin_loop(tmp_path / f"{balance}-{ratio}",
                            ["learner.algo=dpo", f"scoring.balance_pairs={balance}", f"scoring.balance_ratio={ratio}",
                             "evaluation.teachers=[none]", "judges.constitution.enabled=false"])
        prompts = builtin_heldout(3, 40)
        candidates = loop.regenerate(prompts, 0)
        rewards, scored = loop.score(candidates, prompts, 0)
        loop._tokenizer = None  # no constitution pairs: nothing to tokenize
        got = []
        loop.roles.learner = SimpleNamespace(update=lambda batch, producer, ptx=None: got.append(batch) or {"loss": 1.0})
        update = loop.update(Experience(0, prompts, candidates, rewards, scored, {}, {}), 0)
        refuse = refusal_prompts(scored["items"])
        ids = got[0].column("prompt_id").to_pylist()
        batches[balance, ratio] = (ids, update, sum(i in refuse for i in ids))
        assert pq.read_table(loop.run.round_dir(0) / "preference_batch.parquet").equals(got[0])
    (plain, plain_update, plain_refuse), (ids, update, to_refuse) = batches[False, 1], batches[True, 1]
    assert 0 < plain_refuse < len(plain) - plain_refuse  # the stand-in round has fewer pairs to refuse
    assert to_refuse == len(ids) - to_refuse == plain_refuse  # as many of each, every pair to refuse kept
    assert update["pairs_dropped"] == len(plain) - len(ids) > 0 and "pairs_dropped" not in plain_update
    assert set(ids) <= set(plain)
    # scoring.balance_ratio=0.9: 0.9 pairs to refuse per pair of the rest, so every pair to refuse is kept
    # (18 of 40 in the stand-in round) and 20 of the rest, not 18
    tilted, tilted_update, tilted_refuse = batches[True, 0.9]
    assert tilted_refuse == plain_refuse <= 0.9 * (len(plain) - plain_refuse)
    assert len(tilted) - tilted_refuse == round(plain_refuse / 0.9) > plain_refuse
    assert tilted_update["pairs_dropped"] == len(plain) - len(tilted)
