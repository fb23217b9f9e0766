"""The maintained counts equal the counting rule, whatever the roster looks like."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db.models import District
from db.queries import recount_usage
from db.session import Database
from licensing.domain.rules import Lifecycle, Role, RosterEntry, count_roster
from licensing.storage.roster import current_usage, normalize, usage_mismatch
from licensing.storage.roster_changes import apply_roster
from plugins.records import StudentRecord

ROLES = ("student", "teacher", "administrator")
STATUSES = ("active", "graduated", "transferred", "tobedeleted", "pre-registered", "withdrawn")

records_strategy = st.lists(
    st.builds(
        StudentRecord,
        source_id=st.text(alphabet="abcdef", min_size=1, max_size=3),
        role=st.sampled_from(ROLES),
        status=st.sampled_from(STATUSES),
        enabled=st.booleans(),
        person_key=st.sampled_from([None, "p1", "p2", "p3"]),
    ),
    max_size=30,
    unique_by=lambda record: record.source_id,
)

_counter = itertools.count()


def _entry(record: StudentRecord) -> RosterEntry:
    row = normalize(record, position=1)
    return RosterEntry(
        person_key=row["person_key"],
        role=Role(row["role"]),
        lifecycle=Lifecycle(row["lifecycle"]),
        enabled=row["enabled"],
    )


@pytest.fixture
def database(new_database_url: Callable[..., str]) -> Iterator[Database]:
    migrated = Database(new_database_url(migrated=True))
    yield migrated
    migrated.dispose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first_source=records_strategy, second_source=records_strategy)
def test_sql_counts_agree_with_the_counting_rule(database, clock, first_source, second_source):
    # Every example uses the test's one database (a migrated copy costs more than an example)
    # and counts a district of its own.
    with database.write() as session:
        district = District(slug=f"d{next(_counter)}", official_name="D", created_at=clock())
        session.add(district)
        session.flush()
        for source, records in (("sis", first_source), ("local", second_source)):
            apply_roster(
                session,
                district_id=district.id,
                source=source,
                records=records,
                replace=True,
                now=clock(),
            )
        stored = current_usage(session, district_id=district.id)
        district_id = district.id

    expected = count_roster(_entry(record) for record in [*first_source, *second_source])
    assert stored.active_students == expected.active_students
    assert stored.inactive_students == expected.inactive_students
    assert stored.staff == expected.staff
    assert stored.duplicates_collapsed == expected.duplicates_collapsed
    with database.read() as session:
        assert usage_mismatch(session, district_id=district_id) == {}


def test_a_failed_import_leaves_roster_and_counts_untouched(service, clock):
    from tests.utils.districts import create_district, students

    district_id = create_district(service, slug="kept", roster=students(10))
    bad = [*students(5, start=100), StudentRecord(source_id="x", role="wizard")]

    try:
        with service.database.write() as session:
            apply_roster(
                session,
                district_id=district_id,
                source="local",
                records=bad,
                replace=True,
                now=clock(),
            )
    except Exception as error:  # the import is refused as a whole
        assert "wizard" in str(error)
    else:
        raise AssertionError("a roster with a bad record was applied")

    with service.database.read() as session:
        assert current_usage(session, district_id=district_id).active_students == 10
        assert recount_usage(session, district_id=district_id)["active_students"] == 10


def test_replacing_a_source_leaves_other_sources_alone(service, clock):
    from tests.utils.districts import create_district, students

    district_id = create_district(service, slug="two", roster=students(10))
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source="sis",
            records=students(5, prefix="X"),
            replace=True,
            now=clock(),
        )
        apply_roster(  # one of five leaves: within the share a change may drop unconfirmed
            session,
            district_id=district_id,
            source="sis",
            records=students(4, prefix="X"),
            replace=True,
            now=clock(),
        )
        assert current_usage(session, district_id=district_id).active_students == 14
