"""Following the change log: what live subscribers read to learn that a district changed.

Every change path writes ``ChangeEvent`` rows in the transaction that makes the change
(``licensing.storage.alert_state.record_change``), so a reader that polls for ids above the last one it
saw learns of changes made by any worker or host sharing the database, once they are committed.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func
from sqlmodel import Session, col, select

from db.models import ChangeEvent
from licensing.storage.alert_state import LICENSE_TOPIC

ALERT_RAISED_TOPIC = "alert_raised"
ALERT_RESOLVED_TOPIC = "alert_resolved"

# licenseChanged follows "license", written on every change of license, usage or alerts.
LICENSE_TOPICS: tuple[str, ...] = (LICENSE_TOPIC,)
# alertsChanged follows the alerts themselves, and "license" too: a held alert's wording
# (how many licenses remain, for instance) changes with the counts without a raise or resolve.
ALERT_TOPICS: tuple[str, ...] = (LICENSE_TOPIC, ALERT_RAISED_TOPIC, ALERT_RESOLVED_TOPIC)


def latest_change_id(
    session: Session,
    district_id: int,
    topics: Collection[str],
    *,
    after_id: int = 0,
) -> int:
    """The id of the district's newest change on one of ``topics`` above ``after_id``, else
    ``after_id``; 0 when the district has none. Served by the (district_id, id) index."""
    newest = session.exec(
        select(func.max(ChangeEvent.id)).where(
            ChangeEvent.district_id == district_id,
            col(ChangeEvent.id) > after_id,
            col(ChangeEvent.topic).in_(list(topics)),
        )
    ).one()
    return max(newest or 0, after_id)
