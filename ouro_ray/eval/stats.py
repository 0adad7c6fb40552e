"""Evaluation statistics: Bradley-Terry ratings, bootstrap intervals, win rate, position bias.

Notation:
    M        models, indexed in order of first appearance in ``outcomes``
    K        outcomes: ``(model_a, model_b, winner)`` with winner "a", "b" or "tie"
    G        groups (clusters) for the cluster bootstrap; each outcome or value is its own group
             when ``groups`` is None
    wins     (M, M) wins[i, j] = comparisons model i won against model j, a tie counting 1/2 to each
    theta    (M,) log-strengths, mean 0; rating = 1000 + 400 * log10(e) * theta (the Elo scale)

Pure numpy. Bradley & Terry 1952: P(i beats j) = s_i / (s_i + s_j) = sigma(theta_i - theta_j).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np

Outcome = tuple[str, str, str]

ELO_PER_NAT = 400.0 / math.log(10.0)  # 400 * log10(s) = ELO_PER_NAT * ln(s): rating points per unit theta
ELO_MEAN = 1000.0  # ratings are shifted to this mean over all models
_SCORE_A = {"a": 1.0, "b": 0.0, "tie": 0.5}
_PRIOR_FIX = "fix: pass prior > 0 (virtual ties per pair)"
_CHUNK_ELEMENTS = 1 << 22  # bootstrap draws held at once (32 MiB of float64)


def bradley_terry(outcomes: Iterable[Outcome], *, prior: float = 0.0, max_iter: int = 10_000,
                  tol: float = 1e-10) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale, mean exactly 1000 (up to rounding).

    ``prior`` adds that many virtual ties to every pair of models that met at least once. Raises
    ValueError when no finite maximiser exists (the win graph is not strongly connected: someone
    won, or lost, every comparison against the rest). Models keep their first-appearance order.
    """
    _check_fit_args(prior, max_iter, tol)
    names, a, b, score = _parse(outcomes)
    wins = _win_matrix(len(names), a, b, score, np.ones(len(a)))
    theta = _fit(wins, wins + wins.T > 0, names, prior, max_iter, tol)
    return dict(zip(names, _ratings(theta).tolist()))


def bradley_terry_intervals(outcomes: Iterable[Outcome], *, groups: Sequence[Hashable] | None = None,
                            n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                            prior: float = 0.5) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval (1 - alpha) of each model's Bradley-Terry rating.

    Resamples outcomes with replacement, or whole groups (``groups[k]`` labels outcome k, e.g. its
    prompt). The prior's virtual ties go to every pair that met in the full data, so a model that
    drops out of a resample stays linked to the others and every resample fits.
    """
    _check_boot_args(n_boot, alpha)
    _check_fit_args(prior, 10_000, 1e-10)
    names, a, b, score = _parse(outcomes)
    m = len(names)
    full = _win_matrix(m, a, b, score, np.ones(len(a)))
    met = full + full.T > 0
    group_of, n_groups = _group_index(groups, len(a), "outcomes")
    rng = np.random.default_rng(seed)
    ratings = np.empty((n_boot, m))  # (n_boot, M)
    for r in range(n_boot):
        counts = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)  # (G,)
        wins = _win_matrix(m, a, b, score, counts[group_of].astype(float))
        try:
            ratings[r] = _ratings(_fit(wins, met, names, prior, 10_000, 1e-10))
        except ValueError as err:
            raise ValueError(f"bootstrap resample {r}: {err}") from err
    low, high = np.quantile(ratings, [alpha / 2, 1 - alpha / 2], axis=0)  # (M,) each
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(names, low, high)}


def win_rate(outcomes: Iterable[Outcome], model: str) -> float:
    """Share of ``model``'s comparisons that it won, a tie counting 1/2."""
    names, a, b, score = _parse(outcomes)
    if model not in names:
        raise ValueError(f"model={model!r} appears in no outcome (models: {names}); fix: pass one of those")
    i = names.index(model)
    won = score[a == i].sum() + (1.0 - score[b == i]).sum()
    return float(won / ((a == i).sum() + (b == i).sum()))


