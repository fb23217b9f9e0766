"""Kept answers and the sign-in cache never answer with stale data.

A query asked again is answered from the worker's memory (graph/answers.py), and a token or
session that signed in before signs in with one read of the district's version
(licensing/storage/sign_in_cache.py). Each test here makes one kind of change and checks that
the very next request sees it: on the app that made the change, and on a second app built on
the same database (another worker, as far as the caches can tell: they share nothing but the
database). Run on PostgreSQL too with LICENSING_TEST_DATABASE_URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from app.runtime import build_service
from db.models import ApiToken
from graph.auth import SESSION_COOKIE
from graph.conditional import UNVERSIONED_ROOT_FIELDS, VERSIONED_ROOT_FIELDS
from graph.schema import build_schema
from graph.strawberry_compat import graphql_core_schema
from licensing.orchestration.service import LicensingService
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.tokens import hash_token, withdraw_token
from tests.utils.graphql import graphql
from tests.utils.oneroster_bundle import write_users_bundle

pytestmark = pytest.mark.anyio

TAB = {"X-Requested-With": "licensing-tab"}
DASHBOARD = """query Dashboard {
  license { display level status daysUntilExpiration stale }
  usage { activeStudents }
  alerts { kind message }
}"""
MANAGER = """query Manager {
  license { display level }
  licenseSettings { studentsRemainingThreshold }
  alerts { kind }
}"""


@pytest.fixture
def second_service(settings, clock) -> Iterator[LicensingService]:
    """Another worker's service: the same database and clock, caches of its own."""
    second = build_service(settings, upgrade_schema=False, clock=clock)
    yield second
    second.database.dispose()


