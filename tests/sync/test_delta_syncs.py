"""Delta syncs through real syncs: OneRoster REST and Clever servers on 127.0.0.1, and OneRoster
CSV delta bundles.

After a first full sync, OneRoster REST reads only what changed (``dateLastModified>``), Clever
its events, and a delta bundle lists changes; the district's ``used`` and ``dataSources`` come out as a full sync of the
same server gives them, a delta that stops counting too many students is held, and the weekly
full sync corrects (and the audit log says so) what the deltas could not see.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from typing import Any

import pytest

from licensing.settings import DistrictConfig, HttpSettings, RosterSourceConfig
from licensing.storage.tokens import Permission
from plugins.builtin.oneroster_csv import USERS_V1P1
from tests.fakes.clever_server import CleverUser, FakeClever, numbered_users
from tests.fakes.oneroster_server import (
    SAMPLE_ACTIVE_STUDENTS,
    FakeOneRoster,
    Person,
    numbered_students,
    sample_students,
)
from tests.fakes.serve import serve
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

LONG_AGO = "2025-01-10T08:00:00.000Z"
SHOWN = """{ license { used } usage { activeStudents inactiveStudents staff }
  dataSources { name lastStatus lastSyncMode lastFullSyncAt records activeStudents held
    excluded { staff inactive disabled duplicate otherRole } } }"""
AUDIT = "{ auditLog(first: 5) { edges { node { action outcome newValue detail } } } }"


@pytest.fixture
def riverside(make_district, settings):
    """riverside(kind, options) -> the district, its one roster source ``sis`` configured."""
    settings.http = HttpSettings(
        retries=2, backoff_seconds=0.01, max_backoff_seconds=0.05, attempt_deadline_seconds=5
    )

    async def make(kind: str, options: dict[str, Any], slug: str = "riverside"):
        settings.districts[slug] = DistrictConfig(
            roster_sources={"sis": RosterSourceConfig(kind=kind, options=options)}
        )
        return await make_district(slug, seats=1000)

    return make


def oneroster_options(url: str, fake: FakeOneRoster) -> dict[str, Any]:
    return {"base_url": url, "client_id": fake.client_id, "client_secret": fake.client_secret}


def aged(people: list[Person]) -> list[Person]:
    """The roster as a SIS holds it: last modified long before the first sync."""
    return [replace(person, modified=LONG_AGO) for person in people]


async def sync(service, district, **options: Any):
    return await service.roster_sync.sync(
        district_id=district.id, source="sis", actor="test", **options
    )


async def shown(service, client, district) -> dict[str, Any]:
    """What an administrator sees: the count, the usage and the source in dataSources."""
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS)
    data = await graphql_data(client, token, SHOWN)
    (source,) = [item for item in data["dataSources"] if item["name"] == "sis"]
    return {"used": data["license"]["used"], "usage": data["usage"], **source}


def comparable(view: dict[str, Any]) -> dict[str, Any]:
    """The figures a delta must get exactly as a full sync does."""
    return {
        key: value
        for key, value in view.items()
        if key not in ("lastSyncMode", "lastFullSyncAt", "lastStatus")
    }


async def audit(service, client, district) -> list[dict[str, Any]]:
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS)
    data = await graphql_data(client, token, AUDIT)
    return [edge["node"] for edge in data["auditLog"]["edges"]]


# --- OneRoster REST: dateLastModified filters ---------------------------------------------------


async def test_a_oneroster_delta_reads_only_changes_and_counts_as_a_full_sync(
    service, client, riverside
):
    fake = FakeOneRoster(students=aged(sample_students()))
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        first = await sync(service, district)
        assert (first.status, first.mode) == ("applied", "full")
        assert (await shown(service, client, district))["used"] == SAMPLE_ACTIVE_STUDENTS

        fake.add(Person("s-009", identifier="ST-1009", master_identifier="STATE-1009"))
        fake.change("s-002", grades=("8",), orgs=("sch-oak",))
        fake.delete("s-007")  # tobedeleted: kept as the full listing gives it, never counted
        fake.requests.clear()
        delta = await sync(service, district)
        after_delta = await shown(service, client, district)

        # The delta asked only for what changed since the first sync began.
        (asked,) = set(fake.filters())
        assert asked is not None and asked.startswith("dateLastModified>'")
        assert (delta.status, delta.mode) == ("applied", "delta")
        assert after_delta["used"] == SAMPLE_ACTIVE_STUDENTS + 1 - 1
        assert after_delta["lastSyncMode"] == "DELTA"

        full = await sync(service, district, full=True)
        after_full = await shown(service, client, district)

    assert full.mode == "full"
    assert fake.filters()[-1] is None  # the full sync read everything
    assert comparable(after_delta) == comparable(after_full)
    (reconcile, *_) = await audit(service, client, district)
    assert "matched the source exactly" in reconcile["detail"]
    assert reconcile["newValue"]["corrected"] == 0


async def test_the_filter_returns_only_users_modified_after_the_time(service, client, riverside):
    """The fake server's filter has the real semantics: after the time, tobedeleted included."""
    fake = FakeOneRoster(students=aged(numbered_students(30)))
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        await sync(service, district)
        fake.delete("n-00003")
        fake.change("n-00004", given_name="Renamed")
        fake.requests.clear()
        outcome = await sync(service, district)

    assert outcome.mode == "delta"
    # Two records read (one tobedeleted), applied as changes: 30 stored, 29 counted.
    assert (await shown(service, client, district))["used"] == 29
    assert outcome.records == 30


