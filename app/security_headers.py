"""The security headers every answer carries: pages, API answers, errors, files and metrics.

- ``Content-Security-Policy``: only this server's own scripts, styles and connections; no inline
  script or style, no plugins, and no framing by any page (``frame-ancestors 'none'``).
- ``X-Content-Type-Options: nosniff``: a file is only ever what its Content-Type says.
- ``Referrer-Policy: no-referrer``: no URL of the tab leaves with a link or request.

One pure ASGI middleware, put outside everything else (``wrap_with_security_headers``) so even
the 500 answer of an unexpected failure carries them. An answer that already sets a
Content-Security-Policy keeps it: only the GraphiQL explorer does, in development mode
(graph/http.py), to load its scripts.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
# The messages that start an answer: an HTTP response, or a websocket handshake refused with one.
_RESPONSE_STARTS = ("http.response.start", "websocket.http.response.start")


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in _RESPONSE_STARTS:
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _value in headers}
                headers.extend(
                    (name, value) for name, value in SECURITY_HEADERS if name not in present
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
