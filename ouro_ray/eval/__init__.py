"""The evaluator pack: win rate and ELO, coherence under paraphrase, persona, safety, reward-hack stress.

``bradley_terry(outcomes) -> {model: rating}`` is the ELO fit every pairwise figure uses.
"""

from ouro_ray.eval.stats import bootstrap_ci, bradley_terry, bradley_terry_intervals, position_bias, win_rate

__all__ = ["bootstrap_ci", "bradley_terry", "bradley_terry_intervals", "position_bias", "win_rate"]
