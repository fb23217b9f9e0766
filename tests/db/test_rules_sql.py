"""The SQL form of "counts against the license" selects exactly the rows the Python rule counts."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from db.migrate import upgrade
from db.models import District, RosterRecord, RosterStaging, RosterSyncRun
from db.rules_sql import counts_against_license as counts_in_sql
from db.session import Database
from licensing.domain.rules import Lifecycle, Role, counts_against_license

# Every stored word, and words a row could only hold by mistake (they must never count).
ROLES = [*Role, "Student", "teacher", ""]
LIFECYCLES = [*Lifecycle, "Active", "disabled", ""]
COMBINATIONS = list(itertools.product(ROLES, LIFECYCLES, (True, False)))


def _key(role: str, lifecycle: str, enabled: bool) -> str:
    return f"{role}|{lifecycle}|{enabled}"


def test_every_role_lifecycle_and_enabled_counts_alike_in_sql_and_python(new_database_url, clock):
    database = Database(new_database_url("rules-sql"))
    upgrade(database)
    with database.write() as session:
        district = District(slug="d", official_name="D", created_at=clock())
        session.add(district)
        session.flush()
        run = RosterSyncRun(
            district_id=district.id, source="sis", kind="sync", status="running", started_at=clock()
        )
        session.add(run)
        session.flush()
        for number, (role, lifecycle, enabled) in enumerate(COMBINATIONS):
            values = {
                "source_id": str(number),
                "person_key": _key(role, lifecycle, enabled),
                "role": str(role),
                "lifecycle": str(lifecycle),
                "enabled": enabled,
            }
            session.add(RosterRecord(district_id=district.id, source="sis", **values))
            session.add(RosterStaging(run_id=run.id, **values))
    with database.read() as session:
        for table in (RosterRecord.__table__, RosterStaging.__table__):
            counted_in_sql = set(
                session.execute(select(table.c.person_key).where(counts_in_sql(table))).scalars()
            )
            counted_in_python = {
                _key(*combination)
                for combination in COMBINATIONS
                if counts_against_license(*combination)
            }
            assert counted_in_sql == counted_in_python
            # The rule is not vacuous: exactly the active, enabled student counts.
            assert counted_in_python == {_key(Role.STUDENT, Lifecycle.ACTIVE, True)}
    database.dispose()
