"""What every studio route reads (:class:`Studio`, on ``app.state.studio``) and the nav bar."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ouro_ray.studio.arena import Arena
from ouro_ray.studio.chat import ChatService
from ouro_ray.studio.rundata import RunData

NAV = (("chat", "Chat", "stage 1: talk with the policy"), ("distill", "Distill", "stage 2: edit the summaries"),
       ("review", "Review", "stage 5: label the review queue"), ("arena", "Arena", "blind votes between policies"),
       ("run", "Run", "metrics, plots, human minutes"))
"""The nav bar: route, label, what the page is for."""


@dataclass
class Studio:
    """The run, the runs to compare, the chat and the arena, the token, the templates."""

    run: RunData
    compare: list[RunData]
    chat: ChatService
    arena: Arena
    token: str
    templates: Jinja2Templates
    edit_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held while a summary edit is checked against the current version and appended."""

    def page(self, request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        """Template ``name``.html with what every page shows (nav, run name, the token for the page's script)."""
        return self.templates.TemplateResponse(request, f"{name}.html", {
            "page": name, "nav": NAV, "token": self.token, "run_name": self.run.name, "run_path": str(self.run.path),
            **context}, status_code=status_code)


def studio(request: Request) -> Studio:
    """The route dependency that hands a route the app's :class:`Studio`."""
    return request.app.state.studio
