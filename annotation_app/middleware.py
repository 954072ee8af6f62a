"""What the server adds to every HTTP exchange, UI and API alike: the public path prefix it is served
under behind a reverse proxy, the security headers, and safe flags on any cookie.

Both are plain ASGI wrappers rather than Starlette's BaseHTTPMiddleware: Gradio streams its queue as
server-sent events, and a plain wrapper passes each chunk through as it comes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
