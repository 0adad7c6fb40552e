"""``ouro serve``: a policy as an OpenAI-compatible completions endpoint on Ray Serve.

:mod:`ouro_ray.serving.completions` holds the model-facing part (request validation and
:class:`CompletionEngine`, no Ray); :mod:`ouro_ray.serving.app` the Serve deployment and HTTP glue.
Serve is imported only when an app is built, so importing this package stays cheap.
"""

from __future__ import annotations

from ouro_ray.serving.app import CompletionsServer, ServedModel, build_app, deploy_completions
from ouro_ray.serving.completions import (CompletionEngine, CompletionRequest, CompletionRequestError,
                                          parse_request, token_text)

__all__ = ["CompletionsServer", "ServedModel", "build_app", "deploy_completions", "CompletionEngine",
           "CompletionRequest", "CompletionRequestError", "parse_request", "token_text"]
