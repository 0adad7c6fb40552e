"""The studio's session token, as Jupyter's: the URL ``ouro studio`` prints carries it once.

Opening ``/?token=T`` sets an HttpOnly, SameSite=Strict cookie and redirects to the page without the
token. Every page and API call then needs the token, from that cookie or the ``X-Ouro-Token`` header;
without it the answer is 401 (a page saying to open the printed URL, or ``{"error": ...}`` under
``/api``). A write (any method but GET and HEAD) needs the header itself, which the studio's pages send
from a ``<meta>`` tag: a form on another site can make the browser send the cookie, never the header.
"""

from __future__ import annotations

import hashlib
import html
import secrets
from urllib.parse import urlencode

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

HEADER = "X-Ouro-Token"
READS = ("GET", "HEAD")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def cookie_name(token: str) -> str:
    """One cookie per studio (browsers share cookies across ports: two studios must not overwrite each other's)."""
    return "ouro_studio_" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _same(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def _denied(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/") or request.method not in READS:
        return JSONResponse({"error": message}, status_code=status)
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>ouro studio: {status}</title>"
            "<link rel=icon href=data:,></head><body style='font:16px system-ui;max-width:40em;margin:4em auto'>"
            f"<h1>ouro studio</h1><p>{html.escape(message)}</p></body></html>")
    return HTMLResponse(body, status_code=status)


class TokenGate(BaseHTTPMiddleware):
    """Refuses every request without the session token; writes also need it in the header."""

    def __init__(self, app, token: str):
        super().__init__(app)
        self.token = token
        self.cookie = cookie_name(token)

    async def dispatch(self, request: Request, call_next) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            if not _same(given, self.token):
                return _denied(request, 401, "The token in this URL is not this studio's. Open the URL `ouro studio` "
                                             "printed when it started (http://HOST:PORT/?token=…).")
            return self._enter(request)
        header = request.headers.get(HEADER)
        if not (_same(header, self.token) or _same(request.cookies.get(self.cookie), self.token)):
            return _denied(request, 401, "This studio needs its session token. Open the URL `ouro studio` printed "
                                         "when it started (http://HOST:PORT/?token=…); it sets a cookie for this "
                                         f"browser. Programs send the token in the {HEADER} header.")
        if request.method not in READS and not _same(header, self.token):
            return _denied(request, 403, f"A write needs the {HEADER} header (the studio's pages send it); a cookie "
                                         "alone is refused, so a form on another site cannot write here.")
        return await call_next(request)

    def _enter(self, request: Request) -> Response:
        """Set the cookie and redirect to the same page without the token in the URL."""
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        target = request.url.path + (f"?{query}" if query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
        return response
