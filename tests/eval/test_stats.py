"""Evaluation statistics on hand-worked numbers, a loop reference fit and synthetic coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ouro_ray.eval.stats import bootstrap_ci, bradley_terry, bradley_terry_intervals, position_bias, win_rate

THREE_TO_ONE = [("A", "B", "a")] * 3 + [("A", "B", "b")]


def _simulate(true: dict[str, float], per_pair: int, seed: int) -> list[tuple[str, str, str]]:
    """``per_pair`` comparisons of every pair, A winning with the Elo probability 1 / (1 + 10^(-gap/400))."""
    rng = np.random.default_rng(seed)
    names = list(true)
    outcomes = []
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            p_x = 1.0 / (1.0 + 10 ** ((true[y] - true[x]) / 400))
            outcomes += [(x, y, "a" if u < p_x else "b") for u in rng.random(per_pair)]
    return outcomes


def _hunter_mm(outcomes, iters: int = 20_000) -> dict[str, float]:
    """Reference fit, one loop per sum: Hunter 2004 eq. 3, p_i <- W_i / sum_j n_ij / (p_i + p_j)."""
    names = sorted({m for a, b, _ in outcomes for m in (a, b)})
    won = {m: 0.0 for m in names}
    games = {(x, y): 0.0 for x in names for y in names}
    for a, b, w in outcomes:
        won[a] += {"a": 1.0, "b": 0.0, "tie": 0.5}[w]
        won[b] += {"a": 0.0, "b": 1.0, "tie": 0.5}[w]
        games[a, b] += 1
        games[b, a] += 1
    p = {m: 1.0 for m in names}
    for _ in range(iters):
        p = {i: won[i] / sum(games[i, j] / (p[i] + p[j]) for j in names if j != i) for i in names}
    elo = {m: 400 * math.log10(v) for m, v in p.items()}
    mean = sum(elo.values()) / len(elo)
    return {m: v - mean + 1000 for m, v in elo.items()}


# ---- Bradley-Terry


def test_three_wins_to_one_by_hand():
    # two models: the MLE strength ratio is the win ratio 3/1, so the gap is 400 log10 3 = 190.849
    r = bradley_terry(THREE_TO_ONE)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3), abs=1e-8)
    assert r["A"] == pytest.approx(1000 + 200 * math.log10(3)) and r["A"] == pytest.approx(1095.4243, abs=1e-4)
    assert (r["A"] + r["B"]) / 2 == pytest.approx(1000.0, abs=1e-9)
    assert list(r) == ["A", "B"]  # first-appearance order


def test_prior_adds_virtual_ties_by_hand():
    # prior=1: one virtual tie = 1/2 win each way, so wins 3.5 : 1.5 and the gap is 400 log10(7/3) = 147.19
    r = bradley_terry(THREE_TO_ONE, prior=1.0)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3.5 / 1.5), abs=1e-8)
    # a far-apart pair (theta gap ln 401 = 6.0, reached in ~9 Newton steps from 0): 100 wins to 0 with
    # prior 0.5 -> 100.25 : 0.25, gap 400 log10(401) = 1041.3
    r = bradley_terry([("A", "B", "a")] * 100, prior=0.5)
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(401), abs=1e-6)


def test_ties_only_give_equal_ratings_and_ties_count_half():
    r = bradley_terry([("A", "B", "tie"), ("B", "A", "tie")])
    assert r == pytest.approx({"A": 1000.0, "B": 1000.0})
    # a win and a tie: A has 1.5 of 2, B 0.5, gap 400 log10 3
    r = bradley_terry([("A", "B", "a"), ("A", "B", "tie")])
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3), abs=1e-8)


def test_recovers_true_ratings_of_three_models():
    true = {"strong": 1150.0, "mid": 1000.0, "weak": 850.0}
    r = bradley_terry(_simulate(true, per_pair=3000, seed=1))
    assert sum(r.values()) / 3 == pytest.approx(1000.0, abs=1e-9)
    assert r["strong"] > r["mid"] > r["weak"]
    for name, rating in true.items():  # standard error ~ 5 points at 3000 games a pair
        assert r[name] == pytest.approx(rating, abs=20)


def test_matches_the_loop_reference_on_an_unbalanced_schedule():
    true = {"p": 1300.0, "q": 1100.0, "r": 1000.0, "s": 950.0, "t": 700.0}
    rng = np.random.default_rng(3)
    outcomes = [o for o in _simulate(true, per_pair=40, seed=2) if rng.random() < 0.6]
    outcomes += [("q", "r", "tie")] * 3
    fast, slow = bradley_terry(outcomes), _hunter_mm(outcomes)
    assert fast == pytest.approx(slow, abs=1e-6)


def test_swapping_sides_and_winner_changes_nothing():
    outcomes = _simulate({"x": 1100.0, "y": 1000.0, "z": 900.0}, per_pair=30, seed=4) + [("x", "z", "tie")]
    flip = {"a": "b", "b": "a", "tie": "tie"}
    swapped = [(b, a, flip[w]) for a, b, w in outcomes]
    assert bradley_terry(swapped) == pytest.approx(bradley_terry(outcomes), abs=1e-8)


def test_all_wins_needs_a_prior():
    all_wins = [("A", "B", "a")] * 5 + [("A", "C", "a")] * 5 + [("B", "C", "a"), ("C", "B", "a")]
    with pytest.raises(ValueError, match="prior") as err:
        bradley_terry(all_wins)
    assert "['A'] never lost" in str(err.value) and "fix: pass prior > 0 (virtual ties per pair)" in str(err.value)
    r = bradley_terry(all_wins, prior=0.5)
    assert all(math.isfinite(v) for v in r.values())
    assert r["A"] > r["B"] and r["A"] > r["C"] and r["B"] == pytest.approx(r["C"])


def test_a_chain_names_the_top_and_the_bottom():
    with pytest.raises(ValueError, match=r"\['A'\] never lost.*\['C'\] never beat"):
        bradley_terry([("A", "B", "a"), ("B", "C", "a")])


def test_models_that_never_met_cannot_be_rated_even_with_a_prior():
    with pytest.raises(ValueError, match=r"\['C', 'D'\] never met 'A'"):
        bradley_terry([("A", "B", "a"), ("B", "A", "a"), ("C", "D", "tie")], prior=1.0)


@pytest.mark.parametrize("outcomes, message", [
    ([], "outcomes is empty"),
    ([("A", "B", "a"), ("A", "B", "draw")], r"outcomes\[1\] winner='draw': must be 'a', 'b' or 'tie'"),
    ([("A", "A", "a")], r"outcomes\[0\] compares 'A' with itself"),
    ([("A", "B")], r"outcomes\[0\] = \('A', 'B'\): expected \(model_a, model_b, winner\)"),
])
def test_outcome_validation(outcomes, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry(outcomes)


def test_argument_validation():
    with pytest.raises(ValueError, match=r"prior=-1\.0 must be finite and >= 0"):
        bradley_terry(THREE_TO_ONE, prior=-1.0)
    with pytest.raises(ValueError, match="n_boot=0"):
        bradley_terry_intervals(THREE_TO_ONE, n_boot=0)
    with pytest.raises(ValueError, match="alpha=1.5"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError, match="groups has 1 labels for 4 outcomes"):
        bradley_terry_intervals(THREE_TO_ONE, groups=["p"])
    with pytest.raises(RuntimeError, match="max_iter=1"):
        bradley_terry(THREE_TO_ONE, max_iter=1)


def test_intervals_contain_the_estimate_and_narrow_with_more_data():
    base = _simulate({"x": 1100.0, "y": 1000.0, "z": 900.0}, per_pair=20, seed=12)
    small = bradley_terry_intervals(base, n_boot=300)
    large = bradley_terry_intervals(base * 10, n_boot=300)
    for outcomes, intervals in ((base, small), (base * 10, large)):
        point = bradley_terry(outcomes, prior=0.5)
        for name, (lo, hi) in intervals.items():
            assert lo < point[name] < hi
    for name in small:  # 10x the data: about 1/sqrt(10) the width
        assert large[name][1] - large[name][0] < 0.5 * (small[name][1] - small[name][0])


def test_intervals_by_group():
    base = _simulate({"x": 1100.0, "y": 1000.0}, per_pair=30, seed=6)
    # one label per outcome is the plain bootstrap, draw for draw
    assert bradley_terry_intervals(base, groups=list(range(30)), n_boot=200) == bradley_terry_intervals(base, n_boot=200)
    # each verdict copied 5 times under one prompt: plain resampling treats the copies as independent
    copies = [o for o in base for _ in range(5)]
    prompts = [k for k in range(30) for _ in range(5)]
    plain = bradley_terry_intervals(copies, n_boot=300)
    grouped = bradley_terry_intervals(copies, groups=prompts, n_boot=300)
    assert grouped["x"][1] - grouped["x"][0] > 1.5 * (plain["x"][1] - plain["x"][0])


def test_win_rate():
    assert win_rate(THREE_TO_ONE, "A") == 0.75 and win_rate(THREE_TO_ONE, "B") == 0.25
    assert win_rate([("A", "B", "tie"), ("C", "A", "a")], "A") == 0.25  # (1/2 + 0) / 2
    with pytest.raises(ValueError, match="model='Z' appears in no outcome"):
        win_rate(THREE_TO_ONE, "Z")


# ---- bootstrap_ci


def test_bootstrap_covers_the_true_mean():
    rng = np.random.default_rng(7)
    hits = 0
    for rep in range(200):
        lo, hi = bootstrap_ci(rng.random(100) < 0.3, n_boot=1000, seed=rep)
        hits += lo <= 0.3 <= hi
    assert 0.90 <= hits / 200 <= 0.99


def test_bootstrap_is_deterministic_and_brackets_the_statistic():
    values = np.random.default_rng(8).normal(size=500)
    ci = bootstrap_ci(values, seed=3)
    assert ci == bootstrap_ci(values, seed=3) and ci != bootstrap_ci(values, seed=4)
    assert ci[0] < values.mean() < ci[1]
    # the half-width is about 1.96 * sd / sqrt(n) = 1.96 / sqrt(500) = 0.088
    assert (ci[1] - ci[0]) / 2 == pytest.approx(1.96 * values.std() / math.sqrt(500), rel=0.15)


def test_bootstrap_one_value_and_constant_values():
    assert bootstrap_ci([2.5]) == (2.5, 2.5)
    assert bootstrap_ci([4.0] * 10, groups=[0, 1] * 5) == (4.0, 4.0)


def test_bootstrap_stat_with_and_without_axis_agree():
    values = np.random.default_rng(9).exponential(size=60)
    vectorised = bootstrap_ci(values, stat=np.median, n_boot=400)
    looped = bootstrap_ci(values, stat=lambda v: float(np.median(v)), n_boot=400)
    assert vectorised == pytest.approx(looped)


def test_cluster_bootstrap_is_wider_for_correlated_groups():
    rng = np.random.default_rng(10)
    effects = rng.normal(size=20)  # 20 prompts, 50 values each sharing the prompt's effect
    values = np.repeat(effects, 50) + 0.1 * rng.normal(size=1000)
    prompts = np.repeat(np.arange(20), 50)
    plain = bootstrap_ci(values)
    cluster = bootstrap_ci(values, groups=prompts)
    assert cluster[1] - cluster[0] > 3 * (plain[1] - plain[0])
    # the grouped mean fast path and the generic grouped path agree
    generic = bootstrap_ci(values, groups=prompts, stat=lambda v: float(np.mean(v)))
    assert generic == pytest.approx(cluster)


def test_bootstrap_validation():
    with pytest.raises(ValueError, match="values has shape"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="values has shape"):
        bootstrap_ci([[1.0, 2.0]])
    with pytest.raises(ValueError, match="groups has 2 labels for 3 values"):
        bootstrap_ci([1.0, 2.0, 3.0], groups=["a", "b"])


# ---- position bias


def test_position_bias_by_hand():
    assert position_bias([True] * 4) == {"n": 4, "first_position_rate": 1.0, "position_bias": 1.0, "ties": 0}
    assert position_bias([True, False] * 3) == {"n": 6, "first_position_rate": 0.5, "position_bias": 0.0, "ties": 0}
    # 3 of 4 decisive verdicts for the first slot: rate 0.75, bias 2 * |0.75 - 0.5| = 0.5; the 2 ties apart
    r = position_bias([True, None, True, False, None, True])
    assert r == {"n": 4, "first_position_rate": 0.75, "position_bias": 0.5, "ties": 2}
    assert position_bias([None, None]) == {"n": 0, "first_position_rate": None, "position_bias": None, "ties": 2}
    assert position_bias([np.True_, False])["first_position_rate"] == 0.5
    with pytest.raises(ValueError, match=r"first_won\[1\]='yes'"):
        position_bias([True, "yes"])
