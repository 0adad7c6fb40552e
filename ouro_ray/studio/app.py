"""The studio's web app: :func:`create_app` builds it for one run directory (and runs to compare in the arena).

Pages are server-rendered Jinja2 templates (:mod:`~ouro_ray.studio.pages`); the JSON API the pages' script
calls is :mod:`~ouro_ray.studio.api`; the token gate is :mod:`~ouro_ray.studio.auth`. A refused request
answers ``{"error": "..."}`` (an HTML page for a page) and writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from ouro_ray.studio import api, pages
from ouro_ray.studio.arena import Arena
from ouro_ray.studio.auth import TokenGate
from ouro_ray.studio.chat import ChatService, Replier, load_policy
from ouro_ray.studio.edits import describe_validation
from ouro_ray.studio.rundata import RunData, StudioError
from ouro_ray.studio.state import Studio

HERE = Path(__file__).parent


def create_app(run_dir: Path | str, compare: Sequence[Path | str] = (), *, token: str, policy: Replier | None = None,
               load: Callable[[RunData], Replier] = load_policy) -> FastAPI:
    """The studio for ``run_dir``; ``policy`` stands in for the run's policy (tests), else ``load`` loads it on
    the first chat message. Raises :class:`~ouro_ray.studio.rundata.NotARunDirectory` for a bad directory and
    :class:`~ouro_ray.config.ConfigError` for a run config that does not load."""
    run = RunData(run_dir)
    run.config  # a config.yaml that no longer loads fails here, with its ConfigError, not on a page
    others = [RunData(c) for c in compare]
    app = FastAPI(title="ouro studio", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.studio = Studio(run, others, ChatService(run, policy, load), Arena(run, others), token,
                              Jinja2Templates(directory=HERE / "templates"))
    app.add_middleware(TokenGate, token=token)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.add_exception_handler(StudioError, _studio_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def _error(request: Request, status: int, message: str):
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    studio: Studio = request.app.state.studio
    return studio.page(request, "error", status_code=status, title=str(status), message=message)


async def _studio_error(request: Request, exc: StudioError):
    return _error(request, exc.status, exc.message)


async def _validation_error(request: Request, exc: RequestValidationError):
    return _error(request, 422, describe_validation(list(exc.errors())))


async def _http_error(request: Request, exc: HTTPException):
    message = {404: f"no such page or endpoint: {request.url.path}", 405: f"{request.method} is not allowed on "
               f"{request.url.path}"}.get(exc.status_code, str(exc.detail))
    return _error(request, exc.status_code, message)