async def test_a_delta_that_stops_counting_too_many_is_held(service, client, riverside):
    fake = FakeOneRoster(students=aged(numbered_students(20)))
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        await sync(service, district)
        for number in range(1, 6):  # 5 of 20 (25%, more than the 20% allowed)
            fake.delete(f"n-{number:05d}")
        held = await sync(service, district)
        while_held = await shown(service, client, district)
        confirmed = await service.roster_sync.confirm(
            district_id=district.id, source="sis", actor="admin"
        )

    assert (held.status, held.mode) == ("held", "delta")
    assert (while_held["used"], while_held["held"]) == (20, True)
    (event, *_) = await audit(service, client, district)
    assert (event["action"], event["outcome"]) == ("ROSTER_SYNC_CONFIRM", "APPLIED")
    assert confirmed.status == "applied"
    assert (await shown(service, client, district))["used"] == 15


async def test_the_weekly_full_sync_corrects_what_deltas_missed_and_says_so(
    service, client, riverside, clock
):
    fake = FakeOneRoster(students=aged(numbered_students(12)))
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        await sync(service, district)
        fake.forget("n-00001")  # gone without a tobedeleted record: no delta can see it
        clock.advance(days=1)
        nightly = await sync(service, district)
        assert (nightly.mode, (await shown(service, client, district))["used"]) == ("delta", 12)

        clock.advance(days=6)  # a week after the last full sync
        weekly = await sync(service, district)

    assert weekly.mode == "full"
    view = await shown(service, client, district)
    assert (view["used"], view["lastSyncMode"]) == (11, "FULL")
    (reconcile, *_) = await audit(service, client, district)
    assert reconcile["outcome"] == "APPLIED"
    assert "full sync corrected 1 record(s)" in reconcile["detail"]
    assert reconcile["newValue"]["corrected"] == 1


async def test_delta_syncs_can_be_turned_off_for_a_server_that_cannot_filter(
    service, client, riverside
):
    fake = FakeOneRoster(students=aged(numbered_students(5)))
    with serve(fake.app) as url:
        options = {**oneroster_options(url, fake), "delta_syncs": False}
        district = await riverside("oneroster_rest", options)
        await sync(service, district)
        second = await sync(service, district)

    assert second.mode == "full"
    assert fake.filters() == [None, None, None, None]  # two syncs, each to its empty page


# --- Clever: the events API ---------------------------------------------------------------------


def clever_options(url: str, fake: FakeClever) -> dict[str, Any]:
    return {"base_url": url, "token": fake.token}


async def test_a_clever_delta_applies_user_events_and_counts_as_a_full_sync(
    service, client, riverside
):
    fake = FakeClever(users=numbered_users(10), events_page_size=2)
    with serve(fake.app) as url:
        district = await riverside("clever", clever_options(url, fake))
        first = await sync(service, district)
        assert (first.mode, (await shown(service, client, district))["used"]) == ("full", 10)

        fake.create(CleverUser("u-00011", sis_id="U-00011"))
        fake.update(CleverUser("u-00002", sis_id="U-00002", grade="8"))
        fake.update(CleverUser("u-00003", role="teacher", sis_id="U-00003"))  # no longer a student
        fake.remove("u-00004")
        fake.create(CleverUser("u-00012", sis_id="U-00012"))
        fake.remove("u-00012")  # created and deleted between two syncs: the last event wins
        fake.event_requests.clear()
        delta = await sync(service, district)
        after_delta = await shown(service, client, district)
        event_pages = list(fake.event_requests)

        full = await sync(service, district, full=True)
        after_full = await shown(service, client, district)

    assert (delta.status, delta.mode) == ("applied", "delta")
    assert after_delta["used"] == 10 + 1 - 2
    # The events were read from the one newest at the first sync, page by page (2 a page).
    assert event_pages[0].query["starting_after"] == fake.initial_event_id
    assert len(event_pages) >= 3
    assert full.mode == "full"
    assert comparable(after_delta) == comparable(after_full)


