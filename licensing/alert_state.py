"""Stored alerts: raised once, kept while the condition holds, resolved with a time when it clears.

``alerts_for`` in the rules says which alerts hold now; this module makes the stored state agree
with it, so history is kept and the API can say since when an alert has been showing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import Alert
from licensing.rules import AlertKind, AlertPlacement, AlertSeverity, AlertSpec


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
        id=alert.id,
        kind=AlertKind(alert.kind),
        severity=AlertSeverity(alert.severity),
        message=alert.message,
        placements=tuple(AlertPlacement(word) for word in alert.placements.split(",") if word),
        raised_at=alert.raised_at,
        resolved_at=alert.resolved_at,
    )


def open_alerts(session: Session, *, district_id: int) -> list[AlertRecord]:
    rows = session.exec(
        select(Alert).where(Alert.district_id == district_id, col(Alert.resolved_at).is_(None))
    ).all()
    return [_record(row) for row in rows]


def resolved_alerts(session: Session, *, district_id: int, limit: int = 200) -> list[AlertRecord]:
    rows = session.exec(
        select(Alert)
        .where(Alert.district_id == district_id, col(Alert.resolved_at).is_not(None))
        .order_by(col(Alert.resolved_at).desc(), col(Alert.id).desc())
        .limit(limit)
    ).all()
    return [_record(row) for row in rows]


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
    """Raise new alerts, resolve cleared ones, refresh the wording of held ones; return open ones."""
    wanted = {spec.kind: spec for spec in current}
    stored = session.exec(
        select(Alert).where(Alert.district_id == district_id, col(Alert.resolved_at).is_(None))
    ).all()
    for alert in stored:
        spec = wanted.pop(AlertKind(alert.kind), None)
        if spec is None:
            alert.resolved_at = now
            continue
        alert.severity = spec.severity.value
        alert.message = spec.message
        alert.placements = _placements_text(spec.placements)
    # Resolutions first, so a kind raised again never meets its own open row.
    session.flush()
    for spec in wanted.values():
        session.add(
            Alert(
                district_id=district_id,
                kind=spec.kind.value,
                severity=spec.severity.value,
                message=spec.message,
                placements=_placements_text(spec.placements),
                raised_at=now,
            )
        )
    session.flush()
    return open_alerts(session, district_id=district_id)
