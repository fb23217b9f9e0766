"""The built-in webhook plugin, end to end, against a receiver served on 127.0.0.1.

The receiver verifies every request the way the documentation tells integrators to, with its own
code (not the plugin's helpers), and refuses a request whose signature does not check out: a
delivery it accepts was signed with the shared secret over the exact bytes it received.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.models import Alert, WebhookDelivery
from licensing.orchestration import webhooks
from licensing.orchestration.service import LicensingService
from licensing.settings import DistrictConfig, HttpSettings, Settings, WebhookConfig
from plugins.records import AlertNotice, DistrictRef
from tests.fakes.serve import serve
from tests.fakes.tls import untrusted_https_server
from tests.utils.clock import FakeClock
from tests.utils.districts import public_key_text, students
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

SLUG = "riverside"
SECRET = "whsec-riverside-0123456789abcdef"
TOLERANCE_SECONDS = 300


class Receiver:
    """An integrator's endpoint: checks the signature, records what it accepted, and answers
    with the statuses it is told to (then 200)."""

    def __init__(self, secret: str, clock: FakeClock) -> None:
        self.secret = secret
        self.clock = clock
        self.statuses: list[int] = []
        self.accepted: list[dict[str, Any]] = []  # signature verified, answered 2xx
        self.attempts: list[dict[str, Any]] = []  # signature verified, whatever the answer
        self.rejected: list[str] = []
        self.lock = threading.Lock()
        self.url = ""
        self.app = Starlette(routes=[Route("/hooks", self.hook, methods=["POST"])])

    def verify(self, header: str, body: bytes) -> str | None:
        """None when the signature is good, else why not."""
        try:
            fields = dict(part.split("=", 1) for part in header.split(","))
            timestamp = int(fields["t"])
            given = fields["v1"]
        except (KeyError, ValueError):
            return "malformed signature header"
        if abs(self.clock().timestamp() - timestamp) > TOLERANCE_SECONDS:
            return "stale timestamp"
        expected = hmac.new(
            self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, given):
            return "bad signature"
        return None

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        problem = self.verify(request.headers.get("X-Manage1to1-Signature", ""), body)
        with self.lock:
            if problem is not None:
                self.rejected.append(problem)
                return Response(problem, status_code=401)
            delivery = {"headers": dict(request.headers), "body": json.loads(body)}
            self.attempts.append(delivery)
            status = self.statuses.pop(0) if self.statuses else 200
            if 200 <= status < 300:
                self.accepted.append(delivery)
            return Response(status_code=status)


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[Receiver]:
    endpoint = Receiver(SECRET, clock)
    with serve(endpoint.app) as base_url:
        endpoint.url = f"{base_url}/hooks"
        yield endpoint


@pytest.fixture
def settings(
    tmp_path: Any, signing_key: Any, receiver: Receiver, new_database_url: Any
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=new_database_url(migrated=True),
        license_public_keys=[public_key_text(signing_key)],
        http=HttpSettings(attempt_deadline_seconds=5, read_timeout_seconds=5),
        districts={SLUG: DistrictConfig(webhooks=[WebhookConfig(url=receiver.url, secret=SECRET)])},
    )


@pytest.fixture
async def district(make_district: Any) -> Any:
    return await make_district(SLUG, seats=1000, active=900, threshold=50)


def cross_the_threshold(service: LicensingService, district: Any) -> Alert:
    """960 of 1000 licenses used, threshold 50: LICENSES_LOW is raised."""
    service.apply_roster(
        district.id,
        source="local",
        records=students(60, start=901, prefix=f"{SLUG}-"),
        replace=False,
    )
    with service.database.read() as session:
        return session.exec(select(Alert).where(Alert.kind == "LICENSES_LOW")).one()


def deliveries(service: LicensingService) -> list[WebhookDelivery]:
    with service.database.read() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all())


async def deliver(service: LicensingService, **options: Any) -> int:
    return await webhooks.deliver_pending(
        database=service.database, settings=service.settings, clock=service.clock, **options
    )


def no_jitter(cap: float) -> float:
    return cap


async def test_raised_then_resolved_by_a_license_increase_delivers_each_once(
    service, district, issuer, receiver, clock
):
    alert = cross_the_threshold(service, district)

    assert await service.dispatch_notifications() == 1
    assert await service.deliver_webhooks() == 1

    [raised] = receiver.accepted
    headers, body = raised["headers"], raised["body"]
    assert headers["idempotency-key"] == f"alert_raised:{alert.id}"
    assert headers["x-manage1to1-event"] == "alert_raised"
    assert headers["content-type"] == "application/json"
    assert body["event"] == "alert_raised"
    assert body["idempotency_key"] == f"alert_raised:{alert.id}"
    assert body["district"] == {"slug": SLUG, "name": "Test District"}
    assert body["alert"] == {
        "id": alert.id,
        "node_id": base64.b64encode(f"Alert:{alert.id}".encode()).decode("ascii"),
        "kind": "LICENSES_LOW",
        "severity": "WARNING",
        "message": alert.message,
        "placements": ["DASHBOARD", "LICENSE_BANNER", "SYSTEM_INDICATOR"],
        "raised_at": "2026-11-28T15:00:00Z",
        "resolved_at": None,
    }
    assert body["occurred_at"] == "2026-11-28T15:00:00Z"
    assert body["sent_at"] == "2026-11-28T15:00:00Z"

    # Six hours later a license increase arrives through a refresh: the alert resolves.
    clock.advance(hours=6)
    issuer.write(SLUG, seats=2000)
    await district.refresh_license()
    assert await service.dispatch_notifications() == 1
    assert await service.deliver_webhooks() == 1

    # Running the steps again sends nothing more.
    assert await service.dispatch_notifications() == 0
    assert await service.deliver_webhooks() == 0
    assert [d["headers"]["idempotency-key"] for d in receiver.accepted] == [
        f"alert_raised:{alert.id}",
        f"alert_resolved:{alert.id}",
    ]
    resolved = receiver.accepted[1]["body"]
    assert resolved["event"] == "alert_resolved"
    assert resolved["alert"]["resolved_at"] == "2026-11-28T21:00:00Z"
    assert receiver.rejected == []

    log = await service.webhook_deliveries(district.id)
    assert [(row.event, row.status, row.attempts, row.last_status_code) for row in log] == [
        ("alert_resolved", "delivered", 1, 200),
        ("alert_raised", "delivered", 1, 200),
    ]
    assert log[0].delivered_at == clock()
    # History is kept: the alert is stored resolved.
    [past] = await service.alert_history(district.id)
    assert past.id == alert.id and past.resolved_at == clock()


async def test_the_alert_in_a_webhook_is_found_over_graphql_by_its_node_id(
    client, service, district, receiver
):
    """A receiver passes the body's node_id to node(id:) and gets the alert the API lists."""
    cross_the_threshold(service, district)
    await service.dispatch_notifications()
    await service.deliver_webhooks()
    [delivery] = receiver.accepted
    node_id = delivery["body"]["alert"]["node_id"]

    data = await graphql_data(
        client,
        district.viewer_token,
        "query($id: ID!) { node(id: $id) { id ... on Alert { kind raisedAt } } alerts { id } }",
        {"id": node_id},
    )
    assert data["node"] == {
        "id": node_id,
        "kind": "LICENSES_LOW",
        "raisedAt": "2026-11-28T15:00:00+00:00",
    }
    assert [alert["id"] for alert in data["alerts"]] == [node_id]


