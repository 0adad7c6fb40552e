"""Constitution: critique → revise chains, the judge prefers the best, pairs come out for DPO."""

from __future__ import annotations

import pytest

from ouro_ray.judges.constitution import ConstitutionJudge
from ouro_ray.judges.protocol import JudgeItem, JudgeScore, Target


class EchoWriter:
    """Critiques say 'too long'; a revision keeps the answer's first sentence and records each call."""

    def __init__(self):
        self.calls: list[str] = []

    def complete(self, prompts):
        self.calls += prompts
        out = []
        for p in prompts:
            if p.endswith("breaks the principle."):
                out.append("too long")
            else:
                answer = p.split("Answer: ")[1].split("\nCritique:")[0]
                out.append(answer.split(". ")[0].rstrip(".") + ".")
        return out


class ShortIsBetter:
    """Reward 1 for one sentence, else -1 (a stand-in for the rubric judge)."""

    name, rater = "short", "ai"

    def score(self, items):
        return [JudgeScore(i.prompt_id, i.candidate_id, "ai", "short", {"helpful": r}, r)
                for i in items for r in [1.0 if i.candidate.count(".") == 1 else -1.0]]


def _item(text: str, cid: str = "c0") -> JudgeItem:
    return JudgeItem("p1", cid, "What is the Osk tide?", text, Target((), "concise", (), "answer"))


def test_a_better_revision_becomes_a_pair_and_the_original_keeps_its_score():
    writer = EchoWriter()
    judge = ConstitutionJudge(writer, ShortIsBetter(), principles=("be brief",), critique_chain=2)
    result = judge.run([_item("The tide is high. Maybe it is low. Who knows."), _item("The tide is high.", "c1")])
    # Chain 0: original (3 sentences, -1) → 'The tide is high.' (+1) → same again (+1): best beats original by 2.
    assert result.chains[0] == ["The tide is high. Maybe it is low. Who knows.", "The tide is high.", "The tide is high."]
    assert [s.reward for s in result.scores] == [-1.0, 1.0]
    assert result.scores[0].notes == "too long" and result.scores[0].teacher == "constitution"
    assert result.pairs == [{"prompt_id": "p1", "prompt": "What is the Osk tide?", "chosen": "The tide is high.",
                             "rejected": "The tide is high. Maybe it is low. Who knows.", "source": "constitution"}]
    # 2 items × 2 passes × (critique + revise) = 8 writer prompts, the principle in each.
    assert len(writer.calls) == 8 and all("be brief" in c for c in writer.calls)


def test_principles_are_taken_in_turn():
    writer = EchoWriter()
    ConstitutionJudge(writer, ShortIsBetter(), principles=("A-rule", "B-rule"), critique_chain=3).run([_item("x.")])
    used = [c.split("\n")[0] for c in writer.calls[::2]]  # one critique prompt per pass
    assert used == ["Principle: A-rule", "Principle: B-rule", "Principle: A-rule"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least one principle"):
        ConstitutionJudge(EchoWriter(), ShortIsBetter(), principles=())
    with pytest.raises(ValueError, match="critique_chain = 0"):
        ConstitutionJudge(EchoWriter(), ShortIsBetter(), critique_chain=0)
