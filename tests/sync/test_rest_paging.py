"""REST roster sources page until the server says there is no more, through real syncs.

A OneRoster or Clever server on 127.0.0.1 caps its pages, pages by ``Link`` headers, states its
total in ``X-Total-Count`` or ``x-count``, or states a total it does not deliver; the sync engine
applies the whole roster or nothing, and the district's ``used`` shows which.
"""

from __future__ import annotations

from typing import Any

import pytest

from licensing.settings import DistrictConfig, HttpSettings, RosterSourceConfig
from licensing.storage.tokens import Permission
from tests.fakes.clever_server import FakeClever, numbered_users
from tests.fakes.oneroster_server import FakeOneRoster, numbered_students
from tests.fakes.serve import serve
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

STUDENTS_V1P2 = "/ims/oneroster/rostering/v1p2/students"


@pytest.fixture
def riverside(make_district, settings):
    """riverside(kind, options) -> the district, its one roster source ``sis`` configured."""
    settings.http = HttpSettings(
        retries=2, backoff_seconds=0.01, max_backoff_seconds=0.05, attempt_deadline_seconds=5
    )

    async def make(kind: str, options: dict[str, Any]):
        settings.districts["riverside"] = DistrictConfig(
            roster_sources={"sis": RosterSourceConfig(kind=kind, options=options)}
        )
        return await make_district("riverside", seats=1000)

    return make


def oneroster_options(url: str, fake: FakeOneRoster) -> dict[str, Any]:
    # No page_size: the source asks for its default of 1000, more than these servers give.
    return {"base_url": url, "client_id": fake.client_id, "client_secret": fake.client_secret}


async def sync(service, district):
    return await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")


async def sis_source(service, client, district) -> dict[str, Any]:
    token = token_for(service, district.id, Permission.MANAGE_SETTINGS)
    query = "{ license { used } dataSources { name lastStatus lastError records serverCount } }"
    data = await graphql_data(client, token, query)
    (source,) = [item for item in data["dataSources"] if item["name"] == "sis"]
    return {"used": data["license"]["used"], **source}


async def test_a_page_cap_without_a_count_still_gives_every_student(service, client, riverside):
    """The server answers 100 of the 1000 asked for and states no total: 250 students in all."""
    fake = FakeOneRoster(
        students=numbered_students(250), max_page_size=100, total_count_header=None
    )
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        outcome = await sync(service, district)

    assert outcome.status == "applied"
    assert fake.offsets() == [0, 100, 200, 250]  # on past the short page, to the empty one
    shown = await sis_source(service, client, district)
    assert (shown["used"], shown["records"], shown["serverCount"]) == (250, 250, None)


async def test_link_header_paging_is_followed_to_the_last_page(service, client, riverside):
    fake = FakeOneRoster(
        students=numbered_students(250),
        max_page_size=100,
        total_count_header=None,
        link_paging=True,
    )
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        outcome = await sync(service, district)

    assert outcome.status == "applied"
    pages = [seen.query for seen in fake.requests if seen.path == STUDENTS_V1P2]
    assert len(pages) == 3  # the last page has no next link: nothing more is asked
    assert "cursor" not in pages[0]
    assert all("cursor" in query and "offset" not in query for query in pages[1:])
    assert (await sis_source(service, client, district))["used"] == 250


@pytest.mark.parametrize("header", ["X-Total-Count", "x-count"])
async def test_a_stated_total_is_shown_beside_the_count(service, client, riverside, header):
    fake = FakeOneRoster(
        students=numbered_students(250), max_page_size=100, total_count_header=header
    )
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        outcome = await sync(service, district)

    assert outcome.status == "applied"
    shown = await sis_source(service, client, district)
    assert (shown["used"], shown["serverCount"]) == (250, 250)


async def test_a_first_sync_short_of_the_stated_total_fails_and_applies_nothing(
    service, client, riverside
):
    fake = FakeOneRoster(students=numbered_students(250), max_page_size=100, overstate_total_by=5)
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        outcome = await sync(service, district)

    assert outcome.status == "failed"
    message = outcome.problem.message
    assert f"{url}{STUDENTS_V1P2}" in message
    assert "reported 255 students (X-Total-Count) but sent 250" in message
    shown = await sis_source(service, client, district)
    assert shown["used"] == 0
    assert shown["lastStatus"] == "FAILED"
    assert "reported 255 students" in shown["lastError"]


async def test_a_later_sync_short_of_its_total_keeps_the_previous_roster(
    service, client, riverside
):
    healthy = FakeOneRoster(students=numbered_students(120), max_page_size=100)
    with serve(healthy.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, healthy))
        assert (await sync(service, district)).status == "applied"

    # 130 students now, but the server states 131 (its count and its listing disagree).
    short = FakeOneRoster(
        students=numbered_students(130),
        max_page_size=100,
        total_count_header="x-count",
        overstate_total_by=1,
    )
    with serve(short.app) as url:
        service.settings.districts["riverside"].roster_sources["sis"].options["base_url"] = url
        # A full sync (a delta's total would be of its changes).
        outcome = await service.roster_sync.sync(
            district_id=district.id, source="sis", actor="test", full=True
        )

    assert outcome.status == "failed"
    assert "reported 131 students (x-count) but sent 130" in outcome.problem.message
    assert (await sis_source(service, client, district))["used"] == 120


async def test_a_next_link_to_another_server_is_not_followed(service, client, riverside):
    fake = FakeOneRoster(
        students=numbered_students(5),
        max_page_size=2,
        link_paging=True,
        link_host="https://elsewhere.example",
    )
    with serve(fake.app) as url:
        district = await riverside("oneroster_rest", oneroster_options(url, fake))
        outcome = await sync(service, district)

    assert outcome.status == "failed"
    assert "another server (https://elsewhere.example" in outcome.problem.message
    assert (await sis_source(service, client, district))["used"] == 0


async def test_clever_short_pages_with_a_next_link_are_read_to_the_end(service, client, riverside):
    """Clever serves 2 users a page although 5 were asked for: the next links are followed."""
    fake = FakeClever(users=numbered_users(7), max_page_size=2)
    with serve(fake.app) as url:
        district = await riverside("clever", {"base_url": url, "token": fake.token, "page_size": 5})
        outcome = await sync(service, district)

    assert outcome.status == "applied"
    assert [seen.query.get("starting_after") for seen in fake.requests] == [
        None,
        "u-00002",
        "u-00004",
        "u-00006",
    ]
    assert all(seen.path == "/v3.1/users" for seen in fake.requests)
    assert (await sis_source(service, client, district))["used"] == 7


async def test_clever_next_link_to_another_server_fails_the_sync(service, client, riverside):
    fake = FakeClever(users=numbered_users(3), next_host="https://elsewhere.example")
    with serve(fake.app) as url:
        district = await riverside("clever", {"base_url": url, "token": fake.token, "page_size": 2})
        outcome = await sync(service, district)

    assert outcome.status == "failed"
    assert "another server (https://elsewhere.example)" in outcome.problem.message
    assert len(fake.requests) == 1
    assert (await sis_source(service, client, district))["used"] == 0
