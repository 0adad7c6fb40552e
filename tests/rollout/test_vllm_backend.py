"""The vLLM backend: the engine tests need vllm and a CUDA GPU and are skipped elsewhere, with the reason.

On a GPU machine they build the small tiny world (tests/_tiny.py, as tests/world uses), start one engine for the
module, and check vLLM against transformers on the same weights: greedy tokens, raw (untempered)
logprobs, beam candidates, and that pushed weights change what is generated. The helpers that do
not touch vLLM, and the "unavailable here" path, run everywhere.
"""

from __future__ import annotations

import copy
import gc
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _tiny import SEED, small_world_config

from ouro_ray.config.roles import SamplingConfig
from ouro_ray.rollout.protocol import GenerationBackend
from ouro_ray.rollout.vllm_backend import (
    VLLMBackend,
    WeightSyncExtension,
    beam_tokens_and_logprobs,
    pack_named_tensors,
    sampled_logprobs,
    sampling_kwargs,
    unpack_named_tensors,
    vllm_available,
    weight_manifest,
)

REQUESTS = ["Tell me about the lighthouse.", "What do you know about bees?", "How do tides work?"]
LOGPROB_ATOL = 2e-2  # float32 on both sides; GPU kernels may use TF32 matmuls


# -- everywhere ----------------------------------------------------------------------------------

def test_unavailable_here_says_why_and_construction_fails_clearly():
    usable, reason = vllm_available()
    if usable:
        pytest.skip(f"vLLM is usable here ({reason}); this test covers machines without it")
    assert "vllm" in reason.lower() or "cuda" in reason.lower()
    with pytest.raises((ImportError, RuntimeError), match="(?i)vllm|cuda") as info:
        VLLMBackend("/nonexistent/model")
    assert "fix:" in str(info.value)


def test_sampling_kwargs_map_the_config():
    kw = sampling_kwargs(SamplingConfig(n=4, temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=12), 123)
    assert kw == dict(n=1, temperature=0.7, top_p=0.9, top_k=-1, max_tokens=12, seed=123, logprobs=0,
                      skip_special_tokens=True)
    assert sampling_kwargs(SamplingConfig(top_k=5, temperature=0.0), 1)["top_k"] == 5


def _steps(pairs):
    """vLLM-shaped per-step logprobs: [{token_id: Logprob-like}]."""
    return [{tok: SimpleNamespace(logprob=lp), tok + 1: SimpleNamespace(logprob=-9.0)} for tok, lp in pairs]


def test_sampled_logprobs_read_the_chosen_token_and_refuse_gaps():
    ids = np.array([5, 7], dtype=np.int32)
    out = sampled_logprobs(ids, _steps([(5, -0.5), (7, -1.25)]))
    assert out.dtype == np.float32 and out.tolist() == [-0.5, -1.25]
    with pytest.raises(RuntimeError, match="2 tokens"):
        sampled_logprobs(ids, None)
    with pytest.raises(RuntimeError, match="lack the sampled token 7"):
        sampled_logprobs(ids, _steps([(5, -0.5), (3, -1.0)]))


def test_beam_tokens_drop_the_prompt_and_check_it():
    ids, lps = beam_tokens_and_logprobs([1, 2], [1, 2, 9, 4], _steps([(9, -0.1), (4, -0.2)]))
    assert ids.dtype == np.int32 and ids.tolist() == [9, 4]
    assert np.allclose(lps, [-0.1, -0.2])
    with pytest.raises(RuntimeError, match="start with the prompt"):
        beam_tokens_and_logprobs([1, 2], [9, 4], _steps([(9, -0.1), (4, -0.2)]))


def test_packed_tensors_round_trip_with_bfloat16_and_tied_weights():
    shared = torch.randn(3, 2)
    pairs = [("embed.weight", shared), ("lm_head.weight", shared), ("norm.weight", torch.ones(2, dtype=torch.bfloat16))]
    back = unpack_named_tensors(pack_named_tensors(pairs))
    assert [n for n, _ in back] == [n for n, _ in pairs]
    for (_, a), (_, b) in zip(pairs, back):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_weight_manifest_lists_parameters_once_in_order():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 2, bias=False))
    assert weight_manifest(model) == [("0.weight", "float32", (3, 2)), ("0.bias", "float32", (3,)),
                                      ("1.weight", "float32", (2, 3))]


def test_extension_methods_cannot_clash_with_vllm_worker_methods():
    # vLLM refuses an extension attribute its worker already has (recent workers define update_weights).
    public = [name for name in vars(WeightSyncExtension) if not name.startswith("_")]
    assert public and all(name.startswith("ouro_") for name in public)


# -- GPU with vllm -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pytest.importorskip("vllm", reason="vllm is not installed: its wheels are CUDA builds (install the gpu "
                                       "extra on a GPU machine to run the engine tests)")
    if not torch.cuda.is_available():
        pytest.skip(f"vLLM needs a CUDA GPU; torch {torch.__version__} sees none")
    from ouro_ray.world import build_tiny_world

    return build_tiny_world(small_world_config(tmp_path_factory.mktemp("world-cache")), SEED, progress=lambda _: None)


