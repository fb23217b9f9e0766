"""Sign-in for every endpoint: bearer tokens, the Licensing tab's session cookie, CSRF, and the
limit on failed sign-ins. /graphql (HTTP and websockets), /session (app/sessions.py) and the
report download (app/report_export.py) all sign in here, so they all follow the same rules.

- ``Authorization: Bearer <token>`` signs in as that API token, and always wins over the cookie.
- The Licensing tab signs in once (``POST /session``) and then sends the cookie
  ``__Host-licensing_session``, holding a random session id (licensing/storage/dashboard_sessions.py),
  never the token. A POST signed in by the cookie must also pass the CSRF check. A websocket
  may use the cookie only when its handshake's ``Origin`` is this server's own
  (``websocket_session_principal``): browsers always send ``Origin`` on a websocket, and the
  handshake is not covered by the CSRF header.
- A bad token counts as a failed sign-in of the client's address (licensing/storage/sign_in_limit.py);
  past the limit, every sign-in from that address gets HTTP 429 with ``Retry-After``.
- An expired token is refused like a revoked one (and counted the same), but its 401 says that
  it expired and when (code ``TOKEN_EXPIRED``), so the caller knows to get a new token.

Imports no strawberry: the command line loads the report download's module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import Response

from graph.rate_limit import rate_limited_response, token_budgets
from graph.responses import error_response
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import LicensingService
from licensing.storage.sign_in_limit import SIGN_IN_THROTTLED
from licensing.storage.tokens import Principal, SignedIn

# ``__Host-``: the browser keeps it only if it is Secure, has Path=/ and no Domain, so no other
# host (a sibling subdomain, a plain-http page) can set or overwrite it. Chromium and Firefox
# treat http://127.0.0.1 and http://localhost as secure, so the cookie works there too.
SESSION_COOKIE = "__Host-licensing_session"
# Same-origin pages may send this header instead of (or with) the Origin header.
CSRF_HEADER = "x-requested-with"
CSRF_HEADER_VALUE = "licensing-tab"
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="licensing"'}
BAD_TOKEN_MESSAGE = "The API token is not valid or has been revoked."
UNKNOWN_ADDRESS = "unknown"


def client_address(connection: HTTPConnection) -> str:
    """The address failed sign-ins are counted against: the peer as the server sees it (behind a
    proxy, the address the server is told to trust; see docs/deploy.md)."""
    client = connection.scope.get("client")
    return str(client[0])[:64] if client else UNKNOWN_ADDRESS


def utc_text(moment: datetime) -> str:
    """A moment as ISO 8601 in UTC, to the second: ``2027-02-01T06:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_expired_message(expires_at: datetime) -> str:
    return (
        f"The API token expired at {utc_text(expires_at)}: sign in with a new token (an "
        "administrator creates one with `licensing token create`)."
    )


def token_expired(expires_at: datetime, headers: dict[str, str]) -> Response:
    """The 401 for a token that has expired: when, and what to do."""
    return error_response(
        401,
        ErrorCode.TOKEN_EXPIRED,
        token_expired_message(expires_at),
        extensions={"expiresAt": utc_text(expires_at)},
        headers=headers,
    )


