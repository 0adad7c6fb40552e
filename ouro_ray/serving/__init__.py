"""``ouro serve``: a policy as an OpenAI-compatible completions and chat endpoint on Ray Serve.

:mod:`ouro_ray.serving.completions` holds the model-facing part (request validation and
:class:`CompletionEngine`, no Ray); :mod:`ouro_ray.serving.chat` the chat route's validation and
answer over the same engine; :mod:`ouro_ray.serving.tokens` token texts and logprob tables;
:mod:`ouro_ray.serving.app` the Serve deployment and HTTP glue. Serve is imported only when an app is
built, so importing this package stays cheap.
"""

from __future__ import annotations

from ouro_ray.serving.app import CompletionsServer, ServedModel, build_app, deploy_completions
from ouro_ray.serving.chat import ChatRequest, chat_logprobs, complete_chat, parse_chat_request, render_messages
from ouro_ray.serving.completions import CompletionEngine
from ouro_ray.serving.parse import CompletionRequest, CompletionRequestError, parse_request
from ouro_ray.serving.tokens import token_bytes, token_text

__all__ = ["CompletionsServer", "ServedModel", "build_app", "deploy_completions", "CompletionEngine",
           "CompletionRequest", "CompletionRequestError", "parse_request", "token_text", "token_bytes",
           "ChatRequest", "parse_chat_request", "complete_chat", "chat_logprobs", "render_messages"]
