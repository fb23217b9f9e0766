"""The notification step: alert raises and resolutions from the change log, to the plugins.

``reconcile_alerts`` writes a change event for every raise and resolution in the transaction that
makes it, so an event exists exactly when the change is committed. This step reads the events
after its cursor (kept in the ``notifications`` scheduled-job row), calls the ``alert_raised`` or
``alert_resolved`` hook of every plugin for each (after enqueuing its webhooks in the outbox,
``licensing.orchestration.webhooks``), and moves the cursor past each event once its
hooks have run. A crash between the two repeats the last calls: delivery is at least once, and
``AlertNotice.idempotency_key`` lets a plugin de-duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import Alert, ChangeEvent, District, ScheduledJob
from db.session import Database, stored_id
from licensing.domain.states import ScheduledJobKind
from licensing.orchestration.webhooks import enqueue_alert
from licensing.settings import Settings
from plugins.manager import PluginManager
from plugins.records import ALERT_EVENTS, AlertNotice, DistrictRef

logger = logging.getLogger(__name__)

NOTIFICATIONS_JOB = "notifications"


async def dispatch_alert_changes(
    *,
    database: Database,
    plugins: PluginManager,
    settings: Settings,
    clock: Callable[[], datetime],
    batch: int = 500,
) -> int:
    """Call the notification hooks for up to ``batch`` alert changes not yet notified, oldest
    first; return how many were dispatched.

    Each change is first enqueued for the district's webhooks (``settings``), in ``database``;
    then ``plugins`` (the ``PluginManager``, its ``notify_alert``) calls the hooks: a plugin
    that fails is logged there and does not hold the others or the cursor back.
    """
    notices = await to_thread.run_sync(_pending_notices, database, clock(), batch)
    dispatched = 0
    for event_id, notice, district in notices:
        if notice is not None and district is not None:
            await to_thread.run_sync(enqueue_alert, database, notice, district, settings)
            await plugins.notify_alert(notice.event, notice, district)
            dispatched += 1
        await to_thread.run_sync(_advance_cursor, database, event_id)
    return dispatched


def _pending_notices(
    database: Database, now: datetime, batch: int
) -> list[tuple[int, AlertNotice | None, DistrictRef | None]]:
    with database.read() as session:
        job = session.get(ScheduledJob, NOTIFICATIONS_JOB)
    if job is None:
        with database.write() as session:
            job = _notification_job(session, now)
    cursor = job.cursor or 0
    with database.read() as session:
        events = session.exec(
            select(ChangeEvent)
            .where(col(ChangeEvent.topic).in_(ALERT_EVENTS), col(ChangeEvent.id) > cursor)
            .order_by(col(ChangeEvent.id))
            .limit(batch)
        ).all()
        alert_ids = {event.subject_id for event in events if event.subject_id is not None}
        alerts = {
            alert.id: alert
            for alert in session.exec(select(Alert).where(col(Alert.id).in_(alert_ids))).all()
        }
        district_ids = {event.district_id for event in events}
        districts = {
            district.id: district
            for district in session.exec(
                select(District).where(col(District.id).in_(district_ids))
            ).all()
        }
    pending: list[tuple[int, AlertNotice | None, DistrictRef | None]] = []
    for event in events:
        alert = alerts.get(event.subject_id) if event.subject_id is not None else None
        district = districts.get(event.district_id)
        if alert is None or district is None or alert.district_id != event.district_id:
            logger.warning("Change event %s names no alert of its district; skipped.", event.id)
            pending.append((stored_id(event), None, None))
            continue
        pending.append((stored_id(event), _notice(alert, event.topic), _district_ref(district)))
    return pending


def _notice(alert: Alert, event: str) -> AlertNotice:
    return AlertNotice(
        id=stored_id(alert),
        kind=alert.kind,
        severity=alert.severity,
        message=alert.message,
        placements=tuple(word for word in alert.placements.split(",") if word),
        raised_at=alert.raised_at,
        resolved_at=alert.resolved_at,
        event=event,
    )


def _district_ref(district: District) -> DistrictRef:
    return DistrictRef(
        slug=district.slug, official_name=district.official_name, time_zone=district.time_zone
    )


def _notification_job(session: Session, now: datetime) -> ScheduledJob:
    """The job row that keeps the cursor, created (cursor at the start) when missing."""
    job = session.get(ScheduledJob, NOTIFICATIONS_JOB)
    if job is not None:
        return job
    try:
        with session.begin_nested():
            job = ScheduledJob(
                name=NOTIFICATIONS_JOB, kind=ScheduledJobKind.NOTIFICATIONS.value, next_run_at=now
            )
            session.add(job)
    except IntegrityError:  # created meanwhile by another worker
        job = session.get(ScheduledJob, NOTIFICATIONS_JOB)
        assert job is not None
    return job


def _advance_cursor(database: Database, event_id: int) -> None:
    with database.write() as session:
        job = session.get(ScheduledJob, NOTIFICATIONS_JOB)
        if job is not None and (job.cursor or 0) < event_id:
            job.cursor = event_id


def notification_cursor(database: Database) -> int:
    """The id of the last change event notified (0 before the first)."""
    with database.read() as session:
        job = session.get(ScheduledJob, NOTIFICATIONS_JOB)
        return (job.cursor or 0) if job is not None else 0
