"""The Clever source against a Clever Data API v3.1 server on 127.0.0.1 (tests/fakes): paging by
links, the rate limit, retries that resume the failed page, and failures that change nothing."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from licensing.orchestration.plugin_host import plugin_host
from licensing.settings import HttpSettings, Settings
from licensing.storage.roster import UsageCounts, collect_records, current_usage
from licensing.storage.roster_changes import DEFAULT_GUARD, apply_roster
from plugins.builtin.clever import CleverSource
from plugins.builtin.oneroster_rest import OneRosterRestSource
from plugins.records import DistrictRef, SourceError, StudentRecord
from tests.fakes.clever_server import (
    SAMPLE_ACTIVE_STUDENTS,
    CleverUser,
    FakeClever,
    numbered_users,
)
from tests.fakes.oneroster_server import FakeOneRoster
from tests.fakes.serve import serve
from tests.fakes.tls import untrusted_https_server
from tests.utils.districts import create_district

pytestmark = pytest.mark.anyio

RIVERSIDE = DistrictRef(slug="riverside", official_name="Test District", time_zone="UTC")


@pytest.fixture
def fast_settings(tmp_path: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        http=HttpSettings(
            connect_timeout_seconds=2,
            read_timeout_seconds=5,
            attempt_deadline_seconds=5,
            retries=3,
            backoff_seconds=0.01,
            max_backoff_seconds=3,
        ),
    )


@pytest.fixture
def source(fast_settings: Settings) -> CleverSource:
    return CleverSource(plugin_host(fast_settings))


@pytest.fixture
def district_id(service) -> int:
    return create_district(service, slug="riverside")


def running(fake: FakeClever | FakeOneRoster) -> AbstractContextManager[str]:
    return serve(fake.app)


NO_HOLD = replace(DEFAULT_GUARD, max_drop_share=1.0)


def options(url: str, fake: FakeClever, **extra: Any) -> dict[str, Any]:
    return {"base_url": url, "token": fake.token, "page_size": 2, **extra}


async def fetch(source: Any, opts: dict[str, Any]) -> list[Any]:
    return await collect_records(source.fetch_students(district=RIVERSIDE, options=opts))


def sync(service, district_id: int, records: list[Any], *, source: str = "clever") -> UsageCounts:
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source=source,
            records=[record for record in records if isinstance(record, StudentRecord)],
            replace=True,
            now=service.clock(),
            guard=NO_HOLD,  # these tests are about what Clever reports; the hold is tested in sync
        )
    return usage(service, district_id)


def usage(service, district_id: int) -> UsageCounts:
    with service.database.read() as session:
        return current_usage(session, district_id=district_id)


async def synced_sample(service, district_id: int, source: CleverSource) -> UsageCounts:
    fake = FakeClever()
    with running(fake) as url:
        return sync(service, district_id, await fetch(source, options(url, fake)))


async def test_clever_students_count_as_a_hand_count(service, district_id, source):
    fake = FakeClever()
    with running(fake) as url:
        records = await fetch(source, options(url, fake))

    counts = sync(service, district_id, records)

    # c-01, c-02, and c-03 = c-04 (same state_id); the teacher c-05 is not a student.
    assert counts.active_students == SAMPLE_ACTIVE_STUDENTS == 3
    assert counts.duplicates_collapsed == 1
    assert (counts.inactive_students, counts.staff) == (0, 0)
    by_id = {record.source_id: record for record in records}
    assert sorted(by_id) == ["c-01", "c-02", "c-03", "c-04"]
    assert by_id["c-01"] == StudentRecord(
        source_id="c-01",
        role="student",
        status="active",
        enabled=True,
        person_key="STATE-1001",
        given_name="Ava",
        family_name="Garcia",
        username="ava.garcia",
        grade="7",
        schools=("sch-oak", "sch-river"),
        primary_school="sch-oak",
        graduation_year=2031,
        last_modified=datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
    )
    assert by_id["c-02"].person_key == "ST-2002"  # no state_id: the sis_id
    assert by_id["c-02"].enrollment_end == date(2027, 6, 15)
    assert by_id["c-03"].person_key == by_id["c-04"].person_key == "STATE-3003"


async def test_person_key_fields_can_be_chosen(source):
    fake = FakeClever()
    with running(fake) as url:
        records = await fetch(source, options(url, fake, person_key_fields=["student_number"]))

    keys = {record.source_id: record.person_key for record in records}
    assert keys == {"c-01": None, "c-02": "2002", "c-03": None, "c-04": None}


async def test_pages_follow_the_next_links(source):
    fake = FakeClever()
    with running(fake) as url:
        await fetch(source, options(url, fake))

    assert [seen.query for seen in fake.requests] == [
        {"role": "student", "limit": "2"},
        {"role": "student", "limit": "2", "starting_after": "c-02"},
        {"role": "student", "limit": "2", "starting_after": "c-04"},
    ]


@pytest.mark.parametrize(
    ("count", "requests"),
    [(0, 1), (1, 1), (4, 2), (5, 2)],
    ids=["no students", "one", "exactly a page", "a page plus one"],
)
async def test_paging_boundaries(service, district_id, source, count, requests):
    fake = FakeClever(users=numbered_users(count))
    with running(fake) as url:
        records = await fetch(source, options(url, fake, page_size=4))

    assert len(fake.requests) == requests
    assert [record.source_id for record in records] == [user.id for user in fake.users]
    assert sync(service, district_id, records).active_students == count


async def test_an_exhausted_rate_limit_waits_for_the_reset(source):
    # Two requests a window: the second leaves none, so the third waits for X-RateLimit-Reset.
    fake = FakeClever(users=numbered_users(3), rate_limit=2, window_seconds=0.5)
    with running(fake) as url:
        records = await fetch(source, options(url, fake, page_size=1))

    assert len(records) == 3
    assert [seen.status for seen in fake.requests] == [200, 200, 200, 200]
    # The newest event (the delta cursor) and the first page use the first window: the second
    # page waits for its reset; the second and third pages use the next, and the last waits.
    assert [seen.status for seen in fake.event_requests] == [200]
    first, second, third, last = fake.requests
    assert first.reset is not None and third.reset is not None
    assert second.at >= first.reset
    assert last.at >= third.reset  # and no 429 on the way


async def test_a_429_without_retry_after_waits_for_x_ratelimit_reset(source):
    fake = FakeClever(storm_429=1, window_seconds=0.5)
    with running(fake) as url:
        records = await fetch(source, options(url, fake))

    assert len(records) == 4
    refused, retried = fake.requests[0], fake.requests[1]
    assert refused.status == 429
    assert refused.reset is not None
    assert retried.at >= refused.reset
    assert retried.query == refused.query


async def test_a_429_with_retry_after_is_retried(source):
    fake = FakeClever(storm_429=2, retry_after="0")
    with running(fake) as url:
        records = await fetch(source, options(url, fake))

    assert [seen.status for seen in fake.requests[:3]] == [429, 429, 200]
    assert len(records) == 4


async def test_a_500_mid_sync_retries_the_same_page(service, district_id, source):
    fake = FakeClever(fail_500_once={1})
    with running(fake) as url:
        records = await fetch(source, options(url, fake))

    assert fake.pages() == [0, 1, 1, 2]
    assert fake.pages(status=500) == [1]
    assert fake.pages().count(0) == 1
    assert sync(service, district_id, records).active_students == SAMPLE_ACTIVE_STUDENTS


async def test_malformed_json_is_a_source_error(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeClever(malformed_at={1})
    with running(fake) as url, pytest.raises(SourceError, match=r"starting_after=c-02.*not JSON"):
        await fetch(source, options(url, fake))

    assert usage(service, district_id) == before


async def test_a_server_that_stops_answering_changes_nothing(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeClever(die_after_page=0)
    with running(fake) as url, pytest.raises(SourceError, match="kept failing"):
        await fetch(source, options(url, fake))

    assert fake.pages(status=503) == [1, 1, 1, 1]
    assert usage(service, district_id) == before


async def test_a_server_killed_mid_sync_changes_nothing(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeClever(kill_after_page=0)
    with running(fake) as url, pytest.raises(SourceError, match=r"did not answer|kept failing"):
        await fetch(source, options(url, fake))

    assert fake.pages(status=200) == [0]

    assert usage(service, district_id) == before


async def test_a_server_whose_certificate_is_not_trusted_is_said_so_after_one_attempt(
    source, tmp_path
):
    async with untrusted_https_server(tmp_path) as untrusted:
        with pytest.raises(SourceError) as raised:
            await fetch(source, {"base_url": untrusted.url, "token": "district-token"})

    assert untrusted.connections == 1
    message = str(raised.value)
    assert "the server's TLS certificate is not trusted (self-signed certificate)" in message
    assert "SSL_CERT_FILE" in message
    assert "Nothing was changed" in message


async def test_a_wrong_token_is_a_clear_source_error(source):
    fake = FakeClever()
    with running(fake) as url, pytest.raises(SourceError) as raised:
        await fetch(source, {"base_url": url, "token": "revoked-token"})

    message = str(raised.value)
    assert "Clever refused the district token" in message
    assert "HTTP 401" in message
    assert "revoked-token" not in message


async def test_students_who_vanish_count_as_removed(service, district_id, source):
    fake = FakeClever()
    with running(fake) as url:
        assert (
            sync(service, district_id, await fetch(source, options(url, fake))).active_students == 3
        )
        fake.users = [user for user in fake.users if user.id != "c-02"]
        counts = sync(service, district_id, await fetch(source, options(url, fake)))

    assert counts.active_students == 2


@pytest.mark.parametrize("path", ["", "/", "/v3.1", "/v3.1/users", "/v3.0/users/"])
async def test_a_pasted_api_address_reads_the_v3_1_users(source, path):
    fake = FakeClever()
    with running(fake) as url:
        records = await fetch(source, options(url + path, fake, profile="clever"))

    assert len(records) == 4
    assert {seen.path for seen in fake.requests} == {"/v3.1/users"}


async def test_a_next_link_without_the_filter_keeps_it(source):
    """Only students are asked for, even if a next link dropped ``role`` or ``limit``."""
    fake = FakeClever(
        users=[*numbered_users(3), CleverUser("z-teacher", role="teacher")],
        drop_from_next=("role", "limit"),
    )
    with running(fake) as url:
        records = await fetch(source, options(url, fake))

    assert [record.source_id for record in records] == ["u-00001", "u-00002", "u-00003"]
    assert all(seen.query.get("role") == "student" for seen in fake.requests)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"token": ""}, "needs the district's bearer token"),
        ({"base_url": "http://api.example.org"}, "plain http"),
        ({"page_size": 20_000}, "page_size"),
        ({"person_key_fields": "sis_id"}, "person_key_fields"),
        ({"profile": "powerschool"}, "powerschool belong to the OneRoster REST source"),
    ],
)
async def test_options_are_checked_before_any_request(source, bad, message):
    opts = {"base_url": "http://127.0.0.1:9", "token": "t", **bad}
    with pytest.raises(SourceError, match=message):
        source.fetch_students(district=RIVERSIDE, options=opts)


async def test_oneroster_and_clever_for_one_district_count_each_person_once(
    service, district_id, source, fast_settings
):
    """Two sources, one district: a person both list (same state id) is one license."""
    oneroster = FakeOneRoster()  # its userMasterIdentifiers are state ids: STATE-1001...
    clever = FakeClever()  # c-01 is STATE-1001 too
    with running(oneroster) as oneroster_url, running(clever) as clever_url:
        from_sis = await fetch(
            OneRosterRestSource(plugin_host(fast_settings)),
            {
                "base_url": oneroster_url,
                "client_id": oneroster.client_id,
                "client_secret": oneroster.client_secret,
            },
        )
        from_clever = await fetch(source, options(clever_url, clever))
    sync(service, district_id, from_sis, source="sis")
    counts = sync(service, district_id, from_clever, source="clever")

    # OneRoster: 5 people. Clever: 3 people, of whom STATE-1001 is already counted.
    assert counts.active_students == 5 + 3 - 1
