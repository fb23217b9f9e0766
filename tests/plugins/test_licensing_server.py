"""The licensing-server adapter against the reference server, under uvicorn on 127.0.0.1.

The reference server (app/dev_license_server.py) sits behind a switch that makes it misbehave
the way a real server can: 500s, hangs, 429s, foreign signatures, another district's license, an
old answer. Every case goes through the host's own refresh, so what is asserted is what a district
sees: the last good license kept and marked stale, and the dashboard still answering.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.responses import Response

from app.dev_license_server import create_license_server, error_response
from app.runtime import build_service
from licensing.orchestration.plugin_host import load_plugins, plugin_host
from licensing.orchestration.service import LicensingService
from licensing.settings import DistrictConfig, HttpSettings, Settings
from licensing.storage import signing
from licensing.storage.tokens import Permission
from plugins.builtin import licensing_server
from plugins.builtin.licensing_server import LicensingServerSource
from tests.fakes.serve import serve
from tests.fakes.tls import untrusted_https_server
from tests.utils.cli import run
from tests.utils.districts import (
    TEST_KEY_ID,
    create_district,
    new_signing_key,
    students,
    token_for,
)
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

SLUG = "riverside"
OTHER = "hillview"
API_KEY = "riverside-api-key-0123456789abcdef"
FAST_HTTP = HttpSettings(backoff_seconds=0.01, max_backoff_seconds=0.05, attempt_deadline_seconds=1)
DASHBOARD = """
{
  license { display total status stale lastSyncedAt lastSyncStatus lastSyncError }
  usage { activeStudents }
  alerts { kind }
}
"""


def license_terms(slug: str = SLUG, *, seats: Any = 1000, district: str | None = None, **changes):
    terms = signing.LicenseTerms(
        license_id=f"M1T1-{slug.upper()}",
        district=district or slug,
        licensed_to="Riverside Unified School District",
        legal_entity_name="Riverside USD No. 12",
        total=seats,
        created_on=date(2023, 8, 1),
        expires_on=date(2027, 6, 30),
        deactivated=False,
        overage_allowance=0.05,
        issued_at=datetime(2026, 11, 1, tzinfo=UTC),
    )
    return replace(terms, **changes)


# --- The upstream: the reference server behind a switch ------------------------------------------


class Upstream:
    """The reference licensing server, and the ways a real one goes wrong, one ``mode`` at a time."""

    def __init__(self, *, signing_key: Any, clock: Callable[[], datetime]) -> None:
        self.licenses = {SLUG: license_terms(SLUG), OTHER: license_terms(OTHER)}
        self.mode = "ok"
        self.skew = timedelta(0)
        self.retry_after = "1"
        self.hits: list[float] = []  # monotonic time of each request
        self.headers: list[dict[str, str]] = []
        self.closing = False
        api_keys = {API_KEY: SLUG, "hillview-key": OTHER}

        def signing_clock() -> datetime:
            return clock() + self.skew

        self.genuine = create_license_server(
            signing_key=signing_key,
            licenses=self.licenses,
            api_keys=api_keys,
            key_id=TEST_KEY_ID,
            clock=signing_clock,
        )
        self.impostor = create_license_server(
            signing_key=new_signing_key(),
            licenses=self.licenses,
            api_keys=api_keys,
            key_id=TEST_KEY_ID,
            clock=signing_clock,
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.hits.append(time.monotonic())
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        mode = self.mode
        app: Any = self.genuine
        if mode == "error":
            app = error_response(500, "INTERNAL", "The license database is down.")
        elif mode == "hang":
            while not self.closing:  # until the test ends: far beyond any attempt's deadline
                await asyncio.sleep(0.02)
            app = error_response(503, "UNAVAILABLE", "Shutting down.")
        elif mode == "rate_limited_once":
            self.mode = "ok"
            app = error_response(
                429,
                "RATE_LIMITED",
                "Too many requests.",
                headers={"Retry-After": self.retry_after},
            )
        elif mode == "impostor":
            app = self.impostor
        elif mode == "not_an_envelope":
            app = Response("<html><body>Maintenance</body></html>", media_type="text/html")
        await app(scope, receive, send)

    def attempts(self) -> int:
        return len(self.hits)


@pytest.fixture
def upstream(signing_key: Any, clock: Any) -> Iterator[Upstream]:
    server = Upstream(signing_key=signing_key, clock=clock)
    yield server
    server.closing = True


@pytest.fixture
def server_url(upstream: Upstream) -> Iterator[str]:
    with serve(upstream) as url:
        yield url
        upstream.closing = True  # release hanging requests before uvicorn shuts down


def configured(
    settings: Settings, server_url: str, /, *, http: HttpSettings = FAST_HTTP, **options: Any
) -> Settings:
    """``settings`` with the district on the licensing server; ``options`` override its own."""
    district = DistrictConfig(
        license_source="licensing_server",
        license_options={"url": server_url, "api_key": API_KEY, **options},
    )
    return settings.model_copy(update={"districts": {SLUG: district}, "http": http})


@pytest.fixture
def settings(settings: Settings, server_url: str) -> Settings:
    """The conftest settings, with the district on the licensing server and fast HTTP."""
    return configured(settings, server_url)


@pytest.fixture
def build(clock: Any) -> Iterator[Callable[[Settings], LicensingService]]:
    """Build extra services (other options); each is disposed of at the end."""
    built: list[LicensingService] = []

    def make(settings: Settings) -> LicensingService:
        service = build_service(settings, upgrade_schema=True, clock=clock)
        built.append(service)
        return service

    yield make
    for service in built:
        service.database.dispose()


async def district_with_license(service: LicensingService) -> int:
    """The district, with a first good license fetched from the server."""
    district_id = create_district(service, slug=SLUG, roster=students(12))
    outcome = await service.license_updater.refresh(district_id=district_id, actor="test")
    assert outcome.problem is None, outcome.problem
    assert outcome.updated
    return district_id


async def refresh(service: LicensingService, district_id: int) -> Any:
    return await service.license_updater.refresh(district_id=district_id, actor="test")


def assert_kept_and_stale(service: LicensingService, district_id: int, *, total: int = 1000):
    view = service.read_district_state(district_id).license
    assert view is not None
    assert view.total == total
    assert view.stale
    assert view.last_sync_status == "failed"
    assert view.last_sync_error


# --- The plugin is there ---------------------------------------------------------------------------


def test_hook_register_license_sources_lists_licensing_server(settings):
    [registered] = licensing_server.register_license_sources(host=plugin_host(settings))
    assert isinstance(registered, LicensingServerSource)
    assert registered.name == "licensing_server"
    assert registered.description

    source = load_plugins(settings, load_entry_points=False).license_source("licensing_server")
    assert isinstance(source, LicensingServerSource)


# --- Good answers -----------------------------------------------------------------------------------


async def test_a_good_answer_is_verified_and_stored(service, upstream, client, clock):
    district_id = await district_with_license(service)

    assert upstream.attempts() == 1
    sent = upstream.headers[0]
    assert sent["authorization"] == f"Bearer {API_KEY}"
    assert sent["accept"] == "application/json"
    state = service.read_district_state(district_id)
    assert state.license.total == 1000
    assert state.license.licensed_to == "Riverside Unified School District"
    assert state.license.overage_allowance == 0.05
    assert not state.license.stale
    stored = json.loads(state.snapshot.license.payload)
    assert stored["signed_at"] == "2026-11-28T15:00:00Z"

    # Signed anew a minute later, same terms: the license is unchanged, not "updated".
    clock.advance(minutes=1)
    again = await refresh(service, district_id)
    assert (again.problem, again.updated) == (None, False)

    # Buying more seats on the server shows after the next refresh.
    upstream.licenses[SLUG] = license_terms(seats=1100, issued_at=clock())
    bought = await refresh(service, district_id)
    assert (bought.problem, bought.updated) == (None, True)
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    data = await graphql_data(client, token, DASHBOARD)
    assert data["license"]["display"] == "12 / 1100"
    assert data["license"]["stale"] is False
    assert data["license"]["lastSyncStatus"] == "UPDATED"


@pytest.mark.parametrize("skew_minutes", [-4, 4])
async def test_an_answer_signed_within_five_minutes_is_accepted(service, upstream, skew_minutes):
    upstream.skew = timedelta(minutes=skew_minutes)

    await district_with_license(service)


# --- Failures keep the last good license --------------------------------------------------------------


async def test_server_errors_keep_the_license_stale_after_one_attempt_and_three_retries(
    service, upstream, client
):
    district_id = await district_with_license(service)
    upstream.hits.clear()
    upstream.mode = "error"

    outcome = await refresh(service, district_id)

    assert upstream.attempts() == 1 + 3
    assert outcome.problem.code == "LICENSE_SOURCE_UNAVAILABLE"
    assert "HTTP 500" in outcome.problem.message
    # The server's own words are for the operator's log, not for the district.
    assert "The license database is down" not in outcome.problem.message
    assert "INTERNAL: The license database is down" in outcome.detail
    assert "4 attempt(s)" in outcome.problem.message
    assert "Traceback" not in outcome.problem.message
    assert_kept_and_stale(service, district_id)
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    data = await graphql_data(client, token, DASHBOARD)
    assert data["license"]["total"] == 1000
    assert data["license"]["status"] == "ACTIVE"
    assert data["license"]["stale"] is True
    assert data["license"]["lastSyncStatus"] == "FAILED"
    assert "HTTP 500" in data["license"]["lastSyncError"]
    assert data["license"]["lastSyncedAt"] is not None


async def test_a_server_whose_certificate_is_not_trusted_is_said_so_after_one_attempt(
    settings, build, service, tmp_path
):
    district_id = await district_with_license(service)
    async with untrusted_https_server(tmp_path) as untrusted:
        elsewhere = build(configured(settings, untrusted.url))

        outcome = await refresh(elsewhere, district_id)

    assert untrusted.connections == 1  # a certificate that is not trusted is not asked again
    assert outcome.problem.code == "LICENSE_SOURCE_UNAVAILABLE"
    assert outcome.problem.message.startswith(
        "The licensing server was not asked for the license: the server's TLS certificate is "
        "not trusted (self-signed certificate); if a private certificate authority signed it, "
        "set SSL_CERT_FILE to that authority's certificate."
    ), outcome.problem.message
    assert outcome.problem.message.endswith("The last good license is kept.")
    assert "attempt" not in outcome.problem.message
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail  # the operator's log has the whole error
    assert_kept_and_stale(elsewhere, district_id)


async def test_a_hanging_server_is_given_up_on_in_bounded_time_and_graphql_keeps_answering(
    service, upstream, client
):
    district_id = await district_with_license(service)
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    upstream.hits.clear()
    upstream.mode = "hang"

    started = time.monotonic()
    pending = asyncio.create_task(refresh(service, district_id))
    answered = 0
    while not pending.done():  # the dashboard, asked while the refresh hangs
        data = await graphql_data(client, token, DASHBOARD)
        assert data["license"]["display"] == "12 / 1000"
        answered += 1
        await asyncio.sleep(0.1)
    outcome = await pending
    elapsed = time.monotonic() - started

    assert answered >= 5
    # Four attempts of at most 1 s each, and three short backoffs: never the server's pace.
    assert upstream.attempts() == 4
    assert 4 * FAST_HTTP.attempt_deadline_seconds <= elapsed < 4 + 3 * 0.05 + 2
    assert outcome.problem.code == "LICENSE_SOURCE_UNAVAILABLE"
    assert "did not answer in time" in outcome.problem.message
    assert_kept_and_stale(service, district_id)
    data = await graphql_data(client, token, DASHBOARD)
    assert data["license"]["stale"] is True


async def test_a_foreign_signature_is_refused(service, upstream, client):
    district_id = await district_with_license(service)
    upstream.mode = "impostor"

    outcome = await refresh(service, district_id)

    assert outcome.problem.code == "BAD_SIGNATURE"
    assert_kept_and_stale(service, district_id)
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    assert (await graphql_data(client, token, DASHBOARD))["license"]["stale"] is True


async def test_an_answer_that_is_not_a_license_document_is_refused_as_damaged(service, upstream):
    district_id = await district_with_license(service)
    upstream.mode = "not_an_envelope"

    outcome = await refresh(service, district_id)

    assert outcome.problem.code == "BAD_SIGNATURE"
    assert "without a license document" in outcome.problem.message
    assert_kept_and_stale(service, district_id)


async def test_another_districts_license_is_refused(service, upstream):
    district_id = await district_with_license(service)
    upstream.licenses[SLUG] = license_terms(seats=5000, district=OTHER)

    outcome = await refresh(service, district_id)

    assert outcome.problem.code == "WRONG_DISTRICT"
    assert_kept_and_stale(service, district_id)


@pytest.mark.parametrize(("skew_minutes", "said"), [(-10, "10 min ago"), (10, "10 min ahead")])
async def test_an_answer_signed_ten_minutes_away_is_refused_as_stale(
    service, upstream, skew_minutes, said, caplog
):
    district_id = await district_with_license(service)
    upstream.licenses[SLUG] = license_terms(
        seats=1100, issued_at=datetime(2026, 11, 20, tzinfo=UTC)
    )
    upstream.skew = timedelta(minutes=skew_minutes)

    outcome = await refresh(service, district_id)

    assert outcome.problem.code == "STALE_RESPONSE"
    assert said in outcome.problem.message
    assert_kept_and_stale(service, district_id)
    assert any("STALE_RESPONSE" in record.getMessage() for record in caplog.records)


async def test_a_refused_api_key_or_unknown_district_is_not_retried(
    settings, build, upstream, server_url
):
    wrong_key = build(configured(settings, server_url, api_key="not-the-key"))
    district_id = create_district(wrong_key, slug=SLUG)

    outcome = await refresh(wrong_key, district_id)

    assert upstream.attempts() == 1
    assert outcome.problem.code == "LICENSE_SOURCE_UNAVAILABLE"
    assert "refused the API key (HTTP 401)" in outcome.problem.message
    assert "HTTP 401: UNAUTHORIZED" in outcome.detail
    assert "not-the-key" not in outcome.problem.message

    other_key = build(configured(settings, server_url, api_key="hillview-key"))
    outcome = await refresh(other_key, district_id)  # same database, other key

    assert upstream.attempts() == 2
    assert "has no license for this district (HTTP 404)" in outcome.problem.message
    assert "HTTP 404: UNKNOWN_DISTRICT" in outcome.detail


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"url": None}, 'has no "url"'),
        ({"api_key": ""}, "LICENSING_DISTRICTS__RIVERSIDE__LICENSE_OPTIONS__API_KEY"),
        ({"url": "ftp://licensing.example.com"}, "is not an http(s) address"),
        ({"url": "http://licensing.example.com"}, "plain http"),
        ({"breaker_failures": 0}, "breaker_failures must be a positive number"),
    ],
)
async def test_bad_options_are_explained(settings, build, upstream, server_url, options, complaint):
    service = build(configured(settings, server_url, **options))

    outcome = await refresh(service, create_district(service, slug=SLUG))

    assert outcome.problem.code == "LICENSE_SOURCE_UNAVAILABLE"
    assert complaint in outcome.problem.message
    assert upstream.attempts() == 0


# --- Retry-After and the circuit breaker ------------------------------------------------------------


async def test_retry_after_is_honoured(settings, build, upstream, server_url):
    patient = HttpSettings(backoff_seconds=0.01, max_backoff_seconds=5, attempt_deadline_seconds=1)
    service = build(configured(settings, server_url, http=patient))
    district_id = create_district(service, slug=SLUG)
    upstream.mode = "rate_limited_once"
    upstream.retry_after = "1"

    outcome = await refresh(service, district_id)

    assert outcome.problem is None
    assert upstream.attempts() == 2
    waited = upstream.hits[1] - upstream.hits[0]
    assert 0.95 <= waited < 3


async def test_the_circuit_opens_fails_fast_and_closes_after_recovery(
    settings, build, upstream, server_url, clock
):
    no_retries = FAST_HTTP.model_copy(update={"retries": 0})
    service = build(
        configured(
            settings,
            server_url,
            http=no_retries,
            breaker_failures=3,
            breaker_recovery_seconds=1,
        )
    )
    district_id = await district_with_license(service)
    upstream.hits.clear()
    upstream.mode = "error"

    for _ in range(3):
        outcome = await refresh(service, district_id)
        assert "HTTP 500" in outcome.problem.message
    assert upstream.attempts() == 3

    # Open: answered at once, without a request.
    started = time.monotonic()
    outcome = await refresh(service, district_id)
    assert time.monotonic() - started < 0.5
    assert upstream.attempts() == 3
    assert "circuit open, retry after 1 s" in outcome.problem.message
    assert_kept_and_stale(service, district_id)

    # Half-open after the recovery time: one trial request; it fails, so the circuit reopens.
    clock.advance(seconds=1.1)
    await refresh(service, district_id)
    assert upstream.attempts() == 4
    outcome = await refresh(service, district_id)
    assert upstream.attempts() == 4
    assert "circuit open" in outcome.problem.message

    # The server recovers: the next trial succeeds and the circuit is closed again.
    upstream.mode = "ok"
    clock.advance(seconds=1.1)
    outcome = await refresh(service, district_id)
    assert outcome.problem is None
    assert upstream.attempts() == 5
    assert not service.read_district_state(district_id).license.stale

    # Closed and counting from zero: a single failure asks the server again next time.
    upstream.mode = "error"
    await refresh(service, district_id)
    await refresh(service, district_id)
    assert upstream.attempts() == 7


async def test_the_circuit_is_per_district(settings, build, upstream, server_url):
    options = {"url": server_url, "breaker_failures": 1, "breaker_recovery_seconds": 60}
    districts = {
        SLUG: DistrictConfig(
            license_source="licensing_server", license_options={**options, "api_key": API_KEY}
        ),
        OTHER: DistrictConfig(
            license_source="licensing_server",
            license_options={**options, "api_key": "hillview-key"},
        ),
    }
    service = build(
        settings.model_copy(
            update={"districts": districts, "http": FAST_HTTP.model_copy(update={"retries": 0})}
        )
    )
    riverside, hillview = create_district(service, slug=SLUG), create_district(service, slug=OTHER)
    upstream.mode = "error"
    await refresh(service, riverside)
    assert "circuit open" in (await refresh(service, riverside)).problem.message
    assert upstream.attempts() == 1

    upstream.mode = "ok"
    outcome = await refresh(service, hillview)

    assert outcome.problem is None
    assert upstream.attempts() == 2


# --- The reference server itself ------------------------------------------------------------------


@asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        yield http


async def test_the_reference_server_speaks_the_contract(signing_key, clock):
    app = create_license_server(
        signing_key=signing_key,
        licenses={SLUG: license_terms()},
        api_keys={API_KEY: SLUG, "any-district": "*"},
        key_id="m1t1-2026",
        clock=clock,
    )
    path = f"/v1/districts/{SLUG}/license"
    async with asgi_client(app) as http:
        good = await http.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
        anyone = await http.get(path, headers={"Authorization": "Bearer any-district"})
        no_key = await http.get(path)
        bad_key = await http.get(path, headers={"Authorization": "Bearer nope"})
        unknown = await http.get(
            "/v1/districts/nowhere/license", headers={"Authorization": "Bearer any-district"}
        )
        not_yours = await http.get(
            "/v1/districts/nowhere/license", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        wrong_method = await http.post(path, headers={"Authorization": f"Bearer {API_KEY}"})

    assert good.status_code == anyone.status_code == 200
    assert good.headers["content-type"] == "application/json"
    assert good.headers["cache-control"] == "no-store"
    envelope = good.json()
    assert set(envelope) == {"format", "version", "key_id", "payload", "signature"}
    assert (envelope["format"], envelope["version"], envelope["key_id"]) == (
        "manage1to1-license",
        1,
        "m1t1-2026",
    )
    payload = base64.b64decode(envelope["payload"])
    signing_key.public_key().verify(base64.b64decode(envelope["signature"]), payload)
    assert json.loads(payload) == {
        "license_id": "M1T1-RIVERSIDE",
        "district": SLUG,
        "licensed_to": "Riverside Unified School District",
        "legal_entity_name": "Riverside USD No. 12",
        "seats": 1000,
        "created": "2023-08-01",
        "expires": "2027-06-30",
        "status": "active",
        "overage_allowance": 0.05,
        "issued_at": "2026-11-01T00:00:00+00:00",
        "signed_at": "2026-11-28T15:00:00Z",
    }
    for response, status, code in [
        (no_key, 401, "UNAUTHORIZED"),
        (bad_key, 401, "UNAUTHORIZED"),
        (unknown, 404, "UNKNOWN_DISTRICT"),
        (not_yours, 404, "UNKNOWN_DISTRICT"),
        (wrong_method, 405, "METHOD_NOT_ALLOWED"),
    ]:
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["message"]
    assert no_key.headers["www-authenticate"].startswith("Bearer")


# --- The command line --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "example.com", "::"])
def test_dev_license_server_refuses_a_host_other_than_loopback(host):
    result = run("dev", "license-server", "--host", host, expect=2)

    assert "loopback only" in result.stderr


async def test_dev_license_server_serves_the_license_files_signed_anew(tmp_path, monkeypatch):
    key_path = tmp_path / "keys" / "m1t1-dev.pem"
    private_key = signing.generate_signing_key(key_path, tmp_path / "keys" / "m1t1-dev.pub")
    issued = signing.sign_license(license_terms(), private_key=new_signing_key(), key_id="old")
    folder = tmp_path / ".data" / "licenses"  # <data_dir>/licenses, data_dir defaulting to .data
    folder.mkdir(parents=True)
    (folder / f"{SLUG}.license").write_bytes(issued.to_envelope())
    served: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        served.update(options, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = run("dev", "license-server", "--key", str(key_path), "--api-key", API_KEY)

    assert (served["host"], served["port"]) == ("127.0.0.1", 8765)
    assert 'license_source = "licensing_server"' in result.stderr
    assert f'url = "http://127.0.0.1:8765", api_key = "{API_KEY}"' in result.stderr
    async with asgi_client(served["app"]) as http:
        response = await http.get(
            f"/v1/districts/{SLUG}/license", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        missing = await http.get(
            f"/v1/districts/{OTHER}/license", headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert missing.status_code == 404
    signed = signing.SignedLicense.from_envelope(response.content)
    assert signed.key_id == "m1t1-dev"
    keys = [signing.TrustedKey("m1t1-dev", private_key.public_key())]
    now = datetime.now(UTC)
    terms = signing.verify_license(
        replace(signed, max_age=timedelta(minutes=5)), keys=keys, district_slug=SLUG, now=now
    )
    assert terms == license_terms()


# --- Options reach every license source ------------------------------------------------------------


async def test_license_options_reach_the_license_file_source_too(
    settings, build, signing_key, tmp_path
):
    path = tmp_path / "elsewhere" / "riverside-2026.license"
    path.parent.mkdir()
    signed = signing.sign_license(license_terms(seats=750), private_key=signing_key, key_id="test")
    path.write_bytes(signed.to_envelope())
    district = DistrictConfig(license_source="license_file", license_options={"path": str(path)})
    service = build(settings.model_copy(update={"districts": {SLUG: district}}))
    district_id = create_district(service, slug=SLUG)

    outcome = await refresh(service, district_id)

    assert outcome.problem is None
    assert service.read_district_state(district_id).license.total == 750


# --- Signed answers with values that do not fit --------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seats": 10**20}, "seats"),
        ({"seats": True}, "seats"),
        ({"licensed_to": "Riverside Unified " * 12}, "licensed_to"),
        ({"licensed_to": "Riverside\x00USD"}, "licensed_to"),
        ({"license_id": "M1T1-" + "9" * 200}, "license_id"),
        ({"overage_allowance": float("inf")}, "overage_allowance"),
    ],
)
async def test_a_signed_answer_with_values_that_do_not_fit_is_refused_and_recorded(
    service, upstream, client, changes, field
):
    district_id = await district_with_license(service)
    upstream.licenses[SLUG] = license_terms(**changes)

    outcome = await refresh(service, district_id)

    assert outcome.problem.code == "MALFORMED_LICENSE"
    assert field in outcome.problem.message
    assert_kept_and_stale(service, district_id)
    view = service.read_district_state(district_id).license
    assert field in view.last_sync_error
    assert "INSERT" not in view.last_sync_error and "UPDATE" not in view.last_sync_error
    token = token_for(service, district_id, Permission.VIEW_LICENSE)
    data = await graphql_data(client, token, DASHBOARD)
    assert data["license"]["total"] == 1000
    assert data["license"]["stale"] is True