async def test_a_failed_attempt_is_retried_after_the_backoff_and_delivered_once(
    service, district, receiver, clock
):
    alert = cross_the_threshold(service, district)
    await service.dispatch_notifications()
    receiver.statuses = [500]

    assert await deliver(service, jitter=no_jitter) == 0
    [row] = deliveries(service)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.last_error == "HTTP 500 Internal Server Error"
    # The first failure waits up to 30 s x 2^1.
    assert row.next_attempt_at == clock() + timedelta(seconds=60)

    # Not due yet: nothing is sent.
    clock.advance(seconds=59)
    assert await deliver(service, jitter=no_jitter) == 0
    assert len(receiver.attempts) == 1

    clock.advance(seconds=1)
    assert await deliver(service, jitter=no_jitter) == 1
    assert await deliver(service, jitter=no_jitter) == 0

    assert [d["headers"]["idempotency-key"] for d in receiver.attempts] == [
        f"alert_raised:{alert.id}"
    ] * 2
    assert len(receiver.accepted) == 1
    [row] = deliveries(service)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "delivered",
        2,
        200,
        None,
    )


async def test_a_delivery_fails_for_good_after_ten_attempts(service, district, receiver, clock):
    cross_the_threshold(service, district)
    await service.dispatch_notifications()
    receiver.statuses = [503] * webhooks.MAX_ATTEMPTS
    waits = []

    for attempt in range(1, webhooks.MAX_ATTEMPTS + 1):
        assert await deliver(service, jitter=no_jitter) == 0
        [row] = deliveries(service)
        assert row.attempts == attempt
        if row.next_attempt_at is not None:
            wait = row.next_attempt_at - clock()
            waits.append(wait.total_seconds())
            clock.advance(seconds=wait.total_seconds())

    assert row.status == "failed"
    assert waits == [30 * 2**n for n in range(1, webhooks.MAX_ATTEMPTS)]
    clock.advance(days=2)
    assert await deliver(service) == 0
    assert len(receiver.attempts) == webhooks.MAX_ATTEMPTS
    assert receiver.accepted == []


