"""What a district administrator reads when a license refresh fails, for every kind of failure.

The message stored and shown (License.lastSyncError, forceLicenseUpdate's errors, the audit log)
says what went wrong and what to do, in words: never a file path of the server, an exception's
class, a parser's text or the licensing server's address. Those go to the server log, on a line
that carries the request id of the press that caused it.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import col, select
from starlette.responses import Response

from app.dev_license_server import create_license_server, error_response
from app.observability import RequestIdFilter
from db.models import AuditEvent
from licensing.settings import DistrictConfig, HttpSettings, Settings
from licensing.storage import signing
from tests.fakes.serve import serve
from tests.utils.districts import TEST_KEY_ID
from tests.utils.graphql import graphql

pytestmark = pytest.mark.anyio

SLUG = "riverside"
API_KEY = "riverside-api-key-0123456789abcdef"
FORCE_UPDATE = """
mutation { forceLicenseUpdate { updated license { stale lastSyncError } errors { code message } } }
"""
# Words that only a program's internals would say: exception classes, JSON and base64 parsers,
# pydantic, tracebacks.
INTERNALS = re.compile(
    r"\b\w*(Error|Exception)\b|Traceback|Expecting value|line \d+ column \d+|char \d+|"
    r"JSON|base64|Errno|Input should|validation error|<html",
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Quick retries, so a failing licensing server gives up in well under a second."""
    fast = HttpSettings(backoff_seconds=0.01, max_backoff_seconds=0.05, attempt_deadline_seconds=1)
    return settings.model_copy(update={"http": fast})


@contextmanager
def licensing_server(service: Any, app: Any) -> Iterator[str]:
    """Serve ``app`` as the district's licensing server for the block; yields its URL."""
    with serve(app) as url:
        use_licensing_server(service, url)
        yield url


def use_licensing_server(service: Any, url: str) -> None:
    service.settings.districts[SLUG] = DistrictConfig(
        license_source="licensing_server", license_options={"url": url, "api_key": API_KEY}
    )


