"""Signed webhooks: a district's alerts POSTed as JSON to the endpoints it configures.

A product feature of the core, not a plugin: the notification step (``licensing.orchestration.notifications``)
enqueues each alert change with ``enqueue_alert``, in the service's one database, adding one row
per configured endpoint to the ``webhook_delivery`` table (the outbox), at most once per endpoint
and idempotency key, so a repeated step never sends twice. ``deliver_pending`` (run by the
scheduler) sends the rows that are due and records every attempt there: that table is the
delivery log the ``webhookDeliveries`` query shows. Third parties extend notifications through the
``alert_raised`` and ``alert_resolved`` hooks instead.

Each request carries ``Idempotency-Key``, ``X-Manage1to1-Event`` and ``X-Manage1to1-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>``. A 2xx answer
delivers; anything else (including a redirect, a timeout or a refused connection) is retried later
with capped exponential backoff and full jitter, and the delivery fails for good after
``MAX_ATTEMPTS`` attempts. See docs/plugins.md, "Webhooks".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from db.models import District, WebhookDelivery
from db.session import Database, stored_id
from licensing.domain.global_ids import global_id
from licensing.settings import DistrictConfig, Settings
from plugins.fields import describe_error
from plugins.http import create_client
from plugins.records import AlertNotice, DistrictRef

logger = logging.getLogger(__name__)

EVENT_HEADER = "X-Manage1to1-Event"
SIGNATURE_HEADER = "X-Manage1to1-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"

MAX_ATTEMPTS = 10
BACKOFF_BASE_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 6 * 3600.0
# A delivery being sent is claimed for this long, so another worker does not send it too; a
# worker that dies mid-send leaves it to be retried once the claim lapses.
CLAIM_SECONDS = 600.0
SEND_CONCURRENCY = 8
ERROR_TEXT_LIMIT = 2000

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# --- Enqueue ------------------------------------------------------------------------------------


def enqueue_alert(
    database: Database, alert: AlertNotice, district: DistrictRef, settings: Settings
) -> int:
    """Enqueue one delivery of ``alert`` per endpoint of ``district`` that wants its event;
    return how many were added (0 for endpoints that already have it)."""
    endpoints = [
        webhook.url
        for webhook in settings.district(district.slug).webhooks
        if alert.event in webhook.events
    ]
    if not endpoints:
        return 0
    with database.write() as session:
        district_id = session.exec(
            select(District.id).where(District.slug == district.slug)
        ).one_or_none()
        if district_id is None:
            logger.warning("No district %r: webhook for %s dropped.", district.slug, alert)
            return 0
        return enqueue_deliveries(
            session,
            district_id=district_id,
            alert=alert,
            district=district,
            endpoints=endpoints,
        )


def enqueue_deliveries(
    session: Session,
    *,
    district_id: int,
    alert: AlertNotice,
    district: DistrictRef,
    endpoints: Iterable[str],
) -> int:
    """Add a pending delivery per endpoint unless one with the alert's key exists already."""
    payload = json.dumps(alert_payload(alert, district), separators=(",", ":"))
    created_at = _occurred_at(alert)
    added = 0
    for endpoint in endpoints:
        exists = session.exec(
            select(WebhookDelivery.id).where(
                WebhookDelivery.endpoint == endpoint,
                WebhookDelivery.idempotency_key == alert.idempotency_key,
            )
        ).first()
        if exists is not None:
            continue
        try:
            with session.begin_nested():
                session.add(
                    WebhookDelivery(
                        district_id=district_id,
                        endpoint=endpoint,
                        event=alert.event,
                        idempotency_key=alert.idempotency_key,
                        payload=payload,
                        status=PENDING,
                        next_attempt_at=None,  # due now
                        created_at=created_at,
                    )
                )
        except IntegrityError:  # another worker enqueued it meanwhile (PostgreSQL)
            continue
        added += 1
    return added


