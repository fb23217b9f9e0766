"""Conditional GET: a query's answer carries an ETag; If-None-Match with it answers 304 without
running the query, until anything the answer shows changes (or the district's midnight passes)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage.tokens import Permission
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data
from tests.utils.oneroster_bundle import write_users_bundle

pytestmark = pytest.mark.anyio

TAB = """query Tab {
  license { display level status stale daysUntilExpiration }
  usage { activeStudents inactiveStudents }
  alerts { kind message }
}"""
MANAGER_TAB = """query ManagerTab {
  license { display level status stale daysUntilExpiration }
  usage { activeStudents inactiveStudents }
  alerts { kind message }
  licenseSettings { studentsRemainingThreshold }
  dataSources { name lastStatus }
}"""


async def get(client, token: str, query: str, *, etag: str | None = None, **params: Any):
    headers = {"Authorization": f"Bearer {token}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    query_params = {"query": query, **{k: json.dumps(v) for k, v in params.items()}}
    return await client.get("/graphql", params=query_params, headers=headers)


async def tagged(client, token: str, query: str, **params: Any) -> tuple[str, dict]:
    """A 200 answer's ETag and data."""
    response = await get(client, token, query, **params)
    assert response.status_code == 200, response.text
    assert "errors" not in response.json(), response.json()
    return response.headers["etag"], response.json()["data"]


async def assert_not_modified(client, token: str, query: str, etag: str) -> None:
    response = await get(client, token, query, etag=etag)
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["etag"] == etag


async def assert_changed(client, token: str, query: str, etag: str) -> dict:
    """The query's answer is new: 200 with another ETag; returns its data."""
    response = await get(client, token, query, etag=etag)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] != etag
    await assert_not_modified(client, token, query, response.headers["etag"])
    return response.json()["data"]


async def test_an_unchanged_answer_is_304_with_its_etag_and_caching_headers(client, make_district):
    district = await make_district(seats=1000, active=960)
    etag, data = await tagged(client, district.viewer_token, TAB)
    assert data["license"]["display"] == "960 / 1000"
    assert etag.startswith('W/"')

    response = await get(client, district.viewer_token, TAB, etag=etag)

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "private, no-cache"
    assert response.headers["vary"] == "Authorization, Cookie"
    # Several tags, one of them current: still not modified.
    listed = await get(client, district.viewer_token, TAB, etag=f'W/"old", {etag}')
    assert listed.status_code == 304


async def test_the_304_path_does_not_run_the_query(client, make_district, service, monkeypatch):
    district = await make_district(seats=1000, active=960)
    etag, data = await tagged(client, district.viewer_token, TAB)
    reads = 0
    read_state = service.district_state

    async def counted(district_id: int):
        nonlocal reads
        reads += 1
        return await read_state(district_id)

    monkeypatch.setattr(service, "district_state", counted)

    await assert_not_modified(client, district.viewer_token, TAB, etag)
    assert reads == 0
    fresh = await get(client, district.viewer_token, TAB, etag='W/"something else"')
    # Answered in full (from the answer kept at the same version: test_answer_snapshots.py).
    assert (fresh.status_code, fresh.json()["data"]) == (200, data)
    assert fresh.headers["etag"] == etag


async def test_a_threshold_change_gives_a_new_answer(client, make_district):
    district = await make_district(seats=1000, active=960, threshold=30)
    etag, data = await tagged(client, district.manager_token, MANAGER_TAB)
    assert data["alerts"] == []

    await graphql_data(
        client,
        district.manager_token,
        "mutation { setThreshold(studentsRemaining: 50) { errors { code } } }",
    )

    data = await assert_changed(client, district.manager_token, MANAGER_TAB, etag)
    assert data["licenseSettings"]["studentsRemainingThreshold"] == 50
    assert [alert["kind"] for alert in data["alerts"]] == ["LICENSES_LOW"]


async def test_a_license_update_and_a_failed_refresh_give_new_answers(
    client, make_district, service, issuer
):
    district = await make_district(seats=1000, active=960)
    etag, _data = await tagged(client, district.viewer_token, TAB)

    issuer.write(district.slug, seats=1100)
    await service.license_updater.refresh(district_id=district.id, actor="test")
    data = await assert_changed(client, district.viewer_token, TAB, etag)
    assert data["license"]["display"] == "960 / 1100"

    etag, _data = await tagged(client, district.viewer_token, TAB)
    service.settings.license_file_for(district.slug).write_bytes(b"not a license")
    await service.license_updater.refresh(district_id=district.id, actor="test")
    data = await assert_changed(client, district.viewer_token, TAB, etag)
    assert (data["license"]["display"], data["license"]["stale"]) == ("960 / 1100", True)


async def test_deactivating_a_local_student_gives_a_new_answer(client, make_district):
    district = await make_district(seats=1000, active=960)
    etag, _data = await tagged(client, district.viewer_token, TAB)

    await graphql_data(
        client,
        district.manager_token,
        'mutation { deactivateStudents(ids: ["riverside-000001"]) { changed } }',
    )

    data = await assert_changed(client, district.viewer_token, TAB, etag)
    assert data["license"]["display"] == "959 / 1000"


