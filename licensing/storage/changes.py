"""Following the change log: what live subscribers read to learn that a district changed.

Every change path writes ``ChangeEvent`` rows in the transaction that makes the change
(``licensing.storage.alert_state.record_change``), so a reader that asks for ids above the last
one it saw learns of changes made by any worker or host sharing the database, once they are
committed. Each worker has one such reader for all its subscriptions
(licensing/orchestration/change_hub.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, func, or_
from sqlmodel import col, select

from db.models import ChangeEvent
from licensing.storage.alert_state import LICENSE_TOPIC

ALERT_RAISED_TOPIC = "alert_raised"
ALERT_RESOLVED_TOPIC = "alert_resolved"

# licenseChanged follows "license", written on every change of license, usage or alerts.
LICENSE_TOPICS: tuple[str, ...] = (LICENSE_TOPIC,)
# alertsChanged follows the alerts themselves, and "license" too: a held alert's wording
# (how many licenses remain, for instance) changes with the counts without a raise or resolve.
ALERT_TOPICS: tuple[str, ...] = (LICENSE_TOPIC, ALERT_RAISED_TOPIC, ALERT_RESOLVED_TOPIC)


@dataclass(frozen=True)
class ChangeNote:
    """One entry of the change log: which district changed, and on which topic."""

    id: int
    district_id: int
    topic: str


def newest_change_id(connection: Connection) -> int:
    """The id of the newest entry of the whole change log (0 when it is empty): the primary key's
    last entry."""
    newest = connection.execute(select(func.max(ChangeEvent.id))).scalar()
    return int(newest or 0)


def changes_after(
    connection: Connection, *, after_id: int, skipped_ids: Collection[int] = (), limit: int
) -> list[ChangeNote]:
    """The entries above ``after_id``, and those of ``skipped_ids`` (ids below it not seen
    committed yet), oldest first, at most ``limit``: every district's, in one statement on the
    primary key. While nothing changes it finds nothing, reading only the key's last page."""
    condition = col(ChangeEvent.id) > after_id
    if skipped_ids:
        condition = or_(condition, col(ChangeEvent.id).in_(sorted(skipped_ids)))
    rows = connection.execute(
        select(ChangeEvent.id, ChangeEvent.district_id, ChangeEvent.topic)
        .where(condition)
        .order_by(col(ChangeEvent.id))
        .limit(limit)
    ).all()
    return [ChangeNote(id=row[0], district_id=row[1], topic=row[2]) for row in rows]