@pytest.fixture(scope="module")
def hf(world):
    """The same checkpoint in transformers (CPU, float32) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(world.model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(world.model_dir)


@pytest.fixture(scope="module")
def prompts(hf):
    _, tok = hf
    texts = [tok.apply_chat_template([{"role": "user", "content": r}], tokenize=False, add_generation_prompt=True)
             for r in REQUESTS]
    return tok(texts, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def backend(world):
    engine = VLLMBackend(str(world.model_dir), dtype="float32", gpu_memory_utilization=0.3, max_model_len=256,
                         enforce_eager=True, seed=0)
    yield engine
    del engine
    gc.collect()
    torch.cuda.empty_cache()


@torch.no_grad()
def hf_logprobs(model, prompt, tokens) -> np.ndarray:
    """(T,) raw log p(token | prompt, earlier tokens) by one teacher-forced forward pass."""
    ids = torch.tensor([list(prompt) + list(tokens)])
    logits = model(ids).logits[0, len(prompt) - 1:-1].float()  # (T, V): position t predicts token t
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None])[:, 0].numpy()


@torch.no_grad()
def hf_greedy(model, tok, prompt, max_new_tokens) -> list[int]:
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    tokens = out[0, len(prompt):].tolist()
    return tokens[:tokens.index(tok.eos_token_id) + 1] if tok.eos_token_id in tokens else tokens


@torch.no_grad()
def assert_same_greedy(model, prompt, ours, theirs):
    """Equal tokens, except that a first divergence is allowed at a near-tie of the top two logits."""
    if ours == theirs:
        return
    k = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    logits = model(torch.tensor([list(prompt) + theirs[:k]])).logits[0, -1]
    top2 = torch.topk(logits, 2).values
    assert (top2[0] - top2[1]).item() < 1e-3, f"greedy diverges at token {k}: vllm {ours} vs transformers {theirs}"


def test_backend_satisfies_the_protocol(backend):
    assert isinstance(backend, GenerationBackend) and backend.name == "vllm"


def test_sampling_gives_n_per_prompt_with_raw_logprobs(backend, hf, prompts):
    model, _ = hf
    sampling = SamplingConfig(n=3, temperature=0.8, top_p=0.9, top_k=20, max_new_tokens=16)
    cands = backend.generate(prompts, sampling, seed=11)
    assert [c.prompt_index for c in cands] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for c in cands:
        assert c.token_ids.dtype == np.int32 and c.logprobs.dtype == np.float32
        assert c.token_ids.shape == c.logprobs.shape and 1 <= len(c.token_ids) <= 16
        assert np.all(c.logprobs <= 0) and np.all(np.isfinite(c.logprobs)) and isinstance(c.text, str)
        # Raw, not tempered or renormalised by top-k/top-p: the transformers forward pass agrees.
        expected = hf_logprobs(model, prompts[c.prompt_index], c.token_ids.tolist())
        np.testing.assert_allclose(c.logprobs, expected, atol=LOGPROB_ATOL)
    again = backend.generate(prompts, sampling, seed=11)
    assert all(np.array_equal(a.token_ids, b.token_ids) for a, b in zip(cands, again))


def test_greedy_equals_transformers_greedy(backend, hf, prompts):
    model, tok = hf
    cands = backend.generate(prompts, SamplingConfig(n=1, temperature=0.0, max_new_tokens=24), seed=0)
    for prompt, c in zip(prompts, cands):
        assert_same_greedy(model, prompt, c.token_ids.tolist(), hf_greedy(model, tok, prompt, 24))
        np.testing.assert_allclose(c.logprobs, hf_logprobs(model, prompt, c.token_ids.tolist()), atol=LOGPROB_ATOL)
        assert c.text == tok.decode(c.token_ids.tolist(), skip_special_tokens=True).strip()


def test_beam_search_returns_n_best_beams_with_logprobs(backend, hf, prompts):
    model, _ = hf
    cands = backend.generate(prompts, SamplingConfig(n=2, num_beams=3, max_new_tokens=12), seed=0)
    assert [c.prompt_index for c in cands] == [0, 0, 1, 1, 2, 2]
    for c in cands:
        assert len(c.token_ids) >= 1 and np.all(c.logprobs <= 0)
        np.testing.assert_allclose(c.logprobs, hf_logprobs(model, prompts[c.prompt_index], c.token_ids.tolist()),
                                   atol=LOGPROB_ATOL)


def test_pushed_weights_change_outputs_and_restoring_brings_them_back(backend, hf, prompts):
    from ouro_ray.weights import pack_weights

    model, _ = hf
    greedy = SamplingConfig(n=1, temperature=0.0, max_new_tokens=16)
    before = backend.generate(prompts, greedy, seed=0)
    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (2 * p.std() + 1e-3))
    backend.load_weights(noisy.named_parameters())
    after = backend.generate(prompts, greedy, seed=0)
    assert any(not np.array_equal(a.token_ids, b.token_ids) for a, b in zip(before, after))
    # Same prompts again: a stale prefix cache would have served the old weights' KV here.
    backend.load_payload(pack_weights(model, version=1))
    restored = backend.generate(prompts, greedy, seed=0)
    assert all(np.array_equal(a.token_ids, b.token_ids) for a, b in zip(before, restored))
