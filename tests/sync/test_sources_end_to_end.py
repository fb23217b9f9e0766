"""Two real-protocol sources for one district, synced by the engine, counted once per student.

A OneRoster 1.1 bundle on disk and a Clever server on 127.0.0.1 describe overlapping students;
the license's ``used`` must equal a hand count, and a Clever failure mid-sync must change nothing.
"""

from __future__ import annotations

import pytest

from licensing.settings import DistrictConfig, HttpSettings, RosterSourceConfig
from licensing.storage.tokens import Permission
from tests.fakes.clever_server import CleverUser, FakeClever
from tests.fakes.serve import serve
from tests.plugins.test_oneroster_csv import manifest, user_v1p1, users_csv, write_bundle
from tests.utils.districts import token_for
from tests.utils.graphql import graphql_data

pytestmark = pytest.mark.anyio

# Hand count. The bundle counts STATE-1001 (also Clever's c-01), B-2 (two ids), B-6 (two schools);
# not B-3 (tobedeleted), B-4 (enabledUser false) nor the teacher. Clever counts STATE-1001,
# ST-2002 (no state id: its sis id is the key) and STATE-3003 (two Clever ids). Together: 5.
HAND_COUNT = 5


def bundle(tmp_path):
    return write_bundle(
        tmp_path,
        {
            "manifest.csv": manifest(),
            "users.csv": users_csv(
                user_v1p1("u1", identifier="STATE-1001"),
                user_v1p1("u2", identifier="B-2"),
                user_v1p1("u3", identifier="B-3", status="tobedeleted"),
                user_v1p1("u4", identifier="B-4", enabled="false"),
                user_v1p1("u5", identifier="T-5", role="teacher"),
                user_v1p1("u6", identifier="B-6", orgs="org1,org2"),
                user_v1p1("u7", identifier="B-2"),
            ),
        },
    )


@pytest.fixture
def district(make_district, settings, tmp_path):
    settings.http = HttpSettings(
        retries=2, backoff_seconds=0.01, max_backoff_seconds=0.05, attempt_deadline_seconds=5
    )

    async def make(clever_url: str, fake: FakeClever):
        settings.districts["riverside"] = DistrictConfig(
            roster_sources={
                "sis": RosterSourceConfig(
                    kind="oneroster_csv", options={"path": str(bundle(tmp_path))}
                ),
                "clever": RosterSourceConfig(
                    kind="clever",
                    options={"base_url": clever_url, "token": fake.token, "page_size": 2},
                ),
            }
        )
        return await make_district("riverside", seats=100)

    return make


async def sync(service, district, source: str, *, full: bool = False):
    return await service.roster_sync.sync(
        district_id=district.id, source=source, actor="test", full=full
    )


async def used(client, district) -> int:
    data = await graphql_data(client, district.viewer_token, "{ license { used } }")
    return data["license"]["used"]


async def test_two_sources_give_the_hand_count(service, client, district):
    fake = FakeClever()
    with serve(fake.app) as url:
        riverside = await district(url, fake)
        assert (await sync(service, riverside, "sis")).status == "applied"
        assert (await sync(service, riverside, "clever")).status == "applied"

    assert await used(client, riverside) == HAND_COUNT

    token = token_for(service, riverside.id, Permission.MANAGE_SETTINGS)
    data = await graphql_data(
        client,
        token,
        "{ dataSources { name kind activeStudents lastStatus excluded { staff inactive disabled duplicate } } }",
    )
    by_name = {item["name"]: item for item in data["dataSources"]}
    assert by_name["sis"]["activeStudents"] == 3
    assert by_name["sis"]["excluded"] == {"staff": 1, "inactive": 1, "disabled": 1, "duplicate": 1}
    assert by_name["clever"]["activeStudents"] == 3
    assert by_name["clever"]["excluded"]["duplicate"] == 1


@pytest.mark.parametrize(
    "failure",
    [{"kill_after_page": 1}, {"malformed_at": {1}}, {"die_after_page": 1}],
    ids=["server killed mid-sync", "corrupt page", "server errors from page 1 on"],
)
async def test_a_failing_clever_sync_leaves_used_exactly_as_it_was(
    service, client, district, failure
):
    healthy = FakeClever()
    with serve(healthy.app) as url:
        riverside = await district(url, healthy)
        await sync(service, riverside, "sis")
        await sync(service, riverside, "clever")
    assert await used(client, riverside) == HAND_COUNT

    # Page 0 brings two new students; a partial sync would change the count.
    newcomers = [CleverUser("c-90", state_id="NEW-90"), CleverUser("c-91", state_id="NEW-91")]
    broken = FakeClever(users=[*newcomers, *healthy.users[2:]], **failure)
    with serve(broken.app) as url:
        service.settings.districts["riverside"].roster_sources["clever"].options["base_url"] = url
        # The whole listing (a delta would read the events, which are not what fails here).
        outcome = await sync(service, riverside, "clever", full=True)

    assert outcome.status == "failed"
    assert outcome.problem.message
    assert await used(client, riverside) == HAND_COUNT
