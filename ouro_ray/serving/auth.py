"""``ouro serve``'s API key: required whenever the HTTP proxy listens beyond loopback.

On loopback only local processes can connect, so no key is needed unless one is given. On any other
address (``--host 0.0.0.0``, a LAN address, a host name) every request but ``/health`` must carry
``Authorization: Bearer <key>``: the key comes from the environment variable ``--api-key-env`` names,
or is generated and printed once. The replica holds only the key's SHA-256 digest, so the key is in
no Serve config, log or actor argument; requests are compared digest to digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import Collection

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ouro_ray.serving.parse import CompletionRequestError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to any interface
        return False


def key_digest(key: str) -> bytes:
    """What the replica keeps of the key: its SHA-256 digest."""
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    """The key a server requires, and whether it was generated here (then it is printed once)."""

    value: str
    generated: bool


def read_api_key(variable: str) -> str:
    """The key in ``$variable``; :class:`ValueError` naming the variable and the fix when it is unset or empty."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ValueError(f"--api-key-env {variable} names an environment variable that is unset or empty; fix: "
                         f"export {variable}=<a long random key> before `ouro serve`, or leave --api-key-env out "
                         "(a key is then generated when the host is not loopback)")
    return value


def resolve_api_key(host: str, given: str | None) -> ApiKey | None:
    """The key a server on ``host`` requires: ``given`` if any, else one generated when ``host`` is not loopback,
    else None (no key)."""
    if given is not None:
        return ApiKey(given, generated=False)
    if is_loopback(host):
        return None
    return ApiKey(secrets.token_urlsafe(32), generated=True)


class BearerAuth:
    """ASGI middleware: answers 401 (OpenAI's error object) to a request without the key, except on ``open_paths``."""

    def __init__(self, app: ASGIApp, *, key_digest: bytes, open_paths: Collection[str] = ()):
        self.app, self._digest, self._open = app, key_digest, frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope) in self._open or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        refused = CompletionRequestError(
            "missing or wrong API key; fix: send the header 'Authorization: Bearer <key>' with the key this server "
            "was started with (its --api-key-env variable, or the key `ouro serve` printed)", None, status=401,
            code="invalid_api_key")
        response = JSONResponse(refused.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        scheme, _, given = Headers(scope=scope).get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(key_digest(given.strip()), self._digest)


def _route_path(scope: Scope) -> str:
    """The path after the app's route prefix (Serve puts the prefix in ``root_path``; the path may include it)."""
    path, root = scope["path"], scope.get("root_path", "").rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    return "/" + path.strip("/")
