"""Stored alerts: raised once, kept while the condition holds, resolved with a time when it clears.

``alerts_for`` in the rules says which alerts hold now; this module makes the stored state agree
with it, so history is kept and the API can say since when an alert has been showing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from db.models import Alert, ChangeEvent
from db.session import lock_district, stored_id
from licensing.domain.rules import AlertKind, AlertPlacement, AlertSeverity, AlertSpec
from licensing.storage.district_version import district_changed


@dataclass(frozen=True)
class AlertRecord:
    id: int
    kind: AlertKind
    severity: AlertSeverity
    message: str
    placements: tuple[AlertPlacement, ...]
    raised_at: datetime
    resolved_at: datetime | None


def _placements_text(placements: Sequence[AlertPlacement]) -> str:
    return ",".join(placement.value for placement in placements)


def _record(alert: Alert) -> AlertRecord:
    return AlertRecord(
        id=stored_id(alert),
        kind=AlertKind(alert.kind),
        severity=AlertSeverity(alert.severity),
        message=alert.message,
        placements=tuple(AlertPlacement(word) for word in alert.placements.split(",") if word),
        raised_at=alert.raised_at,
        resolved_at=alert.resolved_at,
    )


# Built once: the dashboard reads open alerts on every request.
_OPEN_ALERTS = select(Alert).where(
    Alert.district_id == bindparam("district_id"), col(Alert.resolved_at).is_(None)
)


def open_alerts(session: Session, *, district_id: int) -> list[AlertRecord]:
    rows = session.exec(_OPEN_ALERTS, params={"district_id": district_id}).all()
    return [_record(row) for row in rows]


def resolved_alerts(session: Session, *, district_id: int, limit: int = 200) -> list[AlertRecord]:
    rows = session.exec(
        select(Alert)
        .where(Alert.district_id == district_id, col(Alert.resolved_at).is_not(None))
        .order_by(col(Alert.resolved_at).desc(), col(Alert.id).desc())
        .limit(limit)
    ).all()
    return [_record(row) for row in rows]


def alerts_by_id(
    session: Session, *, district_id: int, alert_ids: list[int]
) -> dict[int, AlertRecord]:
    """The district's alerts, open or resolved, among ``alert_ids``."""
    if not alert_ids:
        return {}
    rows = session.exec(
        select(Alert).where(Alert.district_id == district_id, col(Alert.id).in_(alert_ids))
    ).all()
    return {stored_id(row): _record(row) for row in rows}


def agrees(stored: Sequence[AlertRecord], current: Sequence[AlertSpec]) -> bool:
    """True when the stored open alerts say exactly what the current alerts say."""

    def key(kind: AlertKind, severity: AlertSeverity, message: str, placements: tuple) -> tuple:
        return (kind, severity, message, placements)

    return sorted(key(a.kind, a.severity, a.message, a.placements) for a in stored) == sorted(
        key(s.kind, s.severity, s.message, s.placements) for s in current
    )


def reconcile_alerts(
    session: Session, *, district_id: int, current: Sequence[AlertSpec], now: datetime
) -> list[AlertRecord]:
    """Raise new alerts, resolve cleared ones, refresh the wording of held ones; return open ones.

    Each raise and resolution is also written to the change log, in the same transaction, so
    notifications and live subscribers learn of it exactly when it is committed.
    """
    lock_district(session, district_id)  # two workers must not raise the same alert twice
    wanted = {spec.kind: spec for spec in current}
    stored = session.exec(
        select(Alert).where(Alert.district_id == district_id, col(Alert.resolved_at).is_(None))
    ).all()
    resolved: list[Alert] = []
    for alert in stored:
        spec = wanted.pop(AlertKind(alert.kind), None)
        if spec is None:
            alert.resolved_at = now
            resolved.append(alert)
            continue
        alert.severity = spec.severity.value
        alert.message = spec.message
        alert.placements = _placements_text(spec.placements)
    # Resolutions first, so a kind raised again never meets its own open row.
    session.flush()
    raised = [
        Alert(
            district_id=district_id,
            kind=spec.kind.value,
            severity=spec.severity.value,
            message=spec.message,
            placements=_placements_text(spec.placements),
            raised_at=now,
        )
        for spec in wanted.values()
    ]
    session.add_all(raised)
    session.flush()
    for topic, alerts in (("alert_resolved", resolved), ("alert_raised", raised)):
        for alert in alerts:
            record_change(
                session, district_id=district_id, topic=topic, now=now, subject_id=alert.id
            )
    if raised or resolved:
        record_change(session, district_id=district_id, topic=LICENSE_TOPIC, now=now)
    return open_alerts(session, district_id=district_id)


LICENSE_TOPIC = "license"


def record_change(
    session: Session, *, district_id: int, topic: str, now: datetime, subject_id: int | None = None
) -> None:
    """Note in the change log that something a subscriber or notifier follows has changed;
    the district's version changes with it."""
    session.add(
        ChangeEvent(district_id=district_id, topic=topic, subject_id=subject_id, created_at=now)
    )
    district_changed(session, district_id)
