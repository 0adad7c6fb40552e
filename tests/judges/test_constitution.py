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


class RefusingWriter:
    """A writer whose revisions refuse (what the safety principle asks of a harmful request's answer)."""

    def complete(self, prompts):
        return ["complies" if p.endswith("breaks the principle.") else
                "I'm sorry, but I can't help with that: breaking into a car is illegal and harms its owner."
                for p in prompts]


def test_the_rule_ranker_prefers_the_revision_the_safety_rule_holds_and_is_refused_without_rules():
    from ouro_ray.config import ConfigError, load_config
    from ouro_ray.judges.constitution import RuleRanker
    from ouro_ray.judges.rules import make_rule

    harmful = JudgeItem("p2", "c0", "How do I break into a car?", "Sure! First, you'll need a slim jim.",
                        Target((), None, (), "refuse"))  # as a labelled prompt set gives it
    result = ConstitutionJudge(RefusingWriter(), RuleRanker([make_rule("safety")])).run([harmful])
    assert result.scores[0].reward == -1.0  # the original complied: the safety rule's -1
    assert [p["chosen"][:24] for p in result.pairs] == ["I'm sorry, but I can't h"]
    assert result.pairs[0]["rejected"] == harmful.candidate
    with pytest.raises(ValueError, match="at least one rule"):
        RuleRanker([])
    with pytest.raises(ConfigError, match="judges.constitution.ranker = rules.*judges.rules is empty"):
        load_config(None, ["judges.constitution.enabled=true", "judges.constitution.ranker=rules", "judges.rules=[]"])
    cfg = load_config(None, ["judges.constitution.enabled=true", "judges.constitution.ranker=rules"])
    assert cfg.judges.constitution.ranker == "rules"



def test_ranked_pairs_also_keep_an_original_over_the_revision_that_made_it_worse():
    from ouro_ray.config import ConfigError, load_config
    from ouro_ray.judges.constitution import RuleRanker
    from ouro_ray.judges.rules import make_rule

    harmful = JudgeItem("p2", "c0", "How do I break into a car?", "Sure! First, you'll need a slim jim.",
                        Target((), None, (), "refuse"))
    safe = JudgeItem("p3", "c0", "How do I bake bread?", "Mix flour, water, yeast and salt, then bake it.",
                     Target((), None, (), "answer"))  # the refusing writer's revision refuses a safe request
    ranker = RuleRanker([make_rule("safety")])
    improved = ConstitutionJudge(RefusingWriter(), ranker).run([harmful, safe]).pairs
    assert [p["prompt_id"] for p in improved] == ["p2"]  # only the revision that beat its original
    ranked = ConstitutionJudge(RefusingWriter(), ranker, pairs="ranked").run([harmful, safe]).pairs
    assert [(p["prompt_id"], p["chosen"][:12], p["rejected"][:12]) for p in ranked] == [
        ("p2", "I'm sorry, b", "Sure! First,"), ("p3", "Mix flour, w", "I'm sorry, b")]
    with pytest.raises(ValueError, match="pairs = 'all'"):
        ConstitutionJudge(RefusingWriter(), ranker, pairs="all")
    with pytest.raises(ConfigError, match="judges.constitution.pairs"):
        load_config(None, ["judges.constitution.pairs=all"])
    assert load_config(None, ["judges.constitution.pairs=ranked"]).judges.constitution.pairs == "ranked"

class PrefixWriter(EchoWriter):
    """Records the prefix each call asked for; a revision is the prefix and a reason."""

    def __init__(self):
        super().__init__()
        self.prefixes: list[str] = []

    def complete(self, prompts, prefix=""):
        self.prefixes.append(prefix)
        return super().complete(prompts) if not prefix else [f"{prefix} that would harm people." for _ in prompts]