async def test_backoff_has_full_jitter_and_a_cap(service, district, receiver, clock):
    assert webhooks.backoff_cap_seconds(1) == 60
    assert webhooks.backoff_cap_seconds(20) == 6 * 3600
    cross_the_threshold(service, district)
    await service.dispatch_notifications()
    receiver.statuses = [500]
    caps = []

    await deliver(service, jitter=lambda cap: caps.append(cap) or cap / 4)

    assert caps == [60]
    [row] = deliveries(service)
    assert row.next_attempt_at == clock() + timedelta(seconds=15)


async def test_an_unreachable_endpoint_is_retried(service, district, receiver, clock):
    cross_the_threshold(service, district)
    await service.dispatch_notifications()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert await deliver(service, transport=httpx.MockTransport(refuse), jitter=no_jitter) == 0
    [row] = deliveries(service)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert "ConnectError" in row.last_error

    clock.advance(minutes=1)
    assert await deliver(service) == 1
    assert len(receiver.accepted) == 1


async def test_an_endpoint_whose_certificate_is_not_trusted_is_said_so_and_retried_later(
    service, district, tmp_path
):
    async with untrusted_https_server(tmp_path) as untrusted:
        url = f"{untrusted.url}/hooks"
        service.settings.districts[SLUG] = DistrictConfig(
            webhooks=[WebhookConfig(url=url, secret=SECRET)]
        )
        cross_the_threshold(service, district)
        await service.dispatch_notifications()

        assert await deliver(service, jitter=no_jitter) == 0

    assert untrusted.connections == 1
    [row] = deliveries(service)
    assert (row.status, row.attempts, row.endpoint) == ("pending", 1, url)
    assert row.last_error.startswith(
        "the server's TLS certificate is not trusted (self-signed certificate); if a private "
        "certificate authority signed it, set SSL_CERT_FILE"
    ), row.last_error


async def test_repeated_notification_steps_and_dispatch_never_duplicate(
    service, district, receiver
):
    alert = cross_the_threshold(service, district)
    assert await service.dispatch_notifications() == 1
    notice = AlertNotice(
        id=alert.id,
        kind=alert.kind,
        severity=alert.severity,
        message=alert.message,
        placements=tuple(alert.placements.split(",")),
        raised_at=alert.raised_at,
        resolved_at=None,
        event="alert_raised",
    )
    ref = DistrictRef(slug=SLUG, official_name="Test District", time_zone="UTC")

    # What a crash before the cursor moved would do: the step enqueues the same alert again.
    assert webhooks.enqueue_alert(service.database, notice, ref, service.settings) == 0
    await service.dispatch_notifications()
    assert await service.deliver_webhooks() == 1
    assert webhooks.enqueue_alert(service.database, notice, ref, service.settings) == 0
    assert await service.deliver_webhooks() == 0

    assert len(deliveries(service)) == 1
    assert len(receiver.attempts) == 1


async def test_the_receiver_refuses_a_tampered_or_badly_signed_request(receiver, clock):
    body = json.dumps({"event": "alert_raised", "idempotency_key": "alert_raised:1"}).encode()
    now = int(clock().timestamp())
    good = webhooks.signature_header(SECRET, now, body)

    async with httpx.AsyncClient() as client:

        async def post(content: bytes, signature: str) -> int:
            response = await client.post(
                receiver.url,
                content=content,
                headers={"X-Manage1to1-Signature": signature, "Content-Type": "application/json"},
            )
            return response.status_code

        assert await post(body, good) == 200
        assert await post(body.replace(b"alert_raised:1", b"alert_raised:2"), good) == 401
        assert await post(body, webhooks.signature_header("another-secret-0123", now, body)) == 401
        assert await post(body, webhooks.signature_header(SECRET, now - 3600, body)) == 401
        assert await post(body, "v1=" + good.split("v1=")[1]) == 401

    assert len(receiver.accepted) == 1
    assert receiver.rejected == [
        "bad signature",
        "bad signature",
        "stale timestamp",
        "malformed signature header",
    ]


async def test_a_delivery_signed_with_another_secret_is_refused_and_retried(
    service, district, receiver, clock
):
    cross_the_threshold(service, district)
    await service.dispatch_notifications()
    receiver.secret = "the-integrators-rotated-secret"

    assert await deliver(service, jitter=no_jitter) == 0

    assert receiver.rejected == ["bad signature"]
    [row] = deliveries(service)
    assert (row.status, row.last_status_code) == ("pending", 401)


