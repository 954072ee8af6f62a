"""What the server adds to every HTTP exchange, UI and API alike: the public path prefix it is served
under behind a reverse proxy, the security headers, safe flags on any cookie, the body limit, and the
login Gradio's own file and upload routes lack.

All are plain ASGI wrappers rather than Starlette's BaseHTTPMiddleware: Gradio streams its queue as
server-sent events, and a plain wrapper passes each chunk through as it comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# No framing by other sites (clickjacking: the old header and the CSP one), no MIME sniffing, and no
# page address (which may name a task) leaking to other sites.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def normalize_root_path(root_path: str | None) -> str:
    """`/annotate` from `annotate`, `/annotate/` or `/annotate`; "" for none or `/`."""
    path = (root_path or "").strip().strip("/")
    if any(c.isspace() or c in "?#" for c in path):
        raise ValueError(f"not a URL path: {root_path!r}")
    return f"/{path}" if path else ""


class RootPath:
    """Serve `app` under `prefix` when the proxy forwards `/prefix/...` unchanged.

    Starlette routes on the part of the path after `scope["root_path"]` and builds URLs with it, so
    setting it is all it takes (uvicorn's own `--root-path` instead assumes the proxy strips the prefix,
    and prepends it again). A request without the prefix (on the server itself) is served as before."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.prefix:
            scope["root_path"] = self.prefix
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Add SECURITY_HEADERS to every response (a header the app set itself is left as it is), and make
    every cookie `HttpOnly`, and `Secure` when the request came over TLS: the scheme uvicorn took from a
    trusted proxy's X-Forwarded-Proto, or always when `behind_proxy` (a TLS-terminating proxy)."""

    def __init__(self, app: ASGIApp, behind_proxy: bool = False) -> None:
        self.app = app
        self.behind_proxy = behind_proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.behind_proxy or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(list(message.get("headers", [])), secure)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(headers: list[tuple[bytes, bytes]], secure: bool) -> list[tuple[bytes, bytes]]:
    """`headers` with the missing SECURITY_HEADERS added and every Set-Cookie hardened."""
    present = {name.lower() for name, _ in headers}
    out = [
        (name, harden_cookie(value, secure) if name.lower() == b"set-cookie" else value)
        for name, value in headers
    ]
    out.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
    return out


def harden_cookie(value: bytes, secure: bool) -> bytes:
    """A Set-Cookie value with `HttpOnly` (scripts cannot read it), and `Secure` when `secure`."""
    attributes = {part.strip().split(b"=")[0].lower() for part in value.split(b";")[1:]}
    if b"httponly" not in attributes:
        value += b"; HttpOnly"
    if secure and b"secure" not in attributes:
        value += b"; Secure"
    return value


class BodyTooLarge(HTTPException):
    """A request body past the limit; an HTTPException, so FastAPI's body parsing passes it on as 413
    rather than as a body it could not parse."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over {limit} bytes")


class BodyLimit:
    """Refuse (413) a request body over `limit` bytes: one that announces more (Content-Length) before
    any of it is read, and one sent without a length (chunked) as soon as more than `limit` has
    arrived, so that no client makes the server hold, or Gradio store, more than the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _refuse(scope, receive, send, BodyTooLarge(self.limit))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as err:  # raised past a route that did not turn it into its response
            if not started:
                await _refuse(scope, receive, send, err)


async def _refuse(scope: Scope, receive: Receive, send: Send, err: HTTPException) -> None:
    """Answer with `err` as the API answers errors: one line in `detail`."""
    await JSONResponse({"detail": err.detail}, status_code=err.status_code)(scope, receive, send)


SESSION_COOKIE = "critic-session"
SESSION_COOKIE_PATH = "/api/session-cookie"
# Run in the page whenever the login token is loaded or changes (`ui/app.py`): hand it to the server as
# the session cookie, or drop the cookie once logged out.
SESSION_COOKIE_JS = """(token) => {
  const root = ((window.gradio_config && window.gradio_config.root) || ".").replace(/\\/$/, "");
  const init = token ? {method: "POST", headers: {Authorization: "Bearer " + token}} : {method: "DELETE"};
  fetch(root + "/api/session-cookie", init).catch(() => {});
  return [];
}"""


def required_role(path: str) -> str | None:
    """Who may use a Gradio route: uploads any logged-in user, files (the Admin tab's exports and audit
    log are the only files the UI serves) admins only; None for every other route."""
    while "//" in path:
        path = path.replace("//", "/")
    if path.startswith("/gradio_api/upload"):
        return "user"
    if path.startswith("/gradio_api/file"):
        return "admin"
    return None


class SessionGate:
    """Gradio's upload and file routes know nothing of this app's logins and answer anyone: here they
    answer only to a session cookie whose login holds (`required_role`).

    The page keeps the login token in localStorage, which a download link or an upload does not send,
    so the page hands it over at `POST api/session-cookie` (Authorization: Bearer) and gets it back as
    an HttpOnly, SameSite=Strict cookie (no script reads it, no other site makes the browser send it);
    `DELETE` drops it. `role_of(token)` is the token's user's role, None when it names no live login."""

    def __init__(self, app: ASGIApp, role_of: Callable[[str], str | None]) -> None:
        self.app = app
        self.role_of = role_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path == SESSION_COOKIE_PATH:
            await self._session_cookie(scope, receive, send)
            return
        needed = required_role(path)
        if needed is not None:
            role = await self._role(cookie(scope, SESSION_COOKIE))
            if role is None:
                await _refuse(scope, receive, send, HTTPException(401, "log in first"))
                return
            if needed == "admin" and role != "admin":
                await _refuse(scope, receive, send, HTTPException(403, "only admins can do this"))
                return
        await self.app(scope, receive, send)

    async def _role(self, token: str | None) -> str | None:
        return await anyio.to_thread.run_sync(self.role_of, token) if token else None

    async def _session_cookie(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = f"{scope.get('root_path', '')}/"
        response = Response(status_code=204)
        if scope["method"] == "DELETE":
            response.delete_cookie(SESSION_COOKIE, path=path, httponly=True, samesite="strict")
        elif scope["method"] == "POST":
            scheme, _, token = (Headers(scope=scope).get("authorization") or "").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or await self._role(token) is None:
                await _refuse(scope, receive, send, HTTPException(401, "log in first"))
                return
            response.set_cookie(SESSION_COOKIE, token, path=path, httponly=True, samesite="strict")
        else:
            response = JSONResponse({"detail": "method not allowed"}, status_code=405)
        await response(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The request's path inside the app: without the public prefix (`RootPath`) when it has it."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and (path == root or path.startswith(f"{root}/")):
        return path[len(root) :] or "/"
    return path


def cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie `name` in the request, parsed as Starlette parses `request.cookies`."""
    return cookie_parser(Headers(scope=scope).get("cookie") or "").get(name)
