"""A district's version: it changes whenever anything a query can show of the district changes.

Two parts:

- a counter on the district's row, raised in the transaction of each change. The two logs every
  change path writes, the audit log (``licensing.storage.audit.record_event``) and the change log
  (``licensing.storage.alert_state.record_change``), raise it, so every change they record
  (threshold, license updates and failed refreshes, roster syncs applied, held, failed,
  confirmed or discarded, local students switched on or off, alerts raised or resolved, tokens
  created or revoked) raises it with no caller having to remember. The few writes that record
  in neither log but show in a query raise it themselves: a roster sync starting (dataSources)
  and a day's usage snapshot (usageHistory);
- the district's date in its own time zone, from the service clock: status, days until expiry
  and renewal alerts move at local midnight without any write.

Reading it is one statement on the district's primary key. The counter is read BEFORE an answer
is computed: a change committed meanwhile makes the next version differ, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, bindparam, select, update
from sqlmodel import Session

from db.models import District, table_of
from db.session import Database
from licensing.domain.rules import district_today

_district = table_of(District)
_READ_VERSION = select(_district.c.version, _district.c.time_zone).where(
    _district.c.id == bindparam("district_id")
)
_RAISE_VERSION = (
    update(_district)
    .where(_district.c.id == bindparam("district_id"))
    .values(version=_district.c.version + 1)
)


@dataclass(frozen=True)
class DistrictVersion:
    """The district's change counter and its local date when read."""

    counter: int
    local_date: date

    @property
    def tag(self) -> str:
        """The version as text: ``<counter>.<YYYY-MM-DD>``."""
        return f"{self.counter}.{self.local_date.isoformat()}"


def district_changed(session: Session, district_id: int) -> None:
    """Raise the district's version in the caller's transaction (committed with the change).

    On PostgreSQL this holds the district's row until commit. A transaction that takes the
    district's lock (``db.session.lock_district``) takes it before this, as every change path
    does, so one holding the row never waits for the lock (no deadlock)."""
    session.execute(_RAISE_VERSION, {"district_id": district_id})


def district_version(
    session: Session | Connection | Database, district_id: int, *, now: datetime
) -> DistrictVersion:
    """The district's version at ``now``; LookupError for a district that does not exist. Given
    the database itself, the one statement runs on its quickest path (``Database.read_row``)."""
    parameters = {"district_id": district_id}
    if isinstance(session, Database):
        row = session.read_row(_READ_VERSION, parameters)
    else:
        row = session.execute(_READ_VERSION, parameters).first()
    if row is None:
        raise LookupError(f"no district with id {district_id}")
    counter, time_zone = row
    return version_at(counter, time_zone, now=now)


def version_at(counter: int, time_zone: str, *, now: datetime) -> DistrictVersion:
    """The version of a district whose counter and time zone were read: its date at ``now``."""
    return DistrictVersion(counter=counter, local_date=district_today(now, time_zone))
