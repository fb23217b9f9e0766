"""A roster that never synced, whose last sync failed or is held, shows so in license, usage and
dataSources, and raises SYNC_FAILING at once; a district whose students are kept here never does."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest
from sqlmodel import select

from db.models import Alert
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.settings import DistrictConfig, RosterSourceConfig
from tests.utils.graphql import graphql, graphql_data
from tests.utils.oneroster_bundle import write_users_bundle

pytestmark = pytest.mark.anyio

STATE = """{
  license { display level used total rosterStatus { state countsKnown source since reason } }
  usage { activeStudents rosterStatus { state countsKnown source since reason } }
  dataSources { name lastStatus rosterStatus { state countsKnown source since reason } }
  alerts { kind message }
}"""


@pytest.fixture
def export(tmp_path):
    """Where the district's SIS drops its OneRoster bundle."""
    return tmp_path / "export"


@pytest.fixture
def settings(settings, export):
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )
    return settings


async def state(client, district) -> dict:
    return await graphql_data(client, district.manager_token, STATE)


def stored_alert_kinds(service, district_id: int) -> set[str]:
    """The open alerts as stored (what notifications and webhooks see), read without the API."""
    with service.database.read() as session:
        rows = session.exec(
            select(Alert).where(Alert.district_id == district_id, Alert.resolved_at.is_(None))
        ).all()
    return {row.kind for row in rows}


async def sync(service, district):
    return await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")


async def test_a_roster_that_never_synced_shows_unknown_counts_and_an_alert(client, make_district):
    district = await make_district("riverside", seats=1000)

    data = await state(client, district)

    never = {
        "state": "NEVER_SYNCED",
        "countsKnown": False,
        "source": "sis",
        "since": None,
        "reason": "Roster source 'sis' has not completed a sync yet.",
    }
    assert data["license"]["display"] == "? / 1000"
    # The level is the rule's on the students known; the display and rosterStatus say the
    # count is not the district's.
    assert (data["license"]["used"], data["license"]["level"]) == (0, "GREEN")
    assert data["license"]["rosterStatus"] == never
    assert data["usage"]["rosterStatus"] == never
    assert data["dataSources"] == [{"name": "sis", "lastStatus": None, "rosterStatus": never}]
    [alert] = data["alerts"]
    assert alert["kind"] == "SYNC_FAILING"
    assert "roster source 'sis' has not completed a sync" in alert["message"]


async def test_a_first_sync_that_fails_is_alerted_at_once_with_its_reason(
    service, client, clock, make_district
):
    district = await make_district("riverside", seats=1000)
    failed_at = clock()

    # The scheduler's first sync of the new district: the export is not there.
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()
    clock.advance(minutes=2)
    await scheduler.tick()

    # Raised in the sync's own transaction, before anyone reads the tab.
    assert stored_alert_kinds(service, district.id) == {"SYNC_FAILING"}
    data = await state(client, district)
    status = data["license"]["rosterStatus"]
    assert status["state"] == "FAILED"
    assert status["countsKnown"] is False
    assert failed_at <= datetime.fromisoformat(status["since"]) <= clock()
    assert status["reason"] == (
        "Roster source 'sis' has never synced successfully; its students are not counted."
    )
    assert data["usage"]["rosterStatus"] == status
    assert data["dataSources"][0]["lastStatus"] == "FAILED"
    assert data["dataSources"][0]["rosterStatus"] == status
    assert data["license"]["display"] == "? / 1000"
    [alert] = data["alerts"]
    assert alert["kind"] == "SYNC_FAILING"
    assert "has never synced successfully" in alert["message"]


async def test_a_failure_after_a_good_sync_keeps_the_counts_and_waits_for_the_tolerance(
    service, client, clock, make_district, export
):
    district = await make_district("riverside", seats=1000)
    write_users_bundle(export, active=960)
    assert (await sync(service, district)).status == "applied"
    data = await state(client, district)
    assert data["license"]["display"] == "960 / 1000"
    assert data["license"]["level"] == "YELLOW"
    assert data["license"]["rosterStatus"]["state"] == "CURRENT"
    assert data["license"]["rosterStatus"]["countsKnown"] is True
    assert [alert["kind"] for alert in data["alerts"]] == ["LICENSES_LOW"]

    shutil.rmtree(export)
    clock.advance(hours=1)
    await sync(service, district)
    data = await state(client, district)
    status = data["license"]["rosterStatus"]
    assert (status["state"], status["countsKnown"]) == ("FAILED", True)
    assert data["license"]["display"] == "960 / 1000"  # the last good roster still counts
    assert "SYNC_FAILING" not in {alert["kind"] for alert in data["alerts"]}

    clock.advance(hours=24)
    data = await state(client, district)
    assert "SYNC_FAILING" in {alert["kind"] for alert in data["alerts"]}