async def test_an_alert_raised_with_the_passing_of_time_reaches_the_answer_with_the_alerts_job(
    client, make_district, service, clock
):
    """SYNC_FAILING is due once the license has failed to refresh for the tolerance: no write
    marks that moment, so the answer changes when the scheduler's alerts job raises it."""
    service.alert_policy = replace(service.alert_policy, sync_failing_tolerance=timedelta(hours=1))
    district = await make_district(seats=1000, active=500)
    service.settings.license_file_for(district.slug).write_bytes(b"not a license")
    await service.license_updater.refresh(district_id=district.id, actor="test")
    etag, data = await tagged(client, district.viewer_token, TAB)
    assert (data["license"]["stale"], data["alerts"]) == (True, [])

    clock.advance(hours=2)
    # Until the alerts job runs, nothing has changed in the database.
    await assert_not_modified(client, district.viewer_token, TAB, etag)
    await service.district_state(district.id)  # what the alerts job does every 5 minutes

    data = await assert_changed(client, district.viewer_token, TAB, etag)
    assert [alert["kind"] for alert in data["alerts"]] == ["SYNC_FAILING"]


async def test_midnight_in_the_districts_time_zone_gives_a_new_answer(client, make_district, clock):
    # 23:59 in Chicago (05:59 UTC): the license expires at the end of the day.
    clock.set(datetime(2026, 11, 29, 5, 59, tzinfo=UTC))
    district = await make_district(
        seats=1000,
        active=960,
        time_zone="America/Chicago",
        expires_on=datetime(2026, 11, 28).date(),
    )
    etag, data = await tagged(client, district.viewer_token, TAB)
    assert data["license"]["status"] == "ACTIVE"
    clock.advance(seconds=30)
    await assert_not_modified(client, district.viewer_token, TAB, etag)

    clock.advance(minutes=1)  # 00:00:30 in Chicago, still 29 November in UTC

    response = await get(client, district.viewer_token, TAB, etag=etag)
    assert response.status_code == 200
    assert response.json()["data"]["license"]["status"] == "EXPIRED"
    # That first read after midnight stored the EXPIRED alert (a write): its tag is replaced
    # once, then the answer is current again.
    etag, data = await tagged(client, district.viewer_token, TAB)
    assert data == response.json()["data"]
    await assert_not_modified(client, district.viewer_token, TAB, etag)


@pytest.fixture
def export(tmp_path):
    return tmp_path / "export"


async def test_a_roster_sync_gives_a_new_answer_from_its_start_to_its_end(
    client, make_district, service, export
):
    service.settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(export)})
        }
    )
    district = await make_district(seats=1000)
    etag, _data = await tagged(client, district.manager_token, MANAGER_TAB)

    write_users_bundle(export, active=700, inactive=5)
    await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")

    data = await assert_changed(client, district.manager_token, MANAGER_TAB, etag)
    assert data["usage"] == {"activeStudents": 700, "inactiveStudents": 5}
    assert data["dataSources"] == [{"name": "sis", "lastStatus": "APPLIED"}]


async def test_the_etag_depends_on_permissions_variables_and_district(
    client, make_district, service
):
    district = await make_district("riverside", seats=1000, active=960)
    other = await make_district("lakeside", seats=1000, active=960)
    query = "query Check($n: Int!) { licenseCheck(additionalStudents: $n) { allowed } }"
    viewer, _data = await tagged(client, district.viewer_token, query, variables={"n": 1})
    manager, _data = await tagged(client, district.manager_token, query, variables={"n": 1})
    more, _data = await tagged(client, district.viewer_token, query, variables={"n": 2})
    neighbour, _data = await tagged(client, other.viewer_token, query, variables={"n": 1})

    assert len({viewer, manager, more, neighbour}) == 4
    # A tag of one token is not current for another, even one with the same permissions.
    second_viewer = token_for(service, district.id, Permission.VIEW_LICENSE, name="second")
    response = await get(client, second_viewer, query, etag=viewer, variables={"n": 1})
    assert response.status_code == 200


async def test_only_get_query_answers_carry_an_etag(client, make_district):
    district = await make_district(seats=1000, active=960)
    etag, _data = await tagged(client, district.manager_token, TAB)

    posted = await client.post(
        "/graphql",
        json={"query": TAB},
        headers={"Authorization": f"Bearer {district.manager_token}", "If-None-Match": etag},
    )
    # A POST always runs; its If-None-Match is ignored.
    assert posted.status_code == 200
    assert "etag" not in posted.headers
    jobs = await get(client, district.manager_token, "{ scheduledJobs { name } }")
    assert jobs.status_code == 200
    assert "etag" not in jobs.headers  # jobs move with every run, not with the version
    invalid = await get(client, district.manager_token, "{ license { nope } }")
    assert "etag" not in invalid.headers


async def test_head_answers_like_get_without_a_body(client, make_district):
    district = await make_district(seats=1000, active=960)
    etag, _data = await tagged(client, district.viewer_token, TAB)
    headers = {"Authorization": f"Bearer {district.viewer_token}"}

    current = await client.head(
        "/graphql", params={"query": TAB}, headers={**headers, "If-None-Match": etag}
    )
    fresh = await client.head("/graphql", params={"query": TAB}, headers=headers)

    assert current.status_code == 304
    assert (fresh.status_code, fresh.content, fresh.headers["etag"]) == (200, b"", etag)


async def test_a_304_still_needs_a_valid_token_and_draws_from_the_budget(client, make_district):
    district = await make_district(seats=1000, active=960)
    etag, _data = await tagged(client, district.viewer_token, TAB)

    unsigned = await client.get("/graphql", params={"query": TAB}, headers={"If-None-Match": etag})
    assert unsigned.status_code == 401
    response = await get(client, district.viewer_token, TAB, etag=etag)
    assert response.status_code == 304
    assert "ratelimit" in response.headers
