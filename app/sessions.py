"""Sign-in for the Licensing tab: an API token exchanged once for a server-side session.

- ``POST /session`` with ``{"token": "<api token>"}`` checks the token, starts a session and sets
  the cookie ``__Host-licensing_session`` to its random id (never the token).
- ``GET /session`` tells the page who is signed in: district (slug, name and time zone), token name
  and permissions (401 if nobody).
- ``DELETE /session`` signs out: the session is ended on the server and the cookie cleared, so a
  copy of the cookie signs no one in afterwards.

The session (licensing/storage/dashboard_sessions.py) ends after ``sign_in.session_idle_minutes`` without
a request, ``sign_in.session_lifetime_hours`` after sign-in, at sign-out, when its token is
revoked, or when its token expires, whichever is first. An expired token cannot sign in: the 401
says so (code ``TOKEN_EXPIRED``). The cookie is ``HttpOnly`` (no script can read it),
``SameSite=Strict`` (no other site's page sends it) and ``Secure`` with ``Path=/`` (as its
``__Host-`` prefix requires), and lasts no longer than the session. POST and
DELETE here, like POSTs to ``/graphql`` signed in by the cookie, must pass the CSRF check of
graph/auth.py (same Origin, or the header ``X-Requested-With: licensing-tab``). A bad token
counts against the client's address like a bad bearer token (HTTP 429 past the limit).
"""

from __future__ import annotations

import json
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.auth import (
    SESSION_COOKIE,
    authenticate_token,
    clear_session_cookie,
    client_address,
    csrf_refusal,
    session_ended,
    session_principal,
    set_session_cookie,
)
from graph.responses import error_response
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import LicensingService
from licensing.storage.tokens import Principal

SESSION_PATH = "/session"
MAX_SESSION_BODY_BYTES = 4096


async def _who(service: LicensingService, principal: Principal) -> dict[str, object]:
    """What the page shows of the signed-in caller: the district's name in the header, and its
    time zone, in which the page shows every moment."""
    district = (await service.district_state(principal.district_id)).snapshot.district
    return {
        "district": principal.district_slug,
        "districtName": district.official_name,
        "timeZone": district.time_zone,
        "tokenName": principal.token_name,
        "permissions": sorted(permission.value for permission in principal.permissions),
    }


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def session_routes(service: LicensingService) -> list[Route]:
    """The /session routes, bound to the service that checks tokens and keeps sessions."""

    async def sign_in(request: Request) -> Response:
        refusal = csrf_refusal(request)
        if refusal is not None:
            return refusal
        body = await request.body()
        if len(body) > MAX_SESSION_BODY_BYTES:
            return error_response(
                413, ErrorCode.REQUEST_TOO_LARGE, "The sign-in request is too large."
            )
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token.strip():
            return error_response(
                400, ErrorCode.BAD_REQUEST, 'Send JSON such as {"token": "<your API token>"}.'
            )
        principal = await authenticate_token(client_address(request), service, token.strip())
        if isinstance(principal, Response):
            return principal
        # A new sign-in in this browser ends the session it replaces.
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            await service.end_session(previous)
        session_id, ends_at = await service.start_session(principal)
        response = JSONResponse(await _who(service, principal))
        # The browser drops the cookie when the session ends, at the latest at the token's expiry.
        lifetime = ends_at - service.clock()
        set_session_cookie(
            response, session_id, max_age_seconds=max(1, math.ceil(lifetime.total_seconds()))
        )
        return _no_store(response)

    async def current(request: Request) -> Response:
        principal = await session_principal(request, service)
        if principal is None:
            if request.cookies.get(SESSION_COOKIE):
                return _no_store(session_ended())
            return _no_store(error_response(401, ErrorCode.UNAUTHENTICATED, "Not signed in."))
        return _no_store(JSONResponse(await _who(service, principal)))

    async def sign_out(request: Request) -> Response:
        refusal = csrf_refusal(request)
        if refusal is not None:
            return refusal
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            await service.end_session(session_id)
        response = JSONResponse({"signedOut": True})
        clear_session_cookie(response)
        return _no_store(response)

    return [
        Route(SESSION_PATH, sign_in, methods=["POST"]),
        Route(SESSION_PATH, current, methods=["GET"]),
        Route(SESSION_PATH, sign_out, methods=["DELETE"]),
    ]