def closed_port_url() -> str:
    """The address of a port on this machine where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def envelope(payload: str = "x", signature: str = "x", **changes: Any) -> bytes:
    document = {"format": "manage1to1-license", "version": 1, "key_id": TEST_KEY_ID}
    document.update(payload=payload, signature=signature, **changes)
    return json.dumps(document).encode()


# Each kind: how to break the district's license source, and the code the administrator sees.
# ``break_source(service, issuer, signing_key)`` returns a context manager for the press.
Breaker = Callable[[Any, Any, Any], Any]


@contextmanager
def missing_file(service, issuer, signing_key):
    service.settings.license_file_for(SLUG).unlink()
    yield


@contextmanager
def unreadable_file(service, issuer, signing_key):
    path = service.settings.license_file_for(SLUG)
    path.unlink()
    path.mkdir()  # a folder where the file should be: reading it fails as an unreadable file does
    yield


@contextmanager
def not_json(service, issuer, signing_key):
    service.settings.license_file_for(SLUG).write_text('{"format": "manage1to1-license", ')
    yield


@contextmanager
def not_a_license_envelope(service, issuer, signing_key):
    service.settings.license_file_for(SLUG).write_text('{"licence": "please"}')
    yield


@contextmanager
def damaged_envelope(service, issuer, signing_key):
    service.settings.license_file_for(SLUG).write_bytes(envelope(payload="%%%", signature="!"))
    yield


@contextmanager
def bad_signature(service, issuer, signing_key):
    issuer.write(SLUG, seats=1100, key=Ed25519PrivateKey.generate())
    yield


@contextmanager
def retired_signing_key(service, issuer, signing_key):
    # Signed with a key the service no longer trusts (its public key was removed).
    issuer.write(SLUG, seats=1100)
    service.settings.license_public_keys.clear()
    for key_file in service.settings.trusted_keys_dir.glob("*.pub"):
        key_file.unlink()
    yield


@contextmanager
def malformed_contents(service, issuer, signing_key):
    payload = json.dumps({"license_id": "M1T1-X", "district": SLUG, "seats": "many"}).encode()
    signed = signing.SignedLicense(
        payload=payload, signature=signing_key.sign(payload), key_id=TEST_KEY_ID
    )
    service.settings.license_file_for(SLUG).write_bytes(signed.to_envelope())
    yield


@contextmanager
def server_unreachable(service, issuer, signing_key):
    use_licensing_server(service, closed_port_url())
    yield


@contextmanager
def server_error(service, issuer, signing_key):
    answer = error_response(503, "UNAVAILABLE", "OperationalError at /srv/licensing/db.sqlite3")
    with licensing_server(service, answer):
        yield


@contextmanager
def malformed_response(service, issuer, signing_key):
    page = Response("<html><body>Maintenance until 14:00</body></html>", media_type="text/html")
    with licensing_server(service, page):
        yield


@contextmanager
def expired_signature(service, issuer, signing_key):
    # A genuine answer, but signed a day ago: a replayed answer, refused as stale.
    terms = signing.parse_terms(
        signing.SignedLicense.from_envelope(
            service.settings.license_file_for(SLUG).read_bytes()
        ).payload
    )
    app = create_license_server(
        signing_key=signing_key,
        licenses={SLUG: terms},
        api_keys={API_KEY: SLUG},
        key_id=TEST_KEY_ID,
        clock=lambda: service.clock() - timedelta(days=1),
    )
    with licensing_server(service, app):
        yield


KINDS: list[tuple[Breaker, str]] = [
    (missing_file, "LICENSE_SOURCE_UNAVAILABLE"),
    (unreadable_file, "LICENSE_SOURCE_UNAVAILABLE"),
    (not_json, "LICENSE_SOURCE_UNAVAILABLE"),
    (not_a_license_envelope, "LICENSE_SOURCE_UNAVAILABLE"),
    (damaged_envelope, "BAD_SIGNATURE"),
    (bad_signature, "BAD_SIGNATURE"),
    (retired_signing_key, "NO_TRUSTED_KEY"),
    (malformed_contents, "MALFORMED_LICENSE"),
    (server_unreachable, "LICENSE_SOURCE_UNAVAILABLE"),
    (server_error, "LICENSE_SOURCE_UNAVAILABLE"),
    (malformed_response, "BAD_SIGNATURE"),
    (expired_signature, "STALE_RESPONSE"),
]


@pytest.mark.parametrize(("break_source", "code"), KINDS, ids=[kind.__name__ for kind, _ in KINDS])
async def test_a_failed_refresh_tells_the_administrator_in_words_and_the_log_the_details(
    client, make_district, service, issuer, signing_key, caplog, break_source, code
):
    district = await make_district(SLUG, seats=1000, active=10)
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level("WARNING")

    with break_source(service, issuer, signing_key):
        response = await graphql(client, district.manager_token, FORCE_UPDATE)

    assert response.status_code == 200, response.text
    payload = response.json()["data"]["forceLicenseUpdate"]
    [error] = payload["errors"]
    assert error["code"] == code
    assert payload["updated"] is False
    assert payload["license"]["stale"] is True  # the last good license is kept
    [event] = audit_failures(service, district.id)
    shown = {
        "forceLicenseUpdate error": error["message"],
        "License.lastSyncError": payload["license"]["lastSyncError"],
        "audit entry": event.detail,
    }
    forbidden = [str(service.settings.data_dir.resolve()), str(service.settings.data_dir)]
    for where, text in shown.items():
        assert text, where
        for secret in forbidden:
            assert secret not in text, f"{where} shows a server path: {text}"
        assert not re.search(r"(^|\s)/\w", text), f"{where} shows a path: {text}"
        assert "127.0.0.1" not in text, f"{where} shows the server's address: {text}"
        assert not INTERNALS.search(text), f"{where} shows internals: {text}"
    # What the operator needs is in the log, on a line with the press's request id.
    request_id = response.headers["X-Request-ID"]
    logged = [
        record
        for record in caplog.records
        if getattr(record, "request_id", None) == request_id and code in record.getMessage()
    ]
    assert logged, [record.getMessage() for record in caplog.records]


def audit_failures(service: Any, district_id: int) -> list[AuditEvent]:
    with service.database.read() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.district_id == district_id,
                    AuditEvent.action == "force_license_update",
                    AuditEvent.outcome == "failed",
                )
                .order_by(col(AuditEvent.id))
            ).all()
        )


async def test_the_log_line_says_where_the_missing_license_file_was_looked_for(
    client, make_district, service, caplog
):
    district = await make_district(SLUG, seats=1000, active=10)
    path = service.settings.license_file_for(SLUG)
    path.unlink()

    response = await graphql(client, district.manager_token, FORCE_UPDATE)

    message = response.json()["data"]["forceLicenseUpdate"]["errors"][0]["message"]
    assert message.startswith("There is no license file yet.")
    assert str(path) not in message
    assert f"No license file at {path}" in caplog.text
