"""The sync engine: a source's records become its roster all at once, or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.runtime import build_service
from db.models import RosterStaging
from licensing.roster import current_usage
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.tokens import Permission
from plugins.hookspecs import hookimpl
from plugins.manager import PluginManager
from plugins.records import ServerCount, SourceError, StudentRecord
from tests.utils.districts import create_district, token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio


class ScriptedSource:
    """A roster source whose answer each test sets: a list of records, or a failure part-way."""

    name = "scripted"
    description = "Records the test decides."

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.fail_after: int | None = None

    def fetch_students(self, *, district, options):
        for position, record in enumerate(self.records):
            if self.fail_after is not None and position == self.fail_after:
                raise SourceError("The SIS stopped answering (connection reset).")
            yield record


class ScriptedPlugin:
    def __init__(self, source: ScriptedSource) -> None:
        self.source = source

    @hookimpl
    def register_roster_sources(self, settings):
        return [self.source]


@pytest.fixture
def source() -> ScriptedSource:
    return ScriptedSource()


@pytest.fixture
def service(settings, clock, source):
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="scripted", options={"path": "unused"}),
            "second": RosterSourceConfig(kind="scripted"),
        }
    )
    plugins = PluginManager(
        settings, load_entry_points=False, extra_plugins=[ScriptedPlugin(source)]
    )
    built = build_service(settings, upgrade_schema=True, clock=clock, plugins=plugins)
    yield built
    built.database.dispose()


@pytest.fixture
def district_id(service) -> int:
    return create_district(service, slug="riverside")


def used(service, district_id: int) -> int:
    with service.database.read() as session:
        return current_usage(session, district_id=district_id).active_students


def staged_rows(service) -> int:
    with service.database.read() as session:
        return session.execute(select(func.count()).select_from(RosterStaging)).scalar_one()


def roster(active: int, *, prefix: str = "S") -> list[StudentRecord]:
    return [StudentRecord(source_id=f"{prefix}{number}") for number in range(active)]


async def sync(service, district_id: int, source: str = "sis", **options: Any):
    return await service.roster_sync.sync(
        district_id=district_id, source=source, actor="test", **options
    )


async def test_a_sync_counts_by_the_host_rule_and_reports_exclusions(service, district_id, source):
    source.records = [
        *roster(10),
        StudentRecord(source_id="T1", role="teacher"),
        StudentRecord(source_id="T2", role="administrator"),
        StudentRecord(source_id="G1", status="graduated"),
        StudentRecord(source_id="D1", status="tobedeleted"),
        StudentRecord(source_id="X1", enabled=False),
        StudentRecord(source_id="P1", role="guardian"),
        StudentRecord(source_id="S0-again", person_key="S0"),  # same student, second record
        ServerCount(total=17),
    ]

    outcome = await sync(service, district_id)

    assert outcome.status == "applied"
    assert used(service, district_id) == 10
    assert outcome.excluded == {
        "staff": 2,
        "inactive": 2,
        "disabled": 1,
        "duplicate": 1,
        "other_role": 1,
    }
    assert outcome.server_count == 17
    assert staged_rows(service) == 0


async def test_a_failure_part_way_leaves_the_roster_and_counts_untouched(
    service, district_id, source
):
    source.records = roster(30)
    assert (await sync(service, district_id)).status == "applied"

    source.records = roster(12_000, prefix="N")
    source.fail_after = 11_000
    outcome = await sync(service, district_id)

    assert outcome.status == "failed"
    assert "stopped answering" in outcome.problem.message
    assert used(service, district_id) == 30
    assert staged_rows(service) == 0


async def test_records_stream_in_batches(service, district_id, source):
    source.records = roster(12_001)
    progress: list[int] = []

    outcome = await sync(service, district_id, on_progress=progress.append)

    assert outcome.status == "applied"
    assert progress == [5_000, 10_000, 12_001]
    assert used(service, district_id) == 12_001


async def test_a_bad_record_refuses_the_whole_sync_and_names_it(service, district_id, source):
    source.records = [
        *roster(5),
        StudentRecord(source_id="W", role="wizard"),
        *roster(3, prefix="Z"),
    ]

    outcome = await sync(service, district_id)

    assert outcome.status == "failed"
    assert "line 6" in outcome.problem.message
    assert "wizard" in outcome.problem.message
    assert used(service, district_id) == 0


async def test_the_same_id_twice_refuses_the_sync(service, district_id, source):
    source.records = [*roster(3), StudentRecord(source_id="S1")]

    outcome = await sync(service, district_id)

    assert outcome.status == "failed"
    assert "same id twice" in outcome.problem.message
    assert used(service, district_id) == 0


async def test_a_large_drop_is_held_until_confirmed(service, district_id, source):
    source.records = roster(100)
    await sync(service, district_id)

    source.records = roster(79)  # 21 of 100 active students would stop counting
    outcome = await sync(service, district_id)

    assert outcome.status == "held"
    assert outcome.removed_active == 21
    assert "licensing sync confirm" in outcome.problem.message
    assert used(service, district_id) == 100

    confirmed = await service.roster_sync.confirm(
        district_id=district_id, source="sis", actor="administrator"
    )

    assert confirmed.status == "applied"
    assert used(service, district_id) == 79
    assert staged_rows(service) == 0


async def test_a_drop_within_the_share_applies(service, district_id, source):
    source.records = roster(100)
    await sync(service, district_id)

    source.records = roster(80)

    assert (await sync(service, district_id)).status == "applied"
    assert used(service, district_id) == 80


async def test_two_sources_count_each_student_once(service, district_id, source):
    source.records = roster(10)
    await sync(service, district_id, "sis")
    source.records = [*roster(4), *roster(3, prefix="Other")]  # 4 already counted by "sis"
    await sync(service, district_id, "second")

    assert used(service, district_id) == 13


async def test_an_unknown_source_is_a_clear_failure(service, district_id):
    outcome = await sync(service, district_id, "nope")

    assert outcome.status == "failed"
    assert "no roster source 'nope'" in outcome.problem.message
    assert "second, sis" in outcome.problem.message


async def test_data_sources_shows_each_source_and_its_last_sync(
    service, district_id, source, client
):
    source.records = [*roster(10), StudentRecord(source_id="T1", role="teacher"), ServerCount(11)]
    await sync(service, district_id)
    source.records = roster(3)
    source.fail_after = 1
    await sync(service, district_id)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    data = await graphql_data(
        client,
        token,
        """{ dataSources { name kind configured lastStatus lastError lastSuccessAt records
             activeStudents serverCount held excluded { staff inactive disabled duplicate otherRole } } }""",
    )

    sis, second = sorted(data["dataSources"], key=lambda item: item["name"], reverse=True)
    assert sis["name"] == "sis" and sis["kind"] == "scripted" and sis["configured"]
    assert sis["lastStatus"] == "failed"
    assert "stopped answering" in sis["lastError"]
    assert sis["lastSuccessAt"] is not None
    assert (sis["records"], sis["activeStudents"], sis["serverCount"]) == (11, 10, 11)
    assert sis["excluded"]["staff"] == 1
    assert second["lastStatus"] is None and second["records"] is None


async def test_data_sources_needs_manage_settings(service, district_id, client):
    token = token_for(service, district_id, Permission.VIEW_LICENSE)

    from tests.utils.graphql import graphql

    response = await graphql(client, token, "{ dataSources { name } }")

    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_source_failing_beyond_the_tolerance_raises_sync_failing_until_it_recovers(
    service, district_id, source, clock, issuer
):
    from sqlmodel import select

    from db.models import Alert

    issuer.write("riverside", seats=100)
    await service.license_updater.refresh(district_id=district_id, actor="test")
    source.records = roster(10)
    await sync(service, district_id)

    def open_kinds() -> set[str]:
        service.read_district_state(district_id)
        with service.database.read() as session:
            rows = session.exec(
                select(Alert).where(Alert.district_id == district_id, Alert.resolved_at.is_(None))
            ).all()
        return {row.kind for row in rows}

    source.fail_after = 0
    await sync(service, district_id)
    clock.advance(hours=23)
    await sync(service, district_id)
    assert "SYNC_FAILING" not in open_kinds()

    clock.advance(hours=1, seconds=1)  # 24 hours since the first failure
    assert "SYNC_FAILING" in open_kinds()

    source.fail_after = None
    assert (await sync(service, district_id)).status == "applied"
    assert "SYNC_FAILING" not in open_kinds()