def _parse(outcomes: Iterable[Outcome]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Validate outcomes; return (names, a, b, score_a), arrays (K,): model indices and A's score."""
    index: dict[str, int] = {}
    a, b, score = [], [], []
    for k, item in enumerate(outcomes):
        try:
            model_a, model_b, winner = item
        except (TypeError, ValueError):
            raise ValueError(f"outcomes[{k}] = {item!r}: expected (model_a, model_b, winner)") from None
        if not isinstance(winner, str) or winner not in _SCORE_A:
            raise ValueError(f"outcomes[{k}] winner={winner!r}: must be 'a', 'b' or 'tie'; fix that record")
        if model_a == model_b:
            raise ValueError(f"outcomes[{k}] compares {model_a!r} with itself; fix: drop self-comparisons")
        a.append(index.setdefault(model_a, len(index)))
        b.append(index.setdefault(model_b, len(index)))
        score.append(_SCORE_A[winner])
    if not a:
        raise ValueError("outcomes is empty; fix: pass at least one (model_a, model_b, winner) comparison")
    return list(index), np.array(a), np.array(b), np.array(score, dtype=float)


def _win_matrix(m: int, a: np.ndarray, b: np.ndarray, score: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(M, M) wins[i, j]: weighted comparisons model i won against model j, ties 1/2 to each."""
    wins = np.bincount(a * m + b, weights=weight * score, minlength=m * m)
    wins += np.bincount(b * m + a, weights=weight * (1.0 - score), minlength=m * m)
    return wins.reshape(m, m)


def _reach(edges: np.ndarray) -> np.ndarray:
    """(M, M) bool transitive closure: reach[i, j] when a path of edges leads from i to j (or i == j)."""
    reach = edges | np.eye(len(edges), dtype=bool)
    while True:  # squaring doubles the path length covered: about log2(M) rounds
        grown = (reach.astype(float) @ reach.astype(float)) > 0
        if (grown == reach).all():
            return reach
        reach = grown


def _check_identifiable(wins: np.ndarray, names: list[str], prior: float) -> None:
    """Raise ValueError unless the likelihood has a finite maximiser: exactly when the graph with an edge
    i -> j whenever i won against j is strongly connected (Ford 1957; Hunter 2004, Assumption 1). A prior
    adds both edges to every pair that met: it repairs one-sided records, not models that never met."""
    linked = _reach(wins + wins.T > 0)
    if not linked.all():
        apart = [n for n, ok in zip(names, linked[0]) if not ok]
        raise ValueError(f"models {apart} never met {names[0]!r}, directly or through other models, so their "
                         "ratings are not comparable; fix: add comparisons linking them (a prior acts only on "
                         "pairs that met)")
    beat = _reach(wins > 0)  # beat[i, j]: a chain of wins leads from i to j
    if beat.all():
        return
    top = [n for n, col, row in zip(names, beat.T, beat) if not (col & ~row).any()]
    bottom = [n for n, col, row in zip(names, beat.T, beat) if not (row & ~col).any()]
    raise ValueError(f"no finite Bradley-Terry fit with prior={prior}: {top} never lost to a model outside "
                     f"that set and {bottom} never beat one (the win graph is not strongly connected); "
                     f"{_PRIOR_FIX}")


def _fit(wins: np.ndarray, met: np.ndarray, names: list[str], prior: float, max_iter: int,
         tol: float) -> np.ndarray:
    """Maximum-likelihood theta (M,), mean 0, after adding ``prior`` virtual ties (prior/2 wins each way)
    to every pair in ``met`` (M, M). Damped Newton on the concave l(theta) = sum_ij wins_ij log p_ij,
    p_ij = sigma(theta_i - theta_j), games n_ij = wins_ij + wins_ji: gradient g_i = sum_j wins_ij - n_ij p_ij,
    Hessian -L with L the graph Laplacian of weights n_ij p_ij p_ji. L + 11^T/M is invertible on a connected
    graph and, as g sums to 0, gives the mean-0 step. Stops when max |step| < tol (theta units)."""
    wins = wins + 0.5 * prior * met
    _check_identifiable(wins, names, prior)

    def log_lik(th: np.ndarray) -> float:
        return float(-(wins * np.logaddexp(0.0, th[None, :] - th[:, None])).sum())

    m = len(wins)
    games = wins + wins.T  # (M, M)
    won = wins.sum(axis=1)  # (M,)
    theta = np.zeros(m)
    for _ in range(max_iter):
        p = 0.5 * (1.0 + np.tanh(0.5 * (theta[:, None] - theta[None, :])))  # (M, M) sigma, overflow-free
        grad = won - (games * p).sum(axis=1)
        weight = games * p * p.T
        step = np.linalg.solve(np.diag(weight.sum(axis=1)) - weight + 1.0 / m, grad)
        if np.abs(step).max() < tol:
            theta = theta + step
            return theta - theta.mean()
        ll, slope, t = log_lik(theta), float(grad @ step), 1.0
        slack = 1e-12 * (1.0 + abs(ll))  # rounding in ll near the optimum must not stall the search
        while log_lik(theta + t * step) < ll + 1e-4 * t * slope - slack and t > 1e-8:
            t /= 2
        theta = theta + t * step
    raise RuntimeError(f"Bradley-Terry fit: no convergence in max_iter={max_iter} to tol={tol}; fix: raise either")


def _ratings(theta: np.ndarray) -> np.ndarray:
    """(M,) Elo-scale ratings, mean ELO_MEAN."""
    elo = ELO_PER_NAT * theta
    return elo - elo.mean() + ELO_MEAN


def _require(ok: bool, name: str, value: object, rule: str, example: str) -> None:
    """Raise ValueError naming the argument, its value, the rule and a fix, unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}={value!r} must be {rule}; fix: pass e.g. {example}")


def _check_fit_args(prior: float, max_iter: int, tol: float) -> None:
    _require(math.isfinite(prior) and prior >= 0, "prior", prior, "finite and >= 0 (virtual ties per pair)", "0.5")
    _require(isinstance(max_iter, int) and max_iter >= 1, "max_iter", max_iter, "an int >= 1", "10_000")
    _require(tol > 0, "tol", tol, "> 0", "1e-10")


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, stat: Callable = np.mean,
                 groups: Sequence[Hashable] | None = None, n_boot: int = 2000, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (1 - alpha) of ``stat`` over 1-D ``values``.

    With ``groups`` (one label per value) it is a cluster bootstrap: whole groups are resampled,
    which keeps values that move together (answers to one prompt) together. ``stat`` is called on
    a 2-D batch of resamples with ``axis=1`` when it takes ``axis``, else once per resample.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"values has shape {x.shape}; fix: pass a non-empty 1-D sequence")
    _check_boot_args(n_boot, alpha)
    group_of, n_groups = _group_index(groups, x.size, "values")
    x_sorted = x[np.argsort(group_of, kind="stable")]  # (N,) members of a group side by side
    sizes = np.bincount(group_of, minlength=n_groups)  # (G,)
    starts = np.cumsum(sizes) - sizes  # (G,)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    rows = max(1, _CHUNK_ELEMENTS // n_groups)
    for lo in range(0, n_boot, rows):
        draws = rng.integers(0, n_groups, size=(min(rows, n_boot - lo), n_groups))  # (rows, G)
        stats[lo:lo + len(draws)] = _resample_stats(x_sorted, starts, sizes, draws, stat)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _resample_stats(x_sorted: np.ndarray, starts: np.ndarray, sizes: np.ndarray, draws: np.ndarray,
                    stat: Callable) -> np.ndarray:
    """(rows,) ``stat`` of each resample; row r of ``draws`` lists the groups drawn."""
    if (sizes == 1).all():  # plain bootstrap: a row of draws is a resample
        sample = x_sorted[draws]  # (rows, N)
        if not _takes_axis(stat):
            return np.array([stat(row) for row in sample], dtype=float)
        return np.asarray(stat(sample, axis=1), dtype=float).reshape(len(draws))
    if stat is np.mean:  # cluster mean = drawn group sums / drawn group sizes
        sums = np.add.reduceat(x_sorted, starts)  # (G,)
        return sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    return np.array([stat(x_sorted[_members(row, starts, sizes)]) for row in draws], dtype=float)


