"""The daily usage history: one snapshot of a district's counts per day, kept two school years.

The scheduler calls ``take_usage_snapshot`` once a day per district; taking it again on the same
day (another worker, a retry) updates that day's row instead of adding one. The forecast
(``licensing.domain.forecast``) reads the history back as daily points.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from db.models import License, UsageSnapshot, table_of
from db.session import affected_rows
from licensing.domain.forecast import DailyPoint
from licensing.domain.rules import district_today
from licensing.storage.district_version import district_changed
from licensing.storage.roster import current_usage

__all__ = [
    "KEEP_DAYS",
    "MAX_HISTORY_DAYS",
    "MIN_KEEP_DAYS",
    "UsageDay",
    "district_today",
    "prune_snapshots",
    "take_usage_snapshot",
    "usage_history",
]

KEEP_DAYS = 800  # two school years and a summer, with room to spare
MIN_KEEP_DAYS = 730  # the history must cover at least two school years
MAX_HISTORY_DAYS = KEEP_DAYS

snapshots = table_of(UsageSnapshot)


@dataclass(frozen=True)
class UsageDay:
    """A district's counts on one day; total is the licensed total then (None before a license)."""

    day: date
    active_students: int
    inactive_students: int
    staff: int
    devices: int
    total: int | None

    def point(self) -> DailyPoint:
        return DailyPoint(day=self.day, active_students=self.active_students, total=self.total)


def take_usage_snapshot(
    session: Session, *, district_id: int, now: datetime, time_zone: str
) -> None:
    """Record today's counts (the district's today) and the license total; idempotent per day.

    A second call on the same day replaces that day's counts with the current ones, so the last
    snapshot of a day wins. Snapshots older than KEEP_DAYS are pruned on the way.
    """
    day = district_today(now, time_zone)
    counts = current_usage(session, district_id=district_id)
    total = session.exec(select(License.total).where(License.district_id == district_id)).first()
    values = {
        "active_students": counts.active_students,
        "inactive_students": counts.inactive_students,
        "staff": counts.staff,
        "devices": counts.devices,
        "total": total,
        "taken_at": now,
    }
    kept = session.exec(
        select(UsageSnapshot).where(
            UsageSnapshot.district_id == district_id, UsageSnapshot.day == day
        )
    ).first()
    if kept is None or any(
        getattr(kept, name) != value for name, value in values.items() if name != "taken_at"
    ):
        district_changed(session, district_id)  # usageHistory shows the day's counts
    # One statement, so two workers snapshotting the same day cannot both insert.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(snapshots).values(district_id=district_id, day=day, **values)
    session.execute(
        statement.on_conflict_do_update(index_elements=["district_id", "day"], set_=values)
    )
    prune_snapshots(session, district_id=district_id)


def usage_history(session: Session, *, district_id: int, days: int, today: date) -> list[UsageDay]:
    """The snapshots of the ``days`` days ending on ``today``, oldest first; days without a
    snapshot are absent."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    first = today - timedelta(days=days - 1)
    rows = session.exec(
        select(UsageSnapshot)
        .where(
            UsageSnapshot.district_id == district_id,
            UsageSnapshot.day >= first,
            UsageSnapshot.day <= today,
        )
        .order_by(UsageSnapshot.day)  # type: ignore[arg-type]
    ).all()
    return [
        UsageDay(
            day=row.day,
            active_students=row.active_students,
            inactive_students=row.inactive_students,
            staff=row.staff,
            devices=row.devices,
            total=row.total,
        )
        for row in rows
    ]


def prune_snapshots(session: Session, *, district_id: int, keep_days: int = KEEP_DAYS) -> int:
    """Delete snapshots more than ``keep_days`` days older than the district's newest one;
    return how many went. Counting from the newest snapshot (not the clock) means a district
    whose snapshots stopped keeps its history."""
    if keep_days < MIN_KEEP_DAYS:
        raise ValueError(
            f"keep_days must be at least {MIN_KEEP_DAYS} (two school years), not {keep_days}"
        )
    newest = session.exec(
        select(func.max(UsageSnapshot.day)).where(UsageSnapshot.district_id == district_id)
    ).one()
    if newest is None:
        return 0
    oldest_kept = newest - timedelta(days=keep_days - 1)
    result = session.execute(
        delete(snapshots).where(
            snapshots.c.district_id == district_id, snapshots.c.day < oldest_kept
        )
    )
    return affected_rows(result) or 0