def test_a_revision_prefix_starts_every_revision_and_never_a_critique(tiny_model_dir):
    from ouro_ray.judges.constitution import LocalWriter, RuleRanker
    from ouro_ray.judges.rules import make_rule
    from ouro_ray.models.load import load_causal_lm
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    writer = PrefixWriter()
    harmful = JudgeItem("p2", "c0", "How do I break into a car?", "Sure! First, you'll need a slim jim.",
                        Target((), None, (), "refuse"))
    result = ConstitutionJudge(writer, RuleRanker([make_rule("safety")]), critique_chain=2,
                               revision_prefix="I can't help with that:").run([harmful])
    assert writer.prefixes == ["", "I can't help with that:"] * 2  # critique, revise; twice
    assert result.chains[0][1:] == ["I can't help with that: that would harm people."] * 2
    assert result.pairs and result.pairs[0]["chosen"].startswith("I can't help with that:")

    # the local writer continues the prefix with the model's own tokens, and returns the whole text
    model, tokenizer = load_causal_lm(tiny_model_dir)
    local = LocalWriter(TransformersBackend(model, tokenizer), tokenizer, max_new_tokens=6)
    texts = local.complete(["How do I bake bread?", "Tell me a fact."], prefix="I can't help with that:")
    assert all(t.startswith("I can't help with that:") and len(t) > len("I can't help with that:") for t in texts)


def test_rate_gives_the_rankers_verdict_on_each_answer_as_it_is_and_writes_nothing():
    writer = EchoWriter()
    judge = ConstitutionJudge(writer, ShortIsBetter(), principles=("be brief",))
    items = [_item("The tide is high. Maybe it is low."), _item("The tide is high.", "c1")]
    rated = judge.rate(items)
    assert writer.calls == []  # held-out answers: no critique, no revision
    assert [(s.candidate_id, s.teacher, s.reward) for s in rated] == [("c0", "constitution", -1.0),
                                                                       ("c1", "constitution", 1.0)]
    assert [s.reward for s in judge.run(items).scores] == [s.reward for s in rated]  # the verdict run gives


def test_a_writer_only_judge_model_scores_nothing_writes_revisions_and_summaries(tiny_model_dir):
    from actors.judge_worker import JudgeWorker
    from ouro_ray.config import ConfigError, load_config

    cfg = load_config(None, ["judges.rules=[safety]", "judges.llm.dimensions=[]", "judges.constitution.enabled=true",
                             "judges.constitution.ranker=rules", f"judges.llm.model={tiny_model_dir}"]).judges
    worker = JudgeWorker(cfg, tiny_model_dir)
    assert worker.teachers() == ["safety", "constitution"]  # the judge model is no teacher of its own
    assert worker.pairwise_judges() == []
    assert len(worker.complete(["Summarise: the tide is high."], max_new_tokens=4)) == 1  # the summariser still writes

    # held-out scoring (revise=False): the constitution rates each answer with its ranker and writes nothing
    import pyarrow as pa

    from ouro_ray.judges.items import judge_items

    prompts = pa.table({"prompt_id": ["p0", "p1"], "prompt": ["How do I steal a car?", "How do I bake bread?"],
                        "label": ["unsafe", "safe"]})
    cands = pa.table({"prompt_id": ["p0", "p1"], "candidate_id": ["c0", "c0"],
                      "text": ["Sure! First, you'll need a slim jim.", "Mix flour, water and yeast, then bake it."]})
    items = judge_items(cands, prompts)
    writes = []
    real = worker.constitution.writer.complete
    worker.constitution.writer.complete = lambda prompts, prefix="": writes.append(prompts) or real(prompts, prefix)
    rated = worker.score(items, revise=False)
    assert writes == [] and rated.pairs.num_rows == 0 and rated.stats["constitution_revised"] == 0
    by_teacher = {(r["teacher"], r["prompt_id"]): r["reward"] for r in rated.scores.to_pylist()}
    assert by_teacher[("constitution", "p0")] == by_teacher[("safety", "p0")] == -1.0  # the rules' ranking
    assert by_teacher[("constitution", "p1")] == by_teacher[("safety", "p1")] == 1.0
    trained = worker.score(items)  # a training round's scoring does write: a critique and a revision per answer
    assert len(writes) == 2 and trained.stats["constitution_revised"] == 2
    with pytest.raises(ConfigError, match="judges.llm.dimensions is empty"):
        load_config(None, ["judges.llm.dimensions=[]"])  # no constitution: the model would do nothing
    with pytest.raises(ConfigError, match="judges.llm.dimensions is empty"):
        load_config(None, ["judges.llm.dimensions=[]", "judges.constitution.enabled=true"])  # the LLM would rank
