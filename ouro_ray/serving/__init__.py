"""``ouro serve``: a policy as an OpenAI-compatible completions and chat endpoint on Ray Serve.

:mod:`~ouro_ray.serving.parse` checks request bodies (pure); :mod:`~ouro_ray.serving.completions` holds
:class:`CompletionEngine` (no Ray, no HTTP), :mod:`~ouro_ray.serving.steps` what it keeps of each generation
step (top-K logprobs, a deadline); :mod:`~ouro_ray.serving.chat` the chat route over the same engine;
:mod:`~ouro_ray.serving.tokens` token texts. The HTTP side: :mod:`~ouro_ray.serving.limits` (per-request
bounds), :mod:`~ouro_ray.serving.gate` (one generation at a time, a bounded line), :mod:`~ouro_ray.serving.auth`
(the API key), :mod:`~ouro_ray.serving.http` (the ASGI app) and :mod:`~ouro_ray.serving.app` (the Serve
deployment). :mod:`~ouro_ray.serving.loadtest` measures a server under a mix of good and malformed requests.
Importing the package is cheap: each name below loads its module on first use, so ``ouro --help`` (which
reads :class:`ServeLimits`' defaults) does not import torch; Serve is imported only when an app is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ouro_ray.serving.app": ("CompletionsServer", "ServedModel", "build_app", "deploy_completions"),
    "ouro_ray.serving.auth": ("resolve_api_key",),
    "ouro_ray.serving.chat": ("ChatRequest", "parse_chat_request", "complete_chat", "chat_logprobs", "render_messages"),
    "ouro_ray.serving.completions": ("CompletionEngine",),
    "ouro_ray.serving.http": ("create_app",),
    "ouro_ray.serving.limits": ("ServeLimits",),
    "ouro_ray.serving.parse": ("CompletionRequest", "CompletionRequestError", "parse_request"),
    "ouro_ray.serving.tokens": ("token_text", "token_bytes"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'ouro_ray.serving' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
