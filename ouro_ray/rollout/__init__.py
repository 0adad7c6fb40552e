"""Stage 4: generation backends (transformers on CPU, vLLM on GPU) behind one protocol."""