async def test_a_clever_cursor_too_old_for_the_events_api_falls_back_to_a_full_sync(
    service, client, riverside
):
    fake = FakeClever(users=numbered_users(4))
    with serve(fake.app) as url:
        district = await riverside("clever", clever_options(url, fake))
        await sync(service, district)
        fake.create(CleverUser("u-00005", sis_id="U-00005"))
        fake.expire_events()  # past Clever's 30 days: the cursor's event is gone
        outcome = await sync(service, district)

    assert (outcome.status, outcome.mode) == ("applied", "full")
    assert (await shown(service, client, district))["used"] == 5


# --- OneRoster CSV: delta bundles ----------------------------------------------------------------


def write_csv_bundle(folder, mode: str, rows: list[tuple[str, str, str]]) -> None:
    """A OneRoster 1.1 bundle of students: (sourcedId, status, enabledUser) each."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = [
        ("propertyName", "value"),
        ("manifest.version", "1.0"),
        ("oneroster.version", "1.1"),
        ("file.users", mode),
    ]
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(manifest)
    with open(folder / "users.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(USERS_V1P1)
        for sourced_id, status, enabled in rows:
            user = dict.fromkeys(USERS_V1P1, "")
            modified = "2026-11-20T10:00:00Z" if mode == "delta" else ""
            user.update(
                sourcedId=sourced_id,
                status=status,
                dateLastModified=modified,
                enabledUser=enabled,
                orgSourcedIds="org1",
                role="student",
                username=sourced_id,
                givenName="Given",
                familyName="Family",
                identifier=f"ID-{sourced_id}",
                grades="7",
            )
            writer.writerow([user[column] for column in USERS_V1P1])


async def test_a_csv_delta_bundle_changes_the_roster_as_a_full_bundle_would(
    service, client, riverside, tmp_path
):
    bundle = tmp_path / "export"
    students = [(f"stu-{number:02d}", "", "true") for number in range(1, 11)]
    write_csv_bundle(bundle, "bulk", students)
    district = await riverside("oneroster_csv", {"path": str(bundle), "allow_delta": True})
    assert (await sync(service, district)).mode == "full"

    write_csv_bundle(
        bundle,
        "delta",
        [
            ("stu-01", "tobedeleted", "true"),  # removed
            ("stu-02", "active", "false"),  # disabled: kept, no longer counted
            ("stu-11", "active", "true"),  # new
        ],
    )
    delta = await sync(service, district)
    after_delta = await shown(service, client, district)

    # The roster the SIS now has, as a bulk export gives it.
    final = [("stu-02", "", "false"), *students[2:], ("stu-11", "", "true")]
    write_csv_bundle(bundle, "bulk", final)
    full = await sync(service, district)
    after_full = await shown(service, client, district)

    assert (delta.status, delta.mode, full.mode) == ("applied", "delta", "full")
    assert after_delta["used"] == 10 - 2 + 1
    assert comparable(after_delta) == comparable(after_full)
    (reconcile, delta_event, *_) = await audit(service, client, district)
    assert "matched the source exactly" in reconcile["detail"]
    assert delta_event["detail"] == (
        "sis: delta of 3 change(s): 2 record(s) added or updated, 1 removed."
    )
    assert delta_event["newValue"]["mode"] == "delta"


async def test_a_csv_delta_removing_too_many_is_held_until_confirmed(
    service, client, riverside, tmp_path
):
    bundle = tmp_path / "export"
    write_csv_bundle(bundle, "bulk", [(f"stu-{n:02d}", "", "true") for n in range(1, 11)])
    district = await riverside("oneroster_csv", {"path": str(bundle), "allow_delta": True})
    await sync(service, district)
    write_csv_bundle(bundle, "delta", [(f"stu-{n:02d}", "tobedeleted", "true") for n in (1, 2, 3)])

    held = await sync(service, district)
    while_held = await shown(service, client, district)
    (event, *_) = await audit(service, client, district)
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS)
    confirmed = await graphql_data(
        client,
        token,
        'mutation { confirmRosterSync(source: "sis") { status license { used } errors { code } } }',
    )

    assert (held.status, held.mode) == ("held", "delta")
    assert (while_held["used"], while_held["held"]) == (10, True)
    assert (event["action"], event["outcome"]) == ("ROSTER_SYNC", "HELD")
    assert "would stop counting 3 of the 10 active students" in event["detail"]
    assert confirmed["confirmRosterSync"] == {
        "status": "APPLIED",
        "license": {"used": 7},
        "errors": [],
    }


async def test_a_delta_bundle_is_refused_unless_the_source_allows_deltas(
    service, client, riverside, tmp_path
):
    bundle = tmp_path / "export"
    write_csv_bundle(bundle, "bulk", [(f"stu-{n:02d}", "", "true") for n in range(1, 6)])
    district = await riverside("oneroster_csv", {"path": str(bundle)})
    await sync(service, district)
    write_csv_bundle(bundle, "delta", [("stu-06", "active", "true")])

    outcome = await sync(service, district)

    assert outcome.status == "failed"
    assert "set allow_delta = true" in outcome.problem.message
    assert (await shown(service, client, district))["used"] == 5
