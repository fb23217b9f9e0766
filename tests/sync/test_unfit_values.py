"""Values the roster cannot store are problems of their row, found the same way on SQLite and
PostgreSQL; and no error a person can read carries SQL or another student's data."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.runtime import build_service
from licensing.orchestration.plugin_host import load_plugins
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.tokens import Permission
from plugins.hookspecs import hookimpl
from plugins.records import StudentRecord
from tests.plugins.test_oneroster_csv import manifest, user_v1p1, users_csv, write_bundle
from tests.utils.databases import refuse_inserts
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

# The well-formed students: none of their ids or names may appear in any error.
NEIGHBOURS = {"u-good-1": "Adaline", "u-good-2": "Bartholomew"}
TOO_LONG_NAME = "N" * 201  # givenName and familyName hold 200 characters
TOO_LONG_ID = "i" * 256  # sourcedId holds 255

SOURCES_QUERY = "{ dataSources { name lastStatus lastError } }"
AUDIT_QUERY = (
    "{ auditLog(first: 50) { edges { node { action outcome detail oldValue newValue } } } }"
)
JOBS_QUERY = "{ scheduledJobs { name lastOutcome lastError } }"


class ListedSource:
    """A REST-like source: records handed over as they are, with no file behind them."""

    name = "listed"
    description = "Records the test lists."

    def __init__(self) -> None:
        self.records: list[Any] = []

    def fetch_students(self, *, district, options):
        return list(self.records)


class ListedPlugin:
    def __init__(self, source: ListedSource) -> None:
        self.source = source

    @hookimpl
    def register_roster_sources(self, settings):
        return [self.source]


@pytest.fixture
def listed() -> ListedSource:
    return ListedSource()


@pytest.fixture
def service(settings, clock, listed):
    plugins = load_plugins(settings, load_entry_points=False, extra_plugins=[ListedPlugin(listed)])
    built = build_service(settings, upgrade_schema=True, clock=clock, plugins=plugins)
    yield built
    built.database.dispose()


def use_source(settings, kind: str, **options: Any) -> None:
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={"sis": RosterSourceConfig(kind=kind, options=options)}
    )


def unfit_bundle(tmp_path, kind: str = "folder"):
    return write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("u-good-1", given=NEIGHBOURS["u-good-1"], family="Okafor"),
                user_v1p1("u-long-name", given=TOO_LONG_NAME),
                user_v1p1("u-nul-name", family="Nul\x00l"),
                user_v1p1(TOO_LONG_ID),
                user_v1p1("u-nul\x00id"),
                user_v1p1("u-good-2", given=NEIGHBOURS["u-good-2"], family="Silva"),
            ),
        },
        kind=kind,
    )


def visible_texts(*answers: Any) -> str:
    """Everything the answers carry, as one text to search."""
    return repr(answers)


def assert_safe(readable: str) -> None:
    # Whole words: the audit outcome UPDATED is not the SQL keyword UPDATE.
    for word in ("INSERT", "SELECT", "UPDATE", "roster_staging", "[parameters", "psycopg"):
        assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", readable), word
    for source_id, given_name in NEIGHBOURS.items():
        assert source_id not in readable
        assert given_name not in readable
    assert TOO_LONG_NAME not in readable and TOO_LONG_ID not in readable


@pytest.mark.parametrize("kind", ["folder", "zip"])
async def test_over_long_and_nul_values_are_row_problems_with_file_line_and_column(
    service, client, make_district, settings, tmp_path, kind
):
    district = await make_district("riverside", active=3)
    use_source(settings, "oneroster_csv", path=str(unfit_bundle(tmp_path, kind)))

    outcome = await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")

    assert outcome.status == "failed"
    assert outcome.problem.code == "SOURCE_FAILED"
    message = outcome.problem.message
    assert "users.csv: 4 bad row(s)" in message
    assert "line 3, column givenName: " in message
    assert "line 4, column familyName: " in message
    assert "line 5, column sourcedId: " in message
    assert "line 6, column sourcedId: " in message
    assert "201 characters" in message and "NUL" in message
    # Nothing of the sync was applied: the three students of before still count.
    manager = token_for(service, district.id, Permission.MANAGE_SETTINGS)
    used = await graphql_data(client, manager, "{ license { used } }")
    assert used["license"]["used"] == 3
    sources = await graphql_data(client, manager, SOURCES_QUERY)
    audit = await graphql_data(client, manager, AUDIT_QUERY)
    assert sources["dataSources"][0]["lastError"] == message
    assert_safe(visible_texts(sources, audit, message))


@pytest.mark.parametrize(
    ("bad", "column", "says"),
    [
        (StudentRecord(source_id="x" * 256), "source_id", "256 characters"),
        (StudentRecord(source_id="x\x00y"), "source_id", "NUL"),
        (StudentRecord(source_id="S9", person_key="k" * 300), "person_key", "300 characters"),
        (StudentRecord(source_id="S9", given_name="Zoë\x00"), "given_name", "NUL"),
        (StudentRecord(source_id="S9", family_name="\ud800"), "family_name", "Unicode"),
        (StudentRecord(source_id="S9", grade="kindergarten-and-more"), "grade", "21 characters"),
        (StudentRecord(source_id="S9", schools=("s" * 300,)), "school", "300 characters"),
        (StudentRecord(source_id="S9", graduation_year=10**20), "graduation_year", "out of range"),
        ({"source_id": "S9", "username": 12345}, "username", "text"),
        ({"source_id": "S9", "given_name": 0}, "given_name", "text"),
        ({"source_id": "S9", "enrollment_end": "2027-06-30"}, "enrollment_end", "a date"),
    ],
)
async def test_a_record_that_does_not_fit_is_reported_by_position_and_field(
    service, settings, listed, make_district, bad, column, says
):
    use_source(settings, "listed")
    district_id = (await make_district("riverside", active=3)).id
    listed.records = [
        StudentRecord(source_id="u-good-1", given_name=NEIGHBOURS["u-good-1"]),
        bad,
        StudentRecord(source_id="u-good-2", given_name=NEIGHBOURS["u-good-2"]),
    ]

    outcome = await service.roster_sync.sync(district_id=district_id, source="sis", actor="test")

    assert outcome.status == "failed"
    assert f"line 2, column {column}: " in outcome.problem.message
    assert says in outcome.problem.message
    assert_safe(outcome.problem.message)


async def neighbours_only(settings, listed, make_district) -> int:
    """The district, whose source lists only well-formed students."""
    use_source(settings, "listed")
    district_id = (await make_district("riverside", active=3)).id
    listed.records = [
        StudentRecord(source_id=source_id, given_name=name)
        for source_id, name in NEIGHBOURS.items()
    ]
    return district_id


async def test_a_database_error_during_a_sync_stores_only_a_safe_coded_message(
    service, settings, listed, make_district, client, clock
):
    district_id = await neighbours_only(settings, listed, make_district)
    refuse_inserts(service.database, "roster_staging")

    outcome = await service.roster_sync.sync(district_id=district_id, source="sis", actor="test")

    assert outcome.status == "failed"
    assert outcome.problem.code == "SOURCE_FAILED"
    assert "INTERNAL_ERROR" in outcome.problem.message
    manager = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    sources = await graphql_data(client, manager, SOURCES_QUERY)
    audit = await graphql_data(client, manager, AUDIT_QUERY)
    assert sources["dataSources"][0]["lastError"] == outcome.problem.message
    assert_safe(visible_texts(outcome, sources, audit))


async def test_a_database_error_in_a_scheduled_job_stores_only_a_safe_coded_message(
    service, settings, listed, make_district, client, clock
):
    district_id = await neighbours_only(settings, listed, make_district)
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()  # creates the jobs, due within a minute
    # The staging rows and then the failure's own audit entry are refused: the error escapes
    # the sync and reaches the scheduler as it is.
    refuse_inserts(service.database, "roster_staging")
    refuse_inserts(service.database, "audit_event")
    clock.advance(minutes=2)

    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}

    assert not outcomes[f"roster_sync:{district_id}:sis"].ok
    manager = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    jobs = await graphql_data(client, manager, JOBS_QUERY)
    by_name = {job["name"]: job for job in jobs["scheduledJobs"]}
    failed = by_name[f"roster_sync:{district_id}:sis"]
    assert failed["lastOutcome"] == "FAILED"
    assert "INTERNAL_ERROR" in failed["lastError"]
    assert_safe(visible_texts(jobs, outcomes))