def sign_in_throttled(retry_after_seconds: int) -> Response:
    return error_response(
        429,
        SIGN_IN_THROTTLED,
        "Too many failed sign-ins from your address: sign-in is refused for "
        f"{retry_after_seconds} s. Check the API token you are using.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


async def authenticate_token(
    address: str, service: LicensingService, secret: str | None, **headers: str
) -> Principal | Response:
    """The principal of an API token, or the 401 (unknown, revoked or expired token) or 429 (too
    many failed sign-ins from ``address``, the client's) answer. A bad token is counted."""
    signed_in = await _token_sign_in(address, service, secret, **headers)
    return signed_in if isinstance(signed_in, Response) else signed_in.principal


async def _token_sign_in(
    address: str, service: LicensingService, secret: str | None, **headers: str
) -> SignedIn | Response:
    retry_after = service.failed_sign_ins.retry_after(address)
    if retry_after is not None:
        return sign_in_throttled(retry_after)
    signed_in = await service.token_sign_in(secret) if secret else None
    if signed_in is not None:
        return signed_in
    retry_after = await service.record_failed_sign_in(address)
    if retry_after is not None:
        return sign_in_throttled(retry_after)
    expired_at = await service.token_expired_at(secret) if secret else None
    if expired_at is not None:
        return token_expired(expired_at, headers)
    return error_response(401, ErrorCode.UNAUTHENTICATED, BAD_TOKEN_MESSAGE, headers=headers)


async def sign_in(
    request: HTTPConnection, service: LicensingService, *, cost: int = 1
) -> Principal | Response:
    """The caller of an HTTP endpoint, by bearer token or by the Licensing tab's session cookie,
    or the 401 (or CSRF 403, or failed sign-in 429) response explaining why they are not signed
    in, or the 429 response when their token's budget cannot pay ``cost`` points
    (graph/rate_limit.py), which are drawn."""
    signed_in = await versioned_sign_in(request, service, cost=cost)
    return signed_in if isinstance(signed_in, Response) else signed_in.principal


async def versioned_sign_in(
    request: HTTPConnection, service: LicensingService, *, cost: int = 1
) -> SignedIn | Response:
    """``sign_in``, with the caller's district's version read in the same step (in the common
    case one statement for both: licensing/storage/sign_in_cache.py)."""
    signed_in = await _signed_in(request, service)
    if isinstance(signed_in, Response):
        return signed_in
    budgets = token_budgets(service)
    if budgets is not None:
        receipt = await budgets.draw_async(signed_in.principal.token_id, cost)
        if not receipt.allowed:
            return rate_limited_response(receipt)
    return signed_in


async def _signed_in(request: HTTPConnection, service: LicensingService) -> SignedIn | Response:
    if (
        request.scope["type"] == "http"
        and "authorization" not in request.headers
        and request.cookies.get(SESSION_COOKIE)
    ):
        return await _cookie_sign_in(request, service)
    secret = bearer_secret(request.headers.get("authorization", ""))
    if secret is None:
        return error_response(
            401,
            ErrorCode.UNAUTHENTICATED,
            "Sign in with an API token: send the header 'Authorization: Bearer <token>'.",
            headers=BEARER_CHALLENGE,
        )
    return await _token_sign_in(client_address(request), service, secret, **BEARER_CHALLENGE)


async def _cookie_sign_in(
    request: HTTPConnection, service: LicensingService
) -> SignedIn | Response:
    """The caller signed in by the Licensing tab's session cookie; a POST must pass CSRF."""
    if request.scope.get("method") == "POST":
        refusal = csrf_refusal(request)
        if refusal is not None:
            return refusal
    session_id = request.cookies.get(SESSION_COOKIE)
    signed_in = await service.session_sign_in(session_id) if session_id else None
    if signed_in is None:
        return session_ended()
    return signed_in


async def session_principal(request: HTTPConnection, service: LicensingService) -> Principal | None:
    """Who the request's session cookie signs in, or None (no cookie, or the session ended)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    return await service.session_principal(session_id) if session_id else None


def session_ended() -> Response:
    """The 401 for a session cookie that no longer signs anyone in; the browser drops it."""
    response = error_response(
        401,
        ErrorCode.UNAUTHENTICATED,
        "The session has ended (signed out, expired, or its token expired or was revoked): "
        "sign in again.",
    )
    clear_session_cookie(response)
    return response


def set_session_cookie(response: Response, session_id: str, *, max_age_seconds: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=max_age_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=True,
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=True)


async def websocket_session_principal(
    websocket: HTTPConnection, service: LicensingService
) -> Principal | Response:
    """Who a websocket handshake carrying the Licensing tab's session cookie signs in, or the
    answer refusing the handshake: 403 when its ``Origin`` is not this server's own (another
    site's page, or a client that names no origin), 401 when the session has ended, 429 when the
    token's budget is spent."""
    if not same_origin(websocket):
        return error_response(
            403,
            ErrorCode.CSRF,
            "Refused: a websocket signed in by the session cookie must come from the Licensing "
            "tab itself (same Origin).",
        )
    principal = await session_principal(websocket, service)
    if principal is None:
        return session_ended()
    budgets = token_budgets(service)
    if budgets is not None:
        receipt = await budgets.draw_async(principal.token_id, 1)
        if not receipt.allowed:
            return rate_limited_response(receipt)
    return principal


def same_origin(request: HTTPConnection) -> bool:
    """Whether the request's ``Origin`` header names this server (the ``Host`` it was sent to)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if not origin or not host or origin == "null":
        return False
    parsed = urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


def csrf_refusal(request: HTTPConnection) -> Response | None:
    """None when a cookie-authenticated request comes from the tab itself, else the 403 answer.

    A cross-site form or script cannot set ``X-Requested-With: licensing-tab`` without a CORS
    preflight (which this server never grants), and browsers always send ``Origin`` with a POST:
    either one proves the request is same-origin. SameSite=Strict on the cookie is the first line.
    """
    if request.headers.get(CSRF_HEADER, "").strip().lower() == CSRF_HEADER_VALUE:
        return None
    if same_origin(request):
        return None
    return error_response(
        403,
        ErrorCode.CSRF,
        "Refused: a request signed in by the session cookie must come from the Licensing tab "
        "itself (same Origin, or the header 'X-Requested-With: licensing-tab').",
    )


def bearer_secret(header: object) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, or None."""
    if not isinstance(header, str):
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()
