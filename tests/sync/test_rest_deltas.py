"""Delta syncs from REST sources, through real syncs against servers on 127.0.0.1.

After a first full sync, OneRoster REST reads only what changed (``dateLastModified>``) and
Clever its events; the district's ``used`` and ``dataSources`` come out as a full sync of the
same server gives them, a delta that stops counting too many students is held, and the weekly
full sync corrects (and the audit log says so) what the deltas could not see.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from licensing.settings import DistrictConfig, HttpSettings, RosterSourceConfig
from licensing.storage.tokens import Permission
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
        assert after_delta["lastSyncMode"] == "delta"

        full = await sync(service, district, full=True)
        after_full = await shown(service, client, district)

    assert full.mode == "full"
    assert fake.filters()[-1] is None  # the full sync read everything
    assert comparable(after_delta) == comparable(after_full)
    (reconcile, *_) = await audit(service, client, district)
    assert "matched the source exactly" in reconcile["detail"]
    assert json.loads(reconcile["newValue"])["corrected"] == 0


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
    assert (event["action"], event["outcome"]) == ("roster_sync_confirm", "applied")
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
    assert (view["used"], view["lastSyncMode"]) == (11, "full")
    (reconcile, *_) = await audit(service, client, district)
    assert reconcile["outcome"] == "applied"
    assert "full sync corrected 1 record(s)" in reconcile["detail"]
    assert json.loads(reconcile["newValue"])["corrected"] == 1


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