def test_signature_helpers_agree():
    body = b'{"event":"alert_raised"}'
    header = webhooks.signature_header(SECRET, 1_800_000_000, body)
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()

    assert header == f"t=1800000000,v1={expected}"
    assert webhooks.verify_signature(SECRET, header, body, now=1_800_000_100)
    assert not webhooks.verify_signature(SECRET, header, body + b" ", now=1_800_000_100)
    assert not webhooks.verify_signature(SECRET, header, body, now=1_800_001_000)
    assert not webhooks.verify_signature("x" * 16, header, body, now=1_800_000_000)
    assert not webhooks.verify_signature(SECRET, "garbage", body, now=1_800_000_000)


async def test_endpoints_receive_only_the_events_they_ask_for(
    tmp_path, signing_key, receiver, clock, new_database_url
):
    from app.runtime import build_service
    from tests.utils.districts import LicenseIssuer, TestDistrict, create_district

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=new_database_url("only-resolved", migrated=True),
        license_public_keys=[public_key_text(signing_key)],
        districts={
            SLUG: DistrictConfig(
                webhooks=[WebhookConfig(url=receiver.url, secret=SECRET, events=["alert_resolved"])]
            )
        },
    )
    service = build_service(settings, upgrade_schema=True, clock=clock)
    try:
        issuer = LicenseIssuer(service=service, key=signing_key)
        district_id = create_district(service, slug=SLUG, roster=students(960, prefix="r-"))
        issuer.write(SLUG, seats=1000)
        district = TestDistrict(service, district_id, SLUG)
        await district.refresh_license()  # 40 remaining: LICENSES_LOW raised
        assert await service.dispatch_notifications() == 1
        assert deliveries(service) == []

        issuer.write(SLUG, seats=2000)
        await district.refresh_license()
        assert await service.dispatch_notifications() == 1
        assert await service.deliver_webhooks() == 1
        assert [d["body"]["event"] for d in receiver.accepted] == ["alert_resolved"]
    finally:
        service.database.dispose()


async def test_a_delivery_to_an_endpoint_no_longer_configured_fails(
    service, district, receiver, clock
):
    cross_the_threshold(service, district)
    await service.dispatch_notifications()
    unconfigured = service.settings.model_copy(update={"districts": {}})

    assert (
        await webhooks.deliver_pending(
            database=service.database, settings=unconfigured, clock=clock
        )
        == 0
    )

    [row] = deliveries(service)
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.last_error == "The endpoint is no longer configured."
    assert receiver.attempts == []


@pytest.mark.parametrize(
    ("webhook", "problem"),
    [
        ({"url": "http://hooks.example.com/m1t1", "secret": SECRET}, "use https"),
        ({"url": "ftp://hooks.example.com/m1t1", "secret": SECRET}, "is not an http"),
        ({"url": "https://user:pw@hooks.example.com/", "secret": SECRET}, "credentials"),
        ({"url": "https://hooks.example.com/m1t1", "secret": "short"}, "at least 16"),
        (
            {"url": "https://hooks.example.com/m1t1", "secret": SECRET, "events": ["alert_lost"]},
            "alert_raised",
        ),
    ],
)
def test_webhook_configuration_is_checked(webhook, problem):
    with pytest.raises(ValidationError, match=problem):
        DistrictConfig(webhooks=[webhook])


def test_loopback_http_is_allowed_and_urls_are_unique():
    for url in ("http://127.0.0.1:8080/hooks", "http://localhost/hooks", "http://[::1]:9/x"):
        assert DistrictConfig(webhooks=[{"url": url, "secret": SECRET}]).webhooks[0].url == url
    same = {"url": "https://hooks.example.com/m1t1", "secret": SECRET}
    with pytest.raises(ValidationError, match="listed twice"):
        DistrictConfig(webhooks=[same, same])
    assert SECRET not in repr(DistrictConfig(webhooks=[same]))


async def test_the_scheduler_resolves_the_alert_by_a_scheduled_refresh_and_notifies_each_once(
    service, district, issuer, receiver, clock
):
    """Issue acceptance: raised when active students cross the threshold, resolved when a
    license increase arrives through a scheduled refresh, one signed delivery of each."""
    from licensing.orchestration.scheduled_jobs import service_scheduler

    alert = cross_the_threshold(service, district)
    scheduler = service_scheduler(service, holder="runner")

    await scheduler.tick()  # creates the jobs; the notification step runs at once
    assert [d["body"]["event"] for d in receiver.accepted] == ["alert_raised"]

    issuer.write(SLUG, seats=2000)
    clock.advance(minutes=2)  # the license refresh job is due
    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}
    assert outcomes[f"license_refresh:{district.id}"].ok
    clock.advance(seconds=10)
    await scheduler.tick()
    clock.advance(seconds=10)
    await scheduler.tick()

    assert [d["headers"]["idempotency-key"] for d in receiver.accepted] == [
        f"alert_raised:{alert.id}",
        f"alert_resolved:{alert.id}",
    ]
    assert receiver.rejected == []
    [past] = await service.alert_history(district.id)
    assert past.id == alert.id and past.resolved_at is not None
