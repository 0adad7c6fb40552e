"""Models: what a user names resolved to a Hugging Face directory (:mod:`ouro_ray.models.resolve`, no torch),
loading (:mod:`ouro_ray.models.load`), prompt encoding and token logprobs (:mod:`ouro_ray.models.logprobs`).

Import the submodule you need; this package imports nothing, so resolving a model never loads torch."""
