"""Sign-in for the Licensing tab: an API token exchanged once for an HttpOnly session cookie.

- ``POST /session`` with ``{"token": "<api token>"}`` checks the token and sets the cookie.
- ``GET /session`` tells the page who is signed in: district and permissions (401 if nobody).
- ``DELETE /session`` signs out: the cookie is cleared.

Design (docs/licensing-tab.md): the cookie holds the API token itself, so a revoked token ends
the session at once and the server keeps no session store. The cookie is ``HttpOnly`` (no script
can read it), ``SameSite=Strict`` (no other site's page sends it), ``Secure`` when the request
came over HTTPS, and lives for the browser session only. POST and DELETE here, like POSTs to
``/graphql`` signed in by the cookie, must pass the CSRF check of graph/http.py (same Origin, or
the header ``X-Requested-With: licensing-tab``).
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.http import SESSION_COOKIE, csrf_refusal, error_response
from licensing.service import LicensingService
from licensing.tokens import Principal

SESSION_PATH = "/session"
MAX_SESSION_BODY_BYTES = 4096


def _who(principal: Principal) -> dict[str, object]:
    return {
        "district": principal.district_slug,
        "tokenName": principal.token_name,
        "permissions": sorted(permission.value for permission in principal.permissions),
    }


def session_routes(service: LicensingService) -> list[Route]:
    """The /session routes, bound to the service that checks tokens."""

    async def sign_in(request: Request) -> Response:
        refusal = csrf_refusal(request)
        if refusal is not None:
            return refusal
        body = await request.body()
        if len(body) > MAX_SESSION_BODY_BYTES:
            return error_response(413, "REQUEST_TOO_LARGE", "The sign-in request is too large.")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token.strip():
            return error_response(
                400, "BAD_REQUEST", 'Send JSON such as {"token": "<your API token>"}.'
            )
        token = token.strip()
        principal = await service.authenticate(token)
        if principal is None:
            return error_response(
                401, "UNAUTHENTICATED", "The API token is not valid or has been revoked."
            )
        response = JSONResponse(_who(principal))
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def current(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        principal = await service.authenticate(token) if token else None
        if principal is None:
            return error_response(401, "UNAUTHENTICATED", "Not signed in.")
        response = JSONResponse(_who(principal))
        response.headers["Cache-Control"] = "no-store"
        return response

    async def sign_out(request: Request) -> Response:
        refusal = csrf_refusal(request)
        if refusal is not None:
            return refusal
        response = JSONResponse({"signedOut": True})
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    return [
        Route(SESSION_PATH, sign_in, methods=["POST"]),
        Route(SESSION_PATH, current, methods=["GET"]),
        Route(SESSION_PATH, sign_out, methods=["DELETE"]),
    ]
