"""Loading policies (the tiny world or any Hugging Face directory), prompt encoding, token logprobs."""

from ouro_ray.models.load import encode_prompts, load_causal_lm, load_tokenizer, resolve_model_path
from ouro_ray.models.logprobs import response_logprobs, response_logprobs_batched

__all__ = ["encode_prompts", "load_causal_lm", "load_tokenizer", "resolve_model_path", "response_logprobs",
           "response_logprobs_batched"]