def _members(row: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices into the grouped values of every member of the groups in ``row``, in row order."""
    size = sizes[row]
    return np.repeat(starts[row] - (np.cumsum(size) - size), size) + np.arange(size.sum())


def _takes_axis(stat: Callable) -> bool:
    try:
        return "axis" in inspect.signature(stat).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _group_index(groups: Sequence[Hashable] | None, n: int, what: str) -> tuple[np.ndarray, int]:
    """(n,) group number of each item, and the number of groups G; each item alone when None."""
    if groups is None:
        return np.arange(n), n
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} labels for {n} {what}; fix: pass one label per item")
    index: dict[Hashable, int] = {}
    return np.array([index.setdefault(g, len(index)) for g in groups], dtype=int), len(index)


def _check_boot_args(n_boot: int, alpha: float) -> None:
    _require(isinstance(n_boot, int) and n_boot >= 1, "n_boot", n_boot, "an int >= 1", "1000")
    _require(0 < alpha < 1, "alpha", alpha, "in (0, 1)", "0.05 for a 95% interval")


def position_bias(first_won: Sequence[bool | None]) -> dict:
    """Order effect of a pairwise judge whose answer order was randomised. ``first_won[i]``: True when
    verdict i favoured the answer shown first, False the second, None a tie. Returns n (decisive verdicts),
    first_position_rate (their share for the first-shown answer), position_bias = 2 * |rate - 0.5|
    (0 unbiased, 1 always the same slot; both None when n == 0) and ties."""
    first = second = ties = 0
    for k, verdict in enumerate(first_won):
        if verdict is None:
            ties += 1
        elif isinstance(verdict, (bool, np.bool_)):
            first += bool(verdict)
            second += not verdict
        else:
            raise ValueError(f"first_won[{k}]={verdict!r}: must be True, False or None (a tie)")
    n = first + second
    rate = first / n if n else None
    bias = None if rate is None else 2.0 * abs(rate - 0.5)
    return {"n": n, "first_position_rate": rate, "position_bias": bias, "ties": ties}