@pytest.fixture
async def other_worker(second_service, client_factory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app (another create_app) on the second service."""
    async with client_factory(second_service) as http:
        yield http


@pytest.fixture(params=["same worker", "other worker"])
def reader(request, client, other_worker) -> httpx.AsyncClient:
    """Who reads after the change: the app that made it, or the second one."""
    return client if request.param == "same worker" else other_worker


async def data(http: httpx.AsyncClient, token: str, query: str = DASHBOARD) -> dict[str, Any]:
    response = await graphql(http, token, query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


async def kept(http: httpx.AsyncClient, token: str, query: str = DASHBOARD) -> dict[str, Any]:
    """The answer, asked twice so that the second comes from the reader's kept answers."""
    first = await data(http, token, query)
    assert await data(http, token, query) == first
    return first


def test_every_root_field_is_placed_as_versioned_or_not():
    """A new root field must be put in one list, deciding whether its answer may be kept."""
    query_type = graphql_core_schema(build_schema()).query_type
    assert query_type is not None
    fields = set(query_type.fields) | {
        "__typename",
        "__schema",
        "__type",
    }
    assert VERSIONED_ROOT_FIELDS.isdisjoint(UNVERSIONED_ROOT_FIELDS)
    assert fields == VERSIONED_ROOT_FIELDS | UNVERSIONED_ROOT_FIELDS


async def test_a_query_asked_again_is_answered_without_running_and_still_charged(
    client, make_district, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    first = await graphql(client, district.viewer_token, DASHBOARD)
    reads = 0
    read_state = service.district_state

    async def counted(district_id: int):
        nonlocal reads
        reads += 1
        return await read_state(district_id)

    monkeypatch.setattr(service, "district_state", counted)
    again = await graphql(client, district.viewer_token, DASHBOARD)

    assert reads == 0
    assert again.json()["data"] == first.json()["data"]
    assert again.headers["content-type"] == "application/json"
    first_cost, again_cost = first.json()["extensions"]["cost"], again.json()["extensions"]["cost"]
    assert again_cost["requested"] == first_cost["requested"]
    # Each answer reports the budget as it is after its own request.
    assert again_cost["remaining"] == first_cost["remaining"] - first_cost["requested"]
    assert f"r={again_cost['remaining']};" in again.headers["ratelimit"]


async def test_answers_are_kept_per_token_and_variables(client, make_district, service):
    district = await make_district(seats=1000, active=960)
    viewer = "{ viewer { token { name permissions } } }"
    as_viewer = await kept(client, district.viewer_token, viewer)
    as_manager = await kept(client, district.manager_token, viewer)
    assert as_viewer["viewer"]["token"]["permissions"] == ["VIEW_LICENSE"]
    assert as_manager["viewer"]["token"]["permissions"] == ["MANAGE_SETTINGS", "VIEW_LICENSE"]
    check = "query Check($n: Int!) { licenseCheck(additionalStudents: $n) { allowed } }"
    few = await graphql(client, district.viewer_token, check, {"n": 1})
    many = await graphql(client, district.viewer_token, check, {"n": 500})
    assert few.json()["data"]["licenseCheck"]["allowed"] is True
    assert many.json()["data"]["licenseCheck"]["allowed"] is False


async def test_answers_with_errors_and_unversioned_fields_are_not_kept(
    client, make_district, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    forbidden = "{ license { display } licenseSettings { studentsRemainingThreshold } }"
    jobs = "{ scheduledJobs { name nextRunAt } }"
    await graphql(client, district.viewer_token, forbidden)
    await graphql(client, district.manager_token, jobs)
    reads = 0
    read_state = service.district_state

    async def counted(district_id: int):
        nonlocal reads
        reads += 1
        return await read_state(district_id)

    monkeypatch.setattr(service, "district_state", counted)
    refused = await graphql(client, district.viewer_token, forbidden)
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert reads == 1  # ran again
    runs = 0
    scheduled_jobs = service.scheduled_jobs

    async def counted_jobs(district_id: int):
        nonlocal runs
        runs += 1
        return await scheduled_jobs(district_id)

    monkeypatch.setattr(service, "scheduled_jobs", counted_jobs)
    await graphql(client, district.manager_token, jobs)
    assert runs == 1


async def test_a_threshold_change_is_seen_at_once(client, reader, make_district):
    district = await make_district(seats=1000, active=960, threshold=30)
    before = await kept(reader, district.manager_token, MANAGER)
    assert (before["licenseSettings"]["studentsRemainingThreshold"], before["alerts"]) == (30, [])

    response = await graphql(
        client,
        district.manager_token,
        "mutation { setThreshold(studentsRemaining: 50) { errors { code } } }",
    )
    assert response.json()["data"]["setThreshold"]["errors"] == []

    after = await data(reader, district.manager_token, MANAGER)
    assert after["licenseSettings"]["studentsRemainingThreshold"] == 50
    assert after["license"]["level"] == "YELLOW"
    assert [alert["kind"] for alert in after["alerts"]] == ["LICENSES_LOW"]


async def test_a_license_update_is_seen_at_once(reader, make_district, service, issuer):
    district = await make_district(seats=1000, active=960)
    assert (await kept(reader, district.viewer_token))["license"]["display"] == "960 / 1000"

    issuer.write(district.slug, seats=1100)
    await service.license_updater.refresh(district_id=district.id, actor="test")

    assert (await data(reader, district.viewer_token))["license"]["display"] == "960 / 1100"


async def test_a_roster_sync_is_seen_at_once(reader, make_district, service, tmp_path):
    export = tmp_path / "export"
    service.settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )
    district = await make_district(seats=1000)
    assert (await kept(reader, district.viewer_token))["usage"]["activeStudents"] == 0

    write_users_bundle(export, active=700, inactive=5)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")

    assert (await data(reader, district.viewer_token))["usage"]["activeStudents"] == 700


async def test_deactivating_a_local_student_is_seen_at_once(client, reader, make_district):
    district = await make_district(seats=1000, active=960)
    assert (await kept(reader, district.viewer_token))["usage"]["activeStudents"] == 960

    await graphql(
        client,
        district.manager_token,
        'mutation { deactivateStudents(ids: ["riverside-000001"]) { changed } }',
    )

    assert (await data(reader, district.viewer_token))["usage"]["activeStudents"] == 959


async def test_a_revoked_token_is_refused_on_the_next_request(reader, make_district, service):
    district = await make_district(seats=1000, active=960)
    await kept(reader, district.viewer_token)
    await kept(reader, district.manager_token)
    with service.database.read() as session:
        token_id = session.exec(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(district.viewer_token))
        ).one()

    assert withdraw_token(
        service.database,
        district_id=district.id,
        token_id=token_id,
        actor="test",
        now=service.clock(),
    )

    response = await graphql(reader, district.viewer_token, DASHBOARD)
    assert response.status_code == 401
    # Another token of the district still signs in.
    assert (await data(reader, district.manager_token))["license"]["display"] == "960 / 1000"


async def test_a_signed_out_session_is_refused_on_the_next_request(client, reader, make_district):
    district = await make_district(seats=1000, active=960)
    signed_in = await client.post("/session", json={"token": district.viewer_token}, headers=TAB)
    cookie = signed_in.cookies[SESSION_COOKIE]
    tab = {**TAB, "Cookie": f"{SESSION_COOKIE}={cookie}"}

    async def as_tab() -> httpx.Response:
        return await reader.post("/graphql", json={"query": DASHBOARD}, headers=tab)

    assert (await as_tab()).status_code == 200
    assert (await as_tab()).status_code == 200  # now signed in from the reader's cache

    signed_out = await client.delete("/session", headers=tab)
    assert signed_out.status_code == 200

    assert (await as_tab()).status_code == 401
    assert (await reader.get("/session", headers=tab)).status_code == 401


async def test_a_session_ends_at_its_idle_expiry_however_it_was_cached(
    client, reader, make_district, clock
):
    district = await make_district(seats=1000, active=960)
    signed_in = await client.post("/session", json={"token": district.viewer_token}, headers=TAB)
    tab = {**TAB, "Cookie": f"{SESSION_COOKIE}={signed_in.cookies[SESSION_COOKIE]}"}
    for _ in range(2):
        response = await reader.post("/graphql", json={"query": DASHBOARD}, headers=tab)
        assert response.status_code == 200

    clock.advance(minutes=31)  # the default idle expiry is 30 minutes

    response = await reader.post("/graphql", json={"query": DASHBOARD}, headers=tab)
    assert response.status_code == 401


async def test_midnight_in_the_districts_time_zone_is_seen_at_once(reader, make_district, clock):
    # 23:59 in Chicago (05:59 UTC): the license is valid through the end of the day.
    clock.set(datetime(2026, 11, 29, 5, 59, tzinfo=UTC))
    district = await make_district(
        seats=1000, active=960, time_zone="America/Chicago", expires_on=date(2026, 11, 28)
    )
    before = await kept(reader, district.viewer_token)
    assert (before["license"]["status"], before["license"]["daysUntilExpiration"]) == ("ACTIVE", 0)

    clock.advance(minutes=1, seconds=30)  # 00:00:30 in Chicago, still 29 November in UTC

    after = await data(reader, district.viewer_token)
    assert (after["license"]["status"], after["license"]["daysUntilExpiration"]) == ("EXPIRED", -1)
    assert "EXPIRED" in [alert["kind"] for alert in after["alerts"]]


async def test_an_alert_due_with_time_alone_is_seen_when_it_is_due(
    reader, make_district, service, second_service, clock
):
    """SYNC_FAILING is due once the license has failed to refresh for the tolerance: no write
    marks that moment, so a kept answer expires at it."""
    for each in (service, second_service):
        each.alert_policy = replace(each.alert_policy, sync_failing_tolerance=timedelta(hours=1))
    district = await make_district(seats=1000, active=500)
    service.settings.license_file_for(district.slug).write_bytes(b"not a license")
    await service.license_updater.refresh(district_id=district.id, actor="test")
    before = await kept(reader, district.viewer_token)
    assert (before["license"]["stale"], before["alerts"]) == (True, [])

    clock.advance(minutes=59)
    assert (await data(reader, district.viewer_token))["alerts"] == []
    clock.advance(minutes=2)

    after = await data(reader, district.viewer_token)
    assert [alert["kind"] for alert in after["alerts"]] == ["SYNC_FAILING"]
