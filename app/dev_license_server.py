"""A reference licensing server, for development and tests.

It speaks the wire contract of docs/licensing-server.md exactly: ``GET
/v1/districts/{slug}/license`` with ``Authorization: Bearer <api key>``, answered with the signed
license envelope whose payload carries ``signed_at``, or with a JSON error body. It holds each
district's license *terms* and signs ``terms + signed_at`` anew on every request, with its own
Ed25519 key, as Manage1to1's licensing service does.

Licenses come from a mapping of slug to ``LicenseTerms`` (tests change it while the server runs)
or from a folder of license files, ``<folder>/<slug>.license``, read on every request: the terms
are taken from the file's payload and signed again (the file's own signature is not checked; this
server stands in for the authority that issues terms). ``licensing dev license-server`` serves the
folder where ``licensing license issue`` writes, so an issued license shows after Force License
Update.

Not for production: it keeps no audit, has no rate limit and must listen on loopback only.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from licensing.orchestration.service import utc_now
from licensing.storage import signing
from plugins.records import SignedLicense, SourceError

ANY_DISTRICT = "*"
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class LicenseUnavailable(Exception):
    """A license file exists but cannot be served; answered as HTTP 500."""


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The contract's error body: ``{"error": {"code": ..., "message": ...}}``."""
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def create_license_server(
    *,
    signing_key: Ed25519PrivateKey,
    licenses: Mapping[str, signing.LicenseTerms] | Path,
    api_keys: Mapping[str, str],
    key_id: str = "dev",
    clock: Callable[[], datetime] = utc_now,
) -> Starlette:
    """The reference server as a Starlette app.

    ``api_keys`` maps each accepted API key to the slug of the one district it may read, or to
    ``"*"`` for any district. ``clock`` gives ``signed_at`` (tests pass theirs).
    """

    def terms_for(slug: str) -> signing.LicenseTerms | None:
        if isinstance(licenses, Path):
            return _terms_from_file(licenses / f"{slug}.license")
        return licenses.get(slug)

    async def district_license(request: Request) -> Response:
        slug = request.path_params["slug"]
        allowed = _district_for_key(request, api_keys)
        if allowed is None:
            return error_response(
                401,
                "UNAUTHORIZED",
                "Missing or unknown API key: send Authorization: Bearer <api key>.",
                headers={"WWW-Authenticate": 'Bearer realm="licensing"'},
            )
        terms = terms_for(slug) if SLUG.match(slug) and allowed in (ANY_DISTRICT, slug) else None
        if terms is None:
            return error_response(
                404,
                "UNKNOWN_DISTRICT",
                f"No license for district {slug!r} is available to this API key.",
            )
        signed = signing.sign_license(
            terms, private_key=signing_key, key_id=key_id, signed_at=clock()
        )
        return Response(
            signed.to_envelope(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
        if error.status_code == 405:
            code = "METHOD_NOT_ALLOWED"
        return error_response(error.status_code, code, str(error.detail))

    async def unavailable(request: Request, error: Exception) -> Response:
        return error_response(500, "INTERNAL", str(error))

    return Starlette(
        routes=[Route("/v1/districts/{slug}/license", district_license, methods=["GET"])],
        exception_handlers={HTTPException: http_error, LicenseUnavailable: unavailable},
    )


def _district_for_key(request: Request, api_keys: Mapping[str, str]) -> str | None:
    """The district the request's API key may read (or ``"*"``); None when the key is unknown."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    offered = key.strip().encode("utf-8")
    found = None
    for known, district in api_keys.items():
        if hmac.compare_digest(offered, known.encode("utf-8")):
            found = district
    return found


def _terms_from_file(path: Path) -> signing.LicenseTerms | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LicenseUnavailable(f"Cannot read {path.name}: {error.strerror}.") from None
    try:
        return signing.parse_terms(SignedLicense.from_envelope(data).payload)
    except (SourceError, signing.LicenseRejected) as error:
        raise LicenseUnavailable(f"{path.name} is not a valid license file: {error}") from None
