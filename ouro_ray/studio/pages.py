"""The studio's pages: Chat, Distill, Review, Arena, Run (server-rendered; ``static/studio.js`` does the rest)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse

from ouro_ray.data.studio import RUBRIC_RANGE
from ouro_ray.studio import views
from ouro_ray.studio.edits import DIMENSIONS
from ouro_ray.studio.rundata import StudioError
from ouro_ray.studio.state import Studio, studio

router = APIRouter()


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/chat", status_code=303)


@router.get("/chat")
def chat(request: Request, s: Studio = Depends(studio)):
    run = s.run
    state = run.state()
    return s.page(request, "chat", title="Chat", chat_read=run.config.data.chat, chat_path=str(run.chat_path),
                  completed=int(state.get("completed_rounds", 0)), pending=len(run.pending_dialogs()),
                  policy=str(run.path / "policy"))


@router.get("/distill")
def distill(request: Request, tab: str | None = None, s: Studio = Depends(studio)):
    return s.page(request, "distill", title="Distill", **views.distill_page(s.run, tab), pending_key=views.PENDING)


@router.get("/review")
def review(request: Request, round: str | None = None, reason: str | None = None, s: Studio = Depends(studio)):
    return s.page(request, "review", title="Review", dims=DIMENSIONS, scale=range(RUBRIC_RANGE[0], RUBRIC_RANGE[1] + 1),
                  **views.review_page(s.run, round, reason))


@router.get("/arena")
def arena(request: Request, a: str | None = None, b: str | None = None, s: Studio = Depends(studio)):
    names = list(s.arena.models)
    own = [n for n in names if n.startswith("round ")]
    a = a or (own[0] if own else names[0] if names else "")
    b = b or (own[-1] if own else names[-1] if names else "")
    return s.page(request, "arena", title="Arena", models=names, a=a, b=b, elo=s.arena.table())


@router.get("/run")
def run(request: Request, s: Studio = Depends(studio)):
    return s.page(request, "run", title="Run", **views.run_page(s.run))


@router.get("/plots/{name}")
def plot(name: str, s: Studio = Depends(studio)) -> FileResponse:
    path = s.run.path / name
    if name not in views.PLOTS or not path.is_file():
        raise StudioError(404, f"plot {name!r}: not in this run; plots: {', '.join(views.PLOTS)}")
    return FileResponse(path, media_type="image/png")
