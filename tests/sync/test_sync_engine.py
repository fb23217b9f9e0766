"""The sync engine: a source's records become its roster all at once, or not at all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from app.runtime import build_service
from db.models import AuditEvent, ChangeEvent, RosterStaging, RosterSyncRun
from licensing.orchestration.plugin_host import load_plugins
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.orchestration.scheduler import ROSTER_CLEANUP_EVERY
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage import roster_changes
from licensing.storage.roster import current_usage, usage_mismatch
from licensing.storage.tokens import Permission
from plugins.hookspecs import hookimpl
from plugins.records import AfterSync, RosterUnchanged, ServerCount, SourceError, StudentRecord
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
        self.nothing_new: str | None = None  # answer RosterUnchanged with this

    def fetch_students(self, *, district, options):
        if self.nothing_new is not None:
            raise RosterUnchanged(self.nothing_new)
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
    plugins = load_plugins(
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


STUDENTS = "{ activeStudents(first: 100) { nodes { id sourceId familyName } } }"


async def test_a_re_sync_keeps_each_students_id_while_the_source_lists_them(
    service, district_id, source, client
):
    """Global ids (and places in lists) survive syncs: a student the source still lists keeps
    their id, changed or not; one it leaves out is gone, a new one gets a new id."""
    source.records = [StudentRecord(source_id=f"S{n}", family_name="Old") for n in range(10)]
    await sync(service, district_id)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    before = (await graphql_data(client, token, STUDENTS))["activeStudents"]["nodes"]
    ids = {node["sourceId"]: node["id"] for node in before}

    source.records = [
        StudentRecord(source_id=f"S{n}", family_name="New" if n == 1 else "Old")  # S1 renamed
        for n in range(11)
        if n != 2  # S2 left out, S10 new
    ]
    assert (await sync(service, district_id)).status == "applied"
    after = (await graphql_data(client, token, STUDENTS))["activeStudents"]["nodes"]

    expected = [f"S{n}" for n in range(11) if n != 2]
    assert [node["sourceId"] for node in after] == expected
    assert [node["familyName"] for node in after][:2] == ["Old", "New"]
    assert [node["id"] for node in after[:-1]] == [ids[name] for name in expected[:-1]]
    assert after[-1]["id"] not in ids.values()
    with service.database.read() as session:
        assert usage_mismatch(session, district_id=district_id) == {}


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
    assert sis["lastStatus"] == "FAILED"
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
    await sync(service, district_id, "second")  # both sources have synced once: counts known

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


# --- A source with nothing new, and a source that tidies up once its records are kept --------


async def test_a_source_with_nothing_new_keeps_the_roster_and_says_so(
    service, district_id, source, client
):
    source.records = roster(10)
    await sync(service, district_id)

    source.nothing_new = "Nothing new: roster-0612.zip was read on 2026-06-12."
    outcome = await sync(service, district_id)

    assert outcome.status == "unchanged"
    assert outcome.note == "Nothing new: roster-0612.zip was read on 2026-06-12."
    assert outcome.problem is None
    assert used(service, district_id) == 10
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    data = await graphql_data(
        client, token, "{ dataSources { name lastStatus lastError records activeStudents } }"
    )
    sis = next(item for item in data["dataSources"] if item["name"] == "sis")
    assert sis == {
        "name": "sis",
        "lastStatus": "UNCHANGED",
        "lastError": None,
        "records": 10,
        "activeStudents": 10,
    }
    with service.database.read() as session:
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
    assert (last.action, last.outcome) == ("roster_sync", "unchanged")
    assert "roster-0612.zip" in last.detail


async def test_nothing_new_after_a_held_sync_leaves_it_waiting(
    service, district_id, source, client
):
    source.records = roster(100)
    await sync(service, district_id)
    source.records = roster(50)
    held = await sync(service, district_id)
    assert held.status == "held"

    source.nothing_new = "Nothing new."
    assert (await sync(service, district_id)).status == "unchanged"

    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    assert (await sis_source(client, token))["held"] is True
    confirmed = await service.roster_sync.confirm(
        district_id=district_id, source="sis", actor="administrator", run_id=held.run_id
    )
    assert confirmed.status == "applied"
    assert used(service, district_id) == 50


async def test_a_failing_source_that_answers_nothing_new_is_healthy_again(
    service, district_id, source, clock, issuer
):
    from db.models import Alert

    issuer.write("riverside", seats=100)
    await service.license_updater.refresh(district_id=district_id, actor="test")
    source.records = roster(10)
    await sync(service, district_id)
    await sync(service, district_id, "second")  # both sources have synced once: counts known
    source.fail_after = 0
    await sync(service, district_id)
    clock.advance(hours=25)

    def open_kinds() -> set[str]:
        service.read_district_state(district_id)
        with service.database.read() as session:
            rows = session.exec(
                select(Alert).where(Alert.district_id == district_id, Alert.resolved_at.is_(None))
            ).all()
        return {row.kind for row in rows}

    assert "SYNC_FAILING" in open_kinds()

    source.nothing_new = "Nothing new."
    assert (await sync(service, district_id)).status == "unchanged"

    assert "SYNC_FAILING" not in open_kinds()
    assert used(service, district_id) == 10


async def test_after_sync_runs_once_the_records_are_kept_and_never_after_a_failure(
    service, district_id, source
):
    told: list[str] = []

    async def tidy(outcome: str) -> None:
        told.append(outcome)

    source.records = [*roster(100), AfterSync(tidy)]
    assert (await sync(service, district_id)).status == "applied"
    source.records = [*roster(50), AfterSync(told.append)]  # a plain function works too
    assert (await sync(service, district_id)).status == "held"
    source.records = [*roster(100), StudentRecord(source_id="W", role="wizard"), AfterSync(tidy)]
    assert (await sync(service, district_id)).status == "failed"

    assert told == ["applied", "held"]


async def test_a_failing_after_sync_step_changes_no_outcome(service, district_id, source):
    def broken(outcome: str) -> None:
        raise OSError("permission denied")

    source.records = [*roster(10), AfterSync(broken)]

    assert (await sync(service, district_id)).status == "applied"
    assert used(service, district_id) == 10


# --- Held syncs never overwrite newer data; syncs whose process died are cleaned up ---------

DATA_SOURCES = "{ dataSources { name lastStatus activeStudents records held } }"
CONFIRM = """mutation($run: Int) { confirmRosterSync(source: "sis", runId: $run) {
    status runId errors { code message } license { used } usage { activeStudents } } }"""


def run_row(service, run_id: int) -> RosterSyncRun:
    with service.database.read() as session:
        return session.get(RosterSyncRun, run_id)


async def sis_source(client, token) -> dict:
    data = await graphql_data(client, token, DATA_SOURCES)
    return next(item for item in data["dataSources"] if item["name"] == "sis")


async def test_a_newer_applied_sync_supersedes_the_held_one(service, district_id, source, client):
    source.records = roster(1000)
    await sync(service, district_id)
    source.records = roster(700)  # 30% would stop counting: held
    held = await sync(service, district_id)
    source.records = roster(850)  # 15%: applied
    applied = await sync(service, district_id)
    assert (held.status, applied.status) == ("held", "applied")
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    by_source = await service.roster_sync.confirm(
        district_id=district_id, source="sis", actor="administrator"
    )
    by_run = await graphql_data(client, token, CONFIRM, {"run": held.run_id})

    assert by_source.status == "failed"
    assert by_source.problem.code == "NOTHING_HELD"
    payload = by_run["confirmRosterSync"]
    assert payload["status"] == "FAILED"
    assert payload["errors"][0]["code"] == "SYNC_SUPERSEDED"
    assert f"run {applied.run_id}" in payload["errors"][0]["message"]
    assert payload["license"] is None and payload["usage"]["activeStudents"] == 850
    assert used(service, district_id) == 850
    assert run_row(service, held.run_id).status == "superseded"
    assert staged_rows(service) == 0
    shown = await sis_source(client, token)
    assert (shown["lastStatus"], shown["activeStudents"], shown["held"]) == ("APPLIED", 850, False)


async def test_a_newer_held_sync_supersedes_the_older_held_one(
    service, district_id, source, client
):
    source.records = roster(1000)
    await sync(service, district_id)
    source.records = roster(700)
    older = await sync(service, district_id)
    source.records = roster(600)
    newer = await sync(service, district_id)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)

    refused = await graphql_data(client, token, CONFIRM, {"run": older.run_id})
    unknown = await graphql_data(client, token, CONFIRM, {"run": 999_999})
    assert refused["confirmRosterSync"]["errors"][0]["code"] == "SYNC_SUPERSEDED"
    assert unknown["confirmRosterSync"]["errors"][0]["code"] == "UNKNOWN_RUN"
    assert used(service, district_id) == 1000

    confirmed = await graphql_data(client, token, CONFIRM, {"run": newer.run_id})

    assert confirmed["confirmRosterSync"]["status"] == "APPLIED"
    assert used(service, district_id) == 600
    shown = await sis_source(client, token)
    assert (shown["lastStatus"], shown["activeStudents"]) == ("APPLIED", 600)


async def test_an_older_run_that_finishes_after_a_newer_one_is_superseded(
    service, district_id, clock
):
    now = clock()
    with service.database.write() as session:
        slow = roster_changes.start_run(
            session, district_id=district_id, source="sis", kind="scripted", actor="a", now=now
        ).id
        roster_changes.stage_rows(session, run_id=slow, rows=[_row("OLD-1")], now=now)
    with service.database.write() as session:
        fast = roster_changes.apply_roster(
            session,
            district_id=district_id,
            source="sis",
            records=[StudentRecord(source_id=f"NEW-{n}") for n in range(3)],
            replace=True,
            now=now,
        )

    with service.database.write() as session:
        late = roster_changes.settle_run(
            session,
            run_id=slow,
            action="roster_sync",
            actor="a",
            now=now,
            guard=roster_changes.DEFAULT_GUARD,
            records=1,
        )

    assert fast.status == "applied"
    assert late.status == "superseded"
    assert late.problem.code == "SYNC_SUPERSEDED"
    assert used(service, district_id) == 3
    assert staged_rows(service) == 0


async def test_a_sync_whose_process_died_is_failed_and_cleaned_up_by_the_next_sync(
    service, district_id, source, clock
):
    source.records = roster(10)
    await sync(service, district_id)
    dead = _die_while_staging(service, district_id, clock, rows=3)

    clock.advance(seconds=service.settings.roster_sync_stale_after_seconds - 1)
    source.records = roster(9)
    assert (await sync(service, district_id, "second")).status == "applied"
    assert run_row(service, dead).status == "running"  # another source's sync leaves it be

    clock.advance(seconds=2)
    outcome = await sync(service, district_id)

    assert outcome.status == "applied"
    reaped = run_row(service, dead)
    assert reaped.status == "failed"
    assert "stopped without finishing" in reaped.error
    assert staged_rows(service) == 0
    assert used(service, district_id) == 9
    with service.database.read() as session:
        assert usage_mismatch(session, district_id=district_id) == {}
        failures = session.exec(select(AuditEvent).where(AuditEvent.outcome == "failed")).all()
    assert len(failures) == 1 and "stopped without finishing" in failures[0].detail


async def test_the_scheduler_reaps_a_dead_sync_without_waiting_for_its_source(
    service, district_id, clock
):
    scheduler = service_scheduler(service, holder="runner-a")
    await scheduler.tick()  # creates the jobs
    dead = _die_while_staging(service, district_id, clock, rows=5)

    clock.advance(seconds=service.settings.roster_sync_stale_after_seconds + 1)
    clock.advance(seconds=ROSTER_CLEANUP_EVERY.total_seconds())
    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}

    assert outcomes["roster_cleanup"].ok
    assert run_row(service, dead).status == "failed"
    assert staged_rows(service) == 0


async def test_a_sync_taken_for_dead_while_still_running_applies_nothing(
    service, district_id, source, clock
):
    source.records = roster(10)
    await sync(service, district_id)

    class StalledThenResumed(ScriptedSource):
        """Delivers a first batch, then stalls longer than the heartbeat allows."""

        def fetch_students(self, *, district, options):
            yield from roster(5_000, prefix="A")
            clock.advance(seconds=service.settings.roster_sync_stale_after_seconds + 1)
            service.roster_sync.reap_stale_runs(actor="scheduler")
            yield from roster(5_000, prefix="B")

    source.fetch_students = StalledThenResumed().fetch_students
    outcome = await sync(service, district_id)

    assert outcome.status == "failed"
    assert "taken for dead" in outcome.problem.message
    assert used(service, district_id) == 10
    assert staged_rows(service) == 0
    with service.database.read() as session:
        latest = session.exec(select(RosterSyncRun).order_by(col(RosterSyncRun.id).desc())).first()
        assert latest.status == "failed"
        assert usage_mismatch(session, district_id=district_id) == {}


async def test_every_settled_run_is_audited_with_its_counts_and_noted_for_live_updates(
    service, district_id, source
):
    source.records = roster(100)
    await sync(service, district_id)
    source.records = roster(50)
    held = await sync(service, district_id)

    with service.database.read() as session:
        event = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc())).first()
        noted = session.execute(
            select(func.count())
            .select_from(ChangeEvent)
            .where(ChangeEvent.topic == "roster_sync", ChangeEvent.subject_id == held.run_id)
        ).scalar_one()

    assert (event.action, event.outcome, event.actor) == ("roster_sync", "held", "test")
    assert json.loads(event.old_value) == {"used": 100, "source_active": 100}
    new = json.loads(event.new_value)
    assert (new["source"], new["source_active"], new["run"]) == ("sis", 50, held.run_id)
    assert noted == 1


def _row(source_id: str) -> dict:
    return {
        "source_id": source_id,
        "person_key": source_id,
        "role": "student",
        "lifecycle": "active",
        "enabled": True,
        "raw_status": "active",
        "given_name": None,
        "family_name": None,
        "username": None,
        "grade": None,
        "school": None,
        "schools": None,
        "graduation_year": None,
        "enrollment_end": None,
        "last_modified": None,
    }


def _die_while_staging(service, district_id: int, clock, *, rows: int) -> int:
    """A sync of `sis` that staged a batch, then its process was killed (nothing more happens)."""
    with service.database.write() as session:
        run_id = roster_changes.start_run(
            session, district_id=district_id, source="sis", kind="scripted", actor="t", now=clock()
        ).id
        roster_changes.stage_rows(
            session, run_id=run_id, rows=[_row(f"D{n}") for n in range(rows)], now=clock()
        )
    assert staged_rows(service) == rows
    return run_id


async def test_a_plugins_warnings_and_quarantined_rows_are_kept_as_storable_text(
    service, district_id, source, client
):
    from plugins.records import IntakeWarning, QuarantinedRow

    source.records = [
        *roster(300),
        IntakeWarning("x" * 5000, file="people.json", line=-3, column="\x00col", rows=0),
        QuarantinedRow("no id \x00 at all", file="people.json", line=7),
        QuarantinedRow(reason=None, line="seven"),  # type: ignore[arg-type]  # a careless plugin
    ]

    outcome = await sync(service, district_id)

    assert (outcome.status, outcome.warnings, outcome.quarantined) == ("applied", 1, 2)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    data = await graphql_data(
        client,
        token,
        "{ dataSources { name warnings { total sample { file line column reason rows } } "
        "quarantined { total sample { file line reason } } } }",
    )
    sis = next(item for item in data["dataSources"] if item["name"] == "sis")
    (warning,) = sis["warnings"]["sample"]
    assert (warning["file"], warning["line"], warning["column"], warning["rows"]) == (
        "people.json",
        None,
        "col",
        1,
    )
    assert len(warning["reason"]) == 1000 and warning["reason"].endswith("…")
    assert sis["quarantined"]["sample"] == [
        {"file": "people.json", "line": 7, "reason": "no id  at all"},
        {"file": None, "line": None, "reason": "(no reason given)"},
    ]
