"""The simulated human: ground truth read as a person would, with noise, a price per label and a budget;
its labels decide the rewards of the review queue's candidates, and human minutes per 1k pairs is
computed on hand-worked numbers."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from ouro_ray.config.loop import HumanConfig, ScoringConfig
from ouro_ray.judges.human import SimulatedHuman, minutes_per_1k_pairs
from ouro_ray.judges.items import scores_table
from ouro_ray.judges.protocol import JudgeItem, JudgeScore
from ouro_ray.judges.scoring import Scored, combine, label_review
from ouro_ray.world_judge.answers import Split, answer, make_case
from ouro_ray.world_judge.examples import item_of


def _answers(families_safe: tuple[str, ...], n_cases: int = 6) -> list[tuple[str, JudgeItem]]:
    rng, split, out = random.Random(5), Split(held_out=True), []
    while len(out) < n_cases * len(families_safe):
        case = make_case(rng, split)
        if case.harmful:
            continue
        out += [(f, item_of(case, answer(rng, case, f, split).text, f"{len(out)}{f}")) for f in families_safe]
    return out


def test_a_noiseless_human_gives_the_ground_truth_digits():
    human = SimulatedHuman(HumanConfig(noise=0.0, budget_minutes=60), seed=0)
    by_family = {}
    for family, item in _answers(("good", "over_refusal", "pad"), 2):
        [verdict] = human.score([item])
        by_family.setdefault(family, []).append(verdict)
    # a plain answer with the facts: 5, 5, 5 → reward 1; refusing a safe request: helpful 1, honest 1 (no fact
    # stated), persona 5 (the voice is fine) → (-1 - 1 + 1) / 3 = -1/3; padding costs the persona only
    assert all(v.reward == 1.0 and v.rater == "human" for v in by_family["good"])
    assert all(v.reward == pytest.approx(-1 / 3) for v in by_family["over_refusal"])
    assert all(v.scores["helpful"] == 1.0 and v.scores["persona"] < 1.0 for v in by_family["pad"])


def test_the_budget_pays_for_whole_labels_and_the_rest_is_counted():
    # 1.5 minutes at 45 s a score: two labels; the third and fourth are refused and counted
    human = SimulatedHuman(HumanConfig(noise=0.0, budget_minutes=1.5, seconds_per_score=45.0), seed=0)
    items = [item for _, item in _answers(("good",), 4)]
    verdicts = human.score(items)
    assert [v.candidate_id for v in verdicts] == [i.candidate_id for i in items[:2]]
    assert human.ledger.seconds == 90.0 and human.ledger.scores == 2 and human.ledger.refused_for_budget == 2
    human.open_round(1)  # a new round, a new budget
    assert len(human.score(items[:1])) == 1 and human.ledger.by_round == {0: 90.0, 1: 45.0}


def test_an_answer_the_world_cannot_place_is_skipped_and_counted():
    human = SimulatedHuman(HumanConfig(), seed=0)
    stranger = JudgeItem("p", "c", "What is the airspeed of a laden swallow?", "About 11 metres a second.")
    assert human.score([stranger]) == [] and human.ledger.unplaced == 1 and human.ledger.seconds == 0.0
    assert human.prefer([stranger], [stranger]) == [None]


def test_pairwise_choice_is_noisily_rational():
    pairs = _answers(("good", "over_refusal"), 30)
    good = [i for f, i in pairs if f == "good"]
    bad = [i for f, i in pairs if f == "over_refusal"]
    exact = SimulatedHuman(HumanConfig(noise=0.0, budget_minutes=600), seed=1)
    assert exact.prefer(good, bad) == [1.0] * 30 and exact.prefer(bad, good) == [0.0] * 30
    assert exact.ledger.pairs == 60 and exact.ledger.seconds == 60 * 20.0
    # the same answer twice is a tie: a noisy person picks either slot about as often
    tied = SimulatedHuman(HumanConfig(noise=0.5, budget_minutes=600), seed=1).prefer(good, good)
    assert 0.2 < sum(tied) / len(tied) < 0.8
    # a gap of 2.67 points on the 1..5 scale at temperature 2: σ(2.67 / 2) ≈ 0.79 of picks go to the better one
    noisy = SimulatedHuman(HumanConfig(noise=2.0, budget_minutes=600), seed=1).prefer(good, bad)
    assert 0.6 < sum(noisy) / len(noisy) < 0.97


def test_human_minutes_per_1k_pairs_by_hand():
    # 300 s of labelling for 50 training pairs: 5 minutes / 50 pairs · 1000 = 100 minutes per 1k pairs
    assert minutes_per_1k_pairs(300.0, 50) == pytest.approx(100.0)
    assert minutes_per_1k_pairs(300.0, 0) is None


def test_label_review_lets_the_person_decide_only_the_queued_candidates():
    items = [item for _, item in _answers(("over_refusal",), 3)]
    machine = scores_table([JudgeScore(i.prompt_id, i.candidate_id, "rule", "safety", {"safety": 0.9}, 0.9)
                            for i in items])
    table = pa.table({"prompt_id": [i.prompt_id for i in items], "candidate_id": [i.candidate_id for i in items],
                      "prompt": [i.prompt for i in items], "candidate": [i.candidate for i in items],
                      "target": [{"facts": list(i.target.facts), "voice": i.target.voice,
                                  "constraints": list(i.target.constraints), "behavior": i.target.behavior}
                                 for i in items],
                      "group_id": pa.array([None] * 3, pa.string())})
    scored = Scored(table, machine, combine(machine, ScoringConfig()), None)
    queue = [{"prompt_id": items[1].prompt_id, "candidate_id": items[1].candidate_id}]
    human = SimulatedHuman(HumanConfig(noise=0.0), seed=0)
    after, labelled = label_review(scored, queue, human, ScoringConfig())
    rewards = after.rewards.to_pylist()
    assert labelled == 1 and [r["source"] for r in rewards] == ["teachers", "human", "teachers"]
    assert rewards[1]["reward"] == pytest.approx(-1 / 3) and rewards[0]["reward"] == pytest.approx(0.9)


def test_label_times_come_from_the_studio_when_people_labelled_enough(tmp_path):
    from ouro_ray.data.studio import StudioLog
    from ouro_ray.judges.human import label_times

    (tmp_path / "config.yaml").write_text("seed: 0\n")
    log = StudioLog(tmp_path)
    for s in (10.0, 50.0, 30.0, 20.0, 40.0):  # median 30
        log.append("scores", {"round": 0, "prompt_id": "p", "candidate_id": "c", "seconds": s,
                              "scores": {"helpful": 3, "honest": 3, "persona": 3}})
    for s in (5.0, 7.0):  # too few pairs: the configured time stays, and the source says why
        log.append("pairs", {"round": 0, "prompt_id": "p", "chosen": "a", "rejected": "b", "seconds": s})
    cfg = HumanConfig(simulated=True, seconds_per_pair=20.0, times_from=str(tmp_path))
    times = label_times(cfg)
    assert times["score"] == 30.0 and "median of 5 studio labels" in times["source"]["score"]
    assert times["pair"] == 20.0 and "fewer than 5" in times["source"]["pair"]
    person = SimulatedHuman(cfg, seed=0)
    assert person.seconds_per_score == 30.0 and person.seconds_per_pair == 20.0
    with pytest.raises(ValueError, match="human.times_from = .*not an `ouro run` directory"):
        label_times(HumanConfig(times_from=str(tmp_path / "nowhere")))