def alert_payload(alert: AlertNotice, district: DistrictRef) -> dict[str, Any]:
    """The JSON body, less ``sent_at`` (added at each attempt)."""
    return {
        "event": alert.event,
        "idempotency_key": alert.idempotency_key,
        "district": {"slug": district.slug, "name": district.official_name},
        "alert": {
            "id": alert.id,
            # What the GraphQL API calls this alert, for node(id:) (GitHub's webhooks do the same).
            "node_id": global_id("Alert", alert.id),
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
            "placements": list(alert.placements),
            "raised_at": _iso(alert.raised_at),
            "resolved_at": _iso(alert.resolved_at),
        },
        "occurred_at": _iso(_occurred_at(alert)),
    }


def _occurred_at(alert: AlertNotice) -> datetime:
    if alert.event == "alert_resolved" and alert.resolved_at is not None:
        return alert.resolved_at
    return alert.raised_at


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Signatures ---------------------------------------------------------------------------------


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 of b"<timestamp>." + body>``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: str, header: str, body: bytes, *, now: float, tolerance_seconds: float = 300
) -> bool:
    """What a receiver does: True when ``header`` signs ``body`` with ``secret`` and its
    timestamp is within ``tolerance_seconds`` of ``now`` (Unix seconds)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = signature_header(secret, timestamp, body).split(",v1=", 1)[1]
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


# --- Delivery -----------------------------------------------------------------------------------


def backoff_cap_seconds(failed_attempts: int) -> float:
    """The longest wait after ``failed_attempts`` failures: 30 s x 2^n, at most 6 hours."""
    return min(MAX_BACKOFF_SECONDS, BACKOFF_BASE_SECONDS * 2 ** min(failed_attempts, 32))


def full_jitter(cap: float) -> float:
    return random.uniform(0, cap)


@dataclass(frozen=True)
class _Claimed:
    id: int
    district_slug: str
    endpoint: str
    event: str
    idempotency_key: str
    payload: str
    attempts: int


async def deliver_pending(
    *,
    database: Database,
    settings: Settings,
    clock: Callable[[], datetime],
    transport: httpx.AsyncBaseTransport | None = None,
    batch: int = 100,
    jitter: Callable[[float], float] = full_jitter,
) -> int:
    """Send the deliveries that are due (at most ``batch``); return how many were delivered.

    Every attempt is recorded on its row. ``transport`` replaces the network (tests);
    ``jitter(cap)`` picks the wait before a retry, up to ``cap`` seconds.
    """
    claimed = await to_thread.run_sync(_claim_due, database, settings, clock(), batch)
    if not claimed:
        return 0
    secrets = {
        (slug, webhook.url): webhook.secret
        for slug, config in _district_configs(settings)
        for webhook in config.webhooks
    }
    delivered = 0
    limiter = anyio.CapacityLimiter(SEND_CONCURRENCY)
    # The delivery log does the retrying, minutes to hours apart: the client itself does not
    # (the project's default policy never repeats a POST).
    async with create_client(settings, transport=transport) as client:

        async def send_one(delivery: _Claimed) -> None:
            nonlocal delivered
            async with limiter:
                secret = secrets.get((delivery.district_slug, delivery.endpoint))
                if secret is None:
                    outcome = _Outcome(None, "The endpoint is no longer configured.", give_up=True)
                else:
                    outcome = await _send(client, delivery, secret, clock())
                ok = await to_thread.run_sync(_record, database, delivery, outcome, clock(), jitter)
                delivered += ok

        async with anyio.create_task_group() as group:
            for delivery in claimed:
                group.start_soon(send_one, delivery)
    return delivered


def _district_configs(settings: Settings) -> Iterable[tuple[str, DistrictConfig]]:
    districts: Mapping[str, DistrictConfig] = settings.districts
    return districts.items()


def _claim_due(database: Database, settings: Settings, now: datetime, batch: int) -> list[_Claimed]:
    claim_until = now + timedelta(
        seconds=max(CLAIM_SECONDS, 2 * settings.http.attempt_deadline_seconds)
    )
    with database.write() as session:
        rows = session.exec(
            select(WebhookDelivery, District.slug)
            .join(District, col(District.id) == col(WebhookDelivery.district_id))
            .where(
                WebhookDelivery.status == PENDING,
                or_(
                    col(WebhookDelivery.next_attempt_at).is_(None),
                    col(WebhookDelivery.next_attempt_at) <= now,
                ),
            )
            .order_by(col(WebhookDelivery.id))
            .limit(batch)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        ).all()
        claimed = []
        for row, slug in rows:
            row.next_attempt_at = claim_until
            claimed.append(
                _Claimed(
                    id=stored_id(row),
                    district_slug=slug,
                    endpoint=row.endpoint,
                    event=row.event,
                    idempotency_key=row.idempotency_key,
                    payload=row.payload,
                    attempts=row.attempts,
                )
            )
        return claimed


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    give_up: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


async def _send(
    client: httpx.AsyncClient, delivery: _Claimed, secret: str, now: datetime
) -> _Outcome:
    body = render_body(delivery.payload, sent_at=now)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: delivery.idempotency_key,
        EVENT_HEADER: delivery.event,
        SIGNATURE_HEADER: signature_header(secret, timestamp, body),
    }
    try:
        response = await client.post(delivery.endpoint, content=body, headers=headers)
    except Exception as error:  # a refused connection, a timeout, a bad URL: retried later
        return _Outcome(None, describe_error(error)[:ERROR_TEXT_LIMIT])
    if response.is_success:
        return _Outcome(response.status_code, None)
    reason = response.reason_phrase or ""
    return _Outcome(response.status_code, f"HTTP {response.status_code} {reason}".strip())


def render_body(payload: str, *, sent_at: datetime) -> bytes:
    """The exact bytes sent: the stored payload with this attempt's ``sent_at``."""
    document = json.loads(payload)
    document["sent_at"] = _iso(sent_at)
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _record(
    database: Database,
    delivery: _Claimed,
    outcome: _Outcome,
    now: datetime,
    jitter: Callable[[float], float],
) -> int:
    with database.write() as session:
        row = session.get(WebhookDelivery, delivery.id)
        if row is None or row.status != PENDING:
            return 0
        row.last_status_code = outcome.status_code
        row.last_error = outcome.error
        if outcome.give_up:
            row.status = FAILED
            row.next_attempt_at = None
            logger.warning(
                "Webhook %s to %s dropped: %s", row.idempotency_key, row.endpoint, outcome.error
            )
            return 0
        row.attempts += 1
        if outcome.delivered:
            row.status = DELIVERED
            row.delivered_at = now
            row.next_attempt_at = None
            return 1
        if row.attempts >= MAX_ATTEMPTS:
            row.status = FAILED
            row.next_attempt_at = None
            logger.warning(
                "Webhook %s to %s failed after %d attempts: %s",
                row.idempotency_key,
                row.endpoint,
                row.attempts,
                outcome.error,
            )
            return 0
        wait = max(0.0, jitter(backoff_cap_seconds(row.attempts)))
        row.next_attempt_at = now + timedelta(seconds=wait)
        return 0


# --- The delivery log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookDeliveryRecord:
    """One row of the delivery log."""

    id: int
    endpoint: str
    event: str
    idempotency_key: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def delivery_log(
    session: Session, *, district_id: int, limit: int = 100, status: str | None = None
) -> list[WebhookDeliveryRecord]:
    """A district's deliveries, newest first, optionally only those with ``status``."""
    query = select(WebhookDelivery).where(WebhookDelivery.district_id == district_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    rows = session.exec(query.order_by(col(WebhookDelivery.id).desc()).limit(limit)).all()
    return [
        WebhookDeliveryRecord(
            id=stored_id(row),
            endpoint=row.endpoint,
            event=row.event,
            idempotency_key=row.idempotency_key,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )
        for row in rows
    ]