async def test_a_held_sync_is_shown_and_alerted_at_once_until_confirmed(
    service, client, clock, make_district, export
):
    district = await make_district("riverside", seats=1000)
    write_users_bundle(export, active=960)
    await sync(service, district)

    write_users_bundle(export, active=400)  # a broken export: most students gone
    clock.advance(hours=1)
    held = await sync(service, district)
    assert held.status == "held"

    assert "SYNC_FAILING" in stored_alert_kinds(service, district.id)
    data = await state(client, district)
    status = data["license"]["rosterStatus"]
    assert status["state"] == "HELD"
    assert status["countsKnown"] is True
    assert datetime.fromisoformat(status["since"]) == clock()
    assert "held for an administrator's confirmation" in status["reason"]
    assert data["license"]["display"] == "960 / 1000"
    assert data["dataSources"][0]["rosterStatus"]["state"] == "HELD"
    [sync_failing] = [alert for alert in data["alerts"] if alert["kind"] == "SYNC_FAILING"]
    assert "is held for an administrator's confirmation" in sync_failing["message"]

    confirmed = await graphql_data(
        client,
        district.manager_token,
        'mutation($run: Int) { confirmRosterSync(source: "sis", runId: $run) { status } }',
        {"run": held.run_id},
    )
    assert confirmed["confirmRosterSync"]["status"] == "APPLIED"
    data = await state(client, district)
    assert data["license"]["rosterStatus"]["state"] == "CURRENT"
    assert data["license"]["display"] == "400 / 1000"
    assert "SYNC_FAILING" not in {alert["kind"] for alert in data["alerts"]}


async def test_a_held_sync_says_what_applying_it_would_change(
    service, client, clock, make_district, export
):
    district = await make_district("riverside", seats=1000)
    write_users_bundle(export, active=960)
    await sync(service, district)
    query = "{ dataSources { held heldSync { runId heldAt activeStudentsBefore activeStudentsAfter } } }"
    [source] = (await graphql_data(client, district.manager_token, query))["dataSources"]
    assert (source["held"], source["heldSync"]) == (False, None)

    write_users_bundle(export, active=400)
    clock.advance(hours=1)
    held = await sync(service, district)
    [source] = (await graphql_data(client, district.manager_token, query))["dataSources"]
    assert source["heldSync"] == {
        "runId": held.run_id,
        "heldAt": clock().isoformat(),
        "activeStudentsBefore": 960,
        "activeStudentsAfter": 400,
    }

    await graphql_data(
        client,
        district.manager_token,
        'mutation($run: Int) { confirmRosterSync(source: "sis", runId: $run) { status } }',
        {"run": held.run_id},
    )
    [source] = (await graphql_data(client, district.manager_token, query))["dataSources"]
    assert source["heldSync"] is None


DISCARD = """mutation($source: String!, $run: Int!) {
  discardRosterSync(source: $source, runId: $run) {
    status runId license { display } usage { rosterStatus { state } } errors { code }
  }
}"""


async def test_a_discarded_held_sync_keeps_the_roster_in_force_and_is_audited(
    service, client, clock, make_district, export
):
    district = await make_district("riverside", seats=1000)
    write_users_bundle(export, active=960)
    await sync(service, district)
    write_users_bundle(export, active=400)
    clock.advance(hours=1)
    held = await sync(service, district)
    token = district.manager_token

    discarded = await graphql_data(client, token, DISCARD, {"source": "sis", "run": held.run_id})

    assert discarded["discardRosterSync"] == {
        "status": "DISCARDED",
        "runId": held.run_id,
        "license": {"display": "960 / 1000"},
        "usage": {"rosterStatus": {"state": "CURRENT"}},
        "errors": [],
    }
    assert "SYNC_FAILING" not in stored_alert_kinds(service, district.id)
    [source] = (await graphql_data(client, token, "{ dataSources { held heldSync { runId } } }"))[
        "dataSources"
    ]
    assert source == {"held": False, "heldSync": None}
    [entry] = (
        await graphql_data(
            client,
            token,
            "{ auditLog(first: 1, actions: [ROSTER_SYNC_DISCARD]) { nodes { outcome newValue } } }",
        )
    )["auditLog"]["nodes"]
    assert entry["outcome"] == "DISCARDED"
    assert entry["newValue"]["run"] == held.run_id
    assert entry["newValue"]["source_active"] == 960  # nothing changed

    # Neither discarded nor confirmed twice: it no longer waits.
    again = await graphql_data(client, token, DISCARD, {"source": "sis", "run": held.run_id})
    assert again["discardRosterSync"]["errors"] == [{"code": "NOT_HELD"}]
    confirm = await graphql_data(
        client,
        token,
        'mutation($run: Int) { confirmRosterSync(source: "sis", runId: $run) { errors { code } } }',
        {"run": held.run_id},
    )
    assert confirm["confirmRosterSync"]["errors"] == [{"code": "NOT_HELD"}]

    # The next sync of the source is judged afresh: the same broken export is held again.
    clock.advance(hours=1)
    assert (await sync(service, district)).status == "held"


async def test_discarding_needs_manage_settings_and_a_run_of_the_source(
    service, client, make_district
):
    district = await make_district("riverside", seats=1000)
    viewer = await graphql(client, district.viewer_token, DISCARD, {"source": "sis", "run": 1})
    assert viewer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    unknown = await graphql_data(
        client, district.manager_token, DISCARD, {"source": "sis", "run": 999}
    )
    assert unknown["discardRosterSync"]["errors"] == [{"code": "UNKNOWN_RUN"}]


async def test_a_district_whose_students_are_kept_here_is_never_flagged(client, make_district):
    # Like the demo: no synced source, the local roster only.
    district = await make_district("oakhill", seats=1000, active=960)

    data = await state(client, district)

    assert data["license"]["display"] == "960 / 1000"
    assert data["license"]["level"] == "YELLOW"
    current = {"state": "CURRENT", "countsKnown": True, "source": None, "since": None}
    assert {key: data["usage"]["rosterStatus"][key] for key in current} == current
    assert [alert["kind"] for alert in data["alerts"]] == ["LICENSES_LOW"]
    assert data["dataSources"][0]["name"] == "local"
    assert data["dataSources"][0]["rosterStatus"]["state"] == "CURRENT"
