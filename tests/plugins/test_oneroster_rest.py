"""The OneRoster REST source against a OneRoster server on 127.0.0.1 (tests/fakes): paging,
OAuth 2 and OAuth 1.0a, retries that resume the failed page, and failures that change nothing."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from typing import Any

import pytest

from licensing.orchestration.plugin_host import load_plugins, plugin_host
from licensing.settings import HttpSettings, Settings
from licensing.storage.roster import UsageCounts, collect_records, current_usage
from licensing.storage.roster_changes import apply_roster
from plugins.builtin.oneroster_rest import OneRosterRestSource
from plugins.records import (
    DistrictRef,
    RosterFileError,
    RowProblem,
    ServerCount,
    SourceError,
    StudentRecord,
)
from tests.fakes.oneroster_server import (
    SAMPLE_ACTIVE_STUDENTS,
    SAMPLE_INACTIVE_STUDENTS,
    SCOPE_V1P1,
    FakeOneRoster,
    Person,
    numbered_students,
)
from tests.fakes.serve import serve
from tests.utils.districts import create_district, students

pytestmark = pytest.mark.anyio

RIVERSIDE = DistrictRef(slug="riverside", official_name="Test District", time_zone="UTC")
STUDENTS_V1P2 = "/ims/oneroster/rostering/v1p2/students"


@pytest.fixture
def fast_settings(tmp_path: Any) -> Settings:
    """The project's HTTP settings with backoffs short enough for tests."""
    return Settings(
        data_dir=tmp_path / "data",
        http=HttpSettings(
            connect_timeout_seconds=2,
            read_timeout_seconds=5,
            attempt_deadline_seconds=5,
            retries=3,
            backoff_seconds=0.01,
            max_backoff_seconds=2,
        ),
    )


@pytest.fixture
def source(fast_settings: Settings) -> OneRosterRestSource:
    return OneRosterRestSource(plugin_host(fast_settings))


@pytest.fixture
def district_id(service) -> int:
    return create_district(service, slug="riverside")


def running(fake: FakeOneRoster) -> AbstractContextManager[str]:
    return serve(fake.app)


def options(url: str, fake: FakeOneRoster | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": url,
        "client_id": fake.client_id if fake else "district-client",
        "client_secret": fake.client_secret if fake else "district-secret",
        "page_size": 3,
        **extra,
    }


async def fetch(source: OneRosterRestSource, opts: dict[str, Any]) -> list[Any]:
    return await collect_records(source.fetch_students(district=RIVERSIDE, options=opts))


def people_of(items: list[Any]) -> list[StudentRecord]:
    return [item for item in items if isinstance(item, StudentRecord)]


def server_counts(items: list[Any]) -> list[ServerCount]:
    return [item for item in items if isinstance(item, ServerCount)]


def sync(service, district_id: int, items: list[Any]) -> UsageCounts:
    """Apply what the source delivered as the source's whole roster, as a sync does."""
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district_id,
            source="sis",
            records=people_of(items),
            replace=True,
            now=service.clock(),
        )
    return usage(service, district_id)


def usage(service, district_id: int) -> UsageCounts:
    with service.database.read() as session:
        return current_usage(session, district_id=district_id)


async def synced_sample(service, district_id: int, source: OneRosterRestSource) -> UsageCounts:
    """A first, good sync of the sample roster, so a failing one has something to keep."""
    fake = FakeOneRoster()
    with running(fake) as url:
        return sync(service, district_id, await fetch(source, options(url, fake)))


def test_hook_register_roster_sources_lists_rest_sources(settings):
    sources = load_plugins(settings, load_entry_points=False).roster_sources

    assert isinstance(sources["oneroster_rest"], OneRosterRestSource)
    assert sources["clever"].name == "clever"
    for name in ("oneroster_rest", "clever"):
        assert sources[name].description
        assert callable(sources[name].fetch_students)


async def test_a_1_2_roster_counts_as_a_hand_count(service, district_id, source):
    fake = FakeOneRoster()
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    counts = sync(service, district_id, items)

    # s-001, s-002, s-005 = s-006 (same userMasterIdentifier), s-007, s-008.
    assert counts.active_students == SAMPLE_ACTIVE_STUDENTS == 5
    assert counts.inactive_students == SAMPLE_INACTIVE_STUDENTS
    assert counts.duplicates_collapsed == 1
    assert counts.staff == 0
    records = {record.source_id: record for record in people_of(items)}
    assert records["s-001"] == StudentRecord(
        source_id="s-001",
        role="student",
        status="active",
        enabled=True,
        person_key="STATE-1001",
        given_name="Ava",
        family_name="Garcia",
        username="s-001",
        grade="7",
        schools=("sch-oak", "sch-river"),
        primary_school="sch-oak",
        last_modified=datetime(2026, 8, 15, 9, 30, tzinfo=UTC),
        raw_status="active",
    )
    assert (records["s-003"].status, records["s-003"].raw_status) == ("tobedeleted", "tobedeleted")
    assert records["s-004"].enabled is False
    assert records["s-007"].enabled is True  # "TRUE"
    assert records["s-008"].enabled is True  # a JSON boolean
    assert records["s-008"].person_key == "ST-1008"  # no userMasterIdentifier: the identifier
    assert records["s-005"].enrollment_end == date(2027, 6, 15)
    assert records["s-006"].primary_school == "sch-river"


async def test_pages_are_asked_for_with_limit_offset_and_sort(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        await fetch(source, options(url, fake))

    pages = [seen for seen in fake.requests if seen.path == STUDENTS_V1P2]
    assert [seen.query for seen in pages] == [
        {"limit": "3", "offset": "0", "sort": "sourcedId"},
        {"limit": "3", "offset": "3", "sort": "sourcedId"},
        {"limit": "3", "offset": "6", "sort": "sourcedId"},
        # The page at 6 held two: only an empty page ends the listing.
        {"limit": "3", "offset": "8", "sort": "sourcedId"},
    ]
    assert fake.tokens_issued == 1  # one token, reused for every page


@pytest.mark.parametrize(
    ("count", "offsets"),
    [(0, [0]), (1, [0, 1]), (4, [0, 4]), (5, [0, 4, 5])],
    ids=["no students", "one", "exactly a page", "a page plus one"],
)
async def test_paging_boundaries(service, district_id, source, count, offsets):
    fake = FakeOneRoster(students=numbered_students(count))
    with running(fake) as url:
        items = await fetch(source, options(url, fake, page_size=4))

    assert fake.offsets() == offsets
    assert [record.source_id for record in people_of(items)] == [
        person.sourced_id for person in fake.students
    ]
    assert sync(service, district_id, items).active_students == count


async def test_x_total_count_is_passed_on_once_as_a_server_count(source):
    fake = FakeOneRoster(students=numbered_students(7))
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert server_counts(items) == [ServerCount(7)]
    assert items[0] == ServerCount(7)


async def test_x_count_is_read_too_and_no_header_means_no_server_count(source):
    fake = FakeOneRoster(total_count_header="x-count")
    with running(fake) as url:
        assert server_counts(await fetch(source, options(url, fake))) == [ServerCount(8)]

    fake = FakeOneRoster(total_count_header=None)
    with running(fake) as url:
        items = await fetch(source, options(url, fake))
    assert server_counts(items) == []
    assert len(items) == 8


async def test_a_server_that_caps_the_page_size_is_read_to_the_end(source):
    """A server may answer fewer records than asked: the next page starts where it stopped."""
    fake = FakeOneRoster(max_page_size=2)
    with running(fake) as url:
        items = await fetch(source, options(url, fake, page_size=3))

    assert fake.offsets() == [0, 2, 4, 6, 8]
    assert len(people_of(items)) == 8


async def test_a_server_that_ignores_offset_is_not_read_for_ever(source):
    fake = FakeOneRoster(ignores_offset=True)
    with running(fake) as url, pytest.raises(SourceError, match="does not page with offset"):
        await fetch(source, options(url, fake))

    assert fake.offsets() == [0, 3]


async def test_a_429_storm_is_waited_out_and_the_page_is_asked_for_again(
    service, district_id, source
):
    fake = FakeOneRoster(storm_429={3: 3})
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert fake.offsets() == [0, 3, 3, 3, 3, 6, 8]
    assert fake.offsets(status=429) == [3, 3, 3]
    assert sync(service, district_id, items).active_students == SAMPLE_ACTIVE_STUDENTS


async def test_retry_after_is_honoured(source):
    fake = FakeOneRoster(storm_429={0: 1}, retry_after="1")
    with running(fake) as url:
        await fetch(source, options(url, fake))

    refused, retried = [seen for seen in fake.requests if seen.path == STUDENTS_V1P2][:2]
    assert refused.status == 429
    assert retried.at - refused.at >= 0.95


async def test_a_429_storm_longer_than_the_retries_is_a_source_error(source):
    fake = FakeOneRoster(storm_429={3: 10})
    with (
        running(fake) as url,
        pytest.raises(SourceError, match=r"HTTP 429.*offset 3|offset 3.*429"),
    ):
        await fetch(source, options(url, fake))


async def test_a_500_mid_sync_resumes_from_the_same_offset(service, district_id, source):
    fake = FakeOneRoster(fail_500_once={3})
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert fake.offsets() == [0, 3, 3, 6, 8]
    assert fake.offsets(status=500) == [3]
    assert fake.offsets().count(0) == 1  # never restarted from the beginning
    assert sync(service, district_id, items).active_students == SAMPLE_ACTIVE_STUDENTS


async def test_malformed_json_is_a_source_error_naming_the_page(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeOneRoster(malformed_at={3})
    with running(fake) as url, pytest.raises(SourceError) as raised:
        await fetch(source, options(url, fake))

    message = str(raised.value)
    assert f"{url}{STUDENTS_V1P2} (offset 3)" in message
    assert "not JSON" in message
    assert usage(service, district_id) == before


async def test_an_answer_without_users_is_a_source_error(source):
    fake = FakeOneRoster(missing_key_at={0})
    with running(fake) as url, pytest.raises(SourceError, match=r'offset 0\) has no "users"'):
        await fetch(source, options(url, fake))


async def test_an_expired_token_is_renewed_once_and_the_page_asked_again(
    service, district_id, source
):
    # Each token serves two requests; the third page meets an expired token.
    fake = FakeOneRoster(token_lifetime_requests=2)
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert fake.tokens_issued == 2
    assert fake.offsets() == [0, 3, 6, 6, 8]
    assert fake.offsets(status=401) == [6]
    assert sync(service, district_id, items).active_students == SAMPLE_ACTIVE_STUDENTS


async def test_a_token_about_to_expire_is_renewed_before_the_next_request(source):
    # 30 s is within the renewal margin: every request finds the token about to expire.
    fake = FakeOneRoster(token_lifetime_seconds=30)
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert len(people_of(items)) == 8
    assert fake.offsets(status=401) == []  # renewed before, never refused
    assert fake.tokens_issued == 1 + len(fake.offsets())


async def test_a_token_refused_even_when_new_is_a_source_error(source):
    fake = FakeOneRoster(token_lifetime_requests=0)
    with (
        running(fake) as url,
        pytest.raises(SourceError, match="refused the client's access token"),
    ):
        await fetch(source, options(url, fake))

    assert fake.tokens_issued == 2  # renewed once, not in a loop


async def test_wrong_credentials_are_a_clear_source_error(source):
    fake = FakeOneRoster()
    with running(fake) as url, pytest.raises(SourceError) as raised:
        await fetch(source, options(url, fake, client_secret="not-the-secret"))

    message = str(raised.value)
    assert f"{url}/token" in message
    assert "refused the client id and secret" in message
    assert "invalid_client" in message
    assert "not-the-secret" not in message
    assert fake.offsets() == []


async def test_the_token_request_is_oauth2_client_credentials(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        await fetch(source, options(url, fake, token_url=f"{url}/token"))

    (token_request,) = [seen for seen in fake.requests if seen.path == "/token"]
    assert token_request.method == "POST"
    assert token_request.status == 200


async def test_a_failing_token_endpoint_is_retried(source):
    fake = FakeOneRoster(token_503=2)
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    assert [seen.status for seen in fake.requests if seen.path == "/token"] == [503, 503, 200]
    assert len(people_of(items)) == 8


async def test_a_server_that_stops_answering_mid_sync_changes_nothing(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeOneRoster(die_after_offset=3)
    with running(fake) as url, pytest.raises(SourceError, match="kept failing"):
        await fetch(source, options(url, fake))

    assert fake.offsets(status=503) == [6, 6, 6, 6]  # the first try and three retries
    assert usage(service, district_id) == before


async def test_a_server_killed_mid_sync_changes_nothing(service, district_id, source):
    before = await synced_sample(service, district_id, source)
    fake = FakeOneRoster(kill_after_offset=3)
    # A request that races the shutdown is refused (503); later ones find no server at all.
    with running(fake) as url, pytest.raises(SourceError, match=r"did not answer|kept failing"):
        await fetch(source, options(url, fake))

    assert fake.offsets(status=200) == [0, 3]
    assert usage(service, district_id) == before


async def test_killing_the_server_between_pages_never_gives_a_partial_roster(
    service, district_id, source
):
    before = await synced_sample(service, district_id, source)
    fake = FakeOneRoster()
    delivered = []
    with running(fake) as url, pytest.raises(SourceError):
        async for item in source.fetch_students(district=RIVERSIDE, options=options(url, fake)):
            delivered.append(item)
            if len(people_of(delivered)) == 3:
                fake.kill()

    assert len(people_of(delivered)) == 3
    assert usage(service, district_id) == before


async def test_a_1_1_roster_signed_with_oauth_1(service, district_id, source):
    fake = FakeOneRoster(fail_500_once={3})
    with running(fake) as url:
        items = await fetch(source, options(url, fake, version="1.1", auth="oauth1"))

    # The retried page is signed afresh: the server refuses a reused nonce.
    assert fake.offsets("/v1p1/students") == [0, 3, 3, 6, 8]
    assert fake.offsets("/v1p1/students", status=401) == []
    assert fake.tokens_issued == 0
    records = {record.source_id: record for record in people_of(items)}
    assert records["s-001"].schools == ("sch-oak", "sch-river")
    assert records["s-001"].person_key == "ST-1001"  # 1.1: the identifier
    assert records["s-003"].status == "tobedeleted"
    # s-005 and s-006 share identifier ST-1005.
    assert sync(service, district_id, items).active_students == SAMPLE_ACTIVE_STUDENTS


async def test_a_1_1_signature_with_the_wrong_secret_is_refused(source):
    fake = FakeOneRoster()
    with (
        running(fake) as url,
        pytest.raises(SourceError, match=r"refused the request's OAuth 1\.0a signature"),
    ):
        await fetch(source, options(url, fake, version="1.1", auth="oauth1", client_secret="x"))


async def test_a_1_1_server_offering_oauth_2(source):
    fake = FakeOneRoster(v1p1_auth="oauth2")
    with running(fake) as url:
        items = await fetch(source, options(url, fake, version="1.1"))

    assert len(people_of(items)) == 8
    assert fake.tokens_issued == 1
    assert fake.granted_scopes == [SCOPE_V1P1]


async def test_a_fixed_bearer_token(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        token = fake.issue_token()
        items = await fetch(
            source, {"base_url": url, "auth": "bearer", "token": token, "page_size": 3}
        )

    assert len(people_of(items)) == 8


async def test_enabled_user_neither_true_nor_false_is_reported_with_its_position(source):
    fake = FakeOneRoster(
        students=[
            Person("s-1"),
            Person("s-2", enabled="FALSE"),
            Person("s-3", enabled="sometimes"),
            Person("s-4", enabled=2),
        ]
    )
    with running(fake) as url, pytest.raises(RosterFileError) as raised:
        await fetch(source, options(url, fake))

    assert [(p.line, p.column) for p in raised.value.problems] == [
        (3, "enabledUser"),
        (4, "enabledUser"),
    ]
    assert isinstance(raised.value.problems[0], RowProblem)
    assert "'sometimes'" in raised.value.problems[0].message


async def test_enabled_user_and_role_words_follow_the_intake_rules(source):
    fake = FakeOneRoster(
        students=[
            Person("s-1", enabled="yes"),
            Person("s-2", enabled="0"),
            Person("s-3", enabled=1),
            Person("s-4", enabled="No"),
            Person("s-5", role="ext:counselor"),  # only an extension role: no student
        ]
    )
    with running(fake) as url:
        records = people_of(await fetch(source, options(url, fake)))

    assert [(r.source_id, r.enabled, r.role) for r in records] == [
        ("s-1", True, "student"),
        ("s-2", False, "student"),
        ("s-3", True, "student"),
        ("s-4", False, "student"),
        ("s-5", True, "ext:counselor"),
    ]


async def test_a_1_2_student_role_wins_over_a_primary_staff_role(source):
    fake = FakeOneRoster(
        students=[
            Person("s-1", role="teacher", other_roles=(("student", "sch-river"),)),
            Person("s-2", role="ext:mentor", other_roles=(("student", "sch-river"),)),
        ]
    )
    with running(fake) as url:
        records = people_of(await fetch(source, options(url, fake)))

    assert [(r.role, r.primary_school, r.schools) for r in records] == [
        ("student", "sch-river", ("sch-river", "sch-oak")),
        ("student", "sch-river", ("sch-river",)),  # ext: roles are skipped
    ]


async def test_include_staff_reads_teachers_too(service, district_id, source):
    fake = FakeOneRoster()
    with running(fake) as url:
        items = await fetch(source, options(url, fake, include_staff=True))

    records = {record.source_id: record for record in people_of(items)}
    assert records["t-001"].role == "teacher"
    assert records["t-002"].role == "districtAdministrator"
    assert server_counts(items) == [ServerCount(8)]  # the students' total only
    counts = sync(service, district_id, items)
    assert (counts.active_students, counts.staff) == (SAMPLE_ACTIVE_STUDENTS, 2)


async def test_records_stream_page_by_page(source):
    fake = FakeOneRoster()
    with running(fake) as url:
        stream = source.fetch_students(district=RIVERSIDE, options=options(url, fake))
        first = [await stream.__anext__(), await stream.__anext__()]
        requested = fake.offsets()
        rest = [item async for item in stream]

    assert first[0] == ServerCount(8)
    assert requested == [0]  # the first record arrives before the second page is asked for
    assert len(people_of(first + rest)) == 8


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"base_url": None}, "base_url is missing"),
        ({"base_url": "ftp://sis.example.org"}, "not an http"),
        ({"base_url": "http://sis.example.org"}, "plain http"),
        ({"version": "1.0"}, "version '1.0' is not supported"),
        ({"auth": "oauth1"}, "1.2 uses OAuth 2"),
        ({"auth": "saml"}, "auth 'saml' is not one of"),
        ({"client_secret": None}, "needs client_id and client_secret"),
        ({"page_size": 0}, "page_size"),
        ({"include_staff": "yes"}, "include_staff"),
        ({"person_key_fields": "identifier"}, "person_key_fields"),
    ],
)
async def test_options_are_checked_before_any_request(source, bad, message):
    opts = {**options("http://127.0.0.1:9"), **bad}
    with pytest.raises(SourceError, match=message):
        source.fetch_students(district=RIVERSIDE, options=opts)


async def test_an_unreachable_server_is_a_source_error(fast_settings):
    settings = fast_settings.model_copy(
        update={"http": fast_settings.http.model_copy(update={"retries": 1})}
    )
    source = OneRosterRestSource(plugin_host(settings))
    started = time.monotonic()
    with pytest.raises(SourceError, match="did not answer"):
        await fetch(source, options("http://127.0.0.1:9"))
    assert time.monotonic() - started < 5


async def test_local_students_and_the_sis_count_together(service, source):
    district_id = create_district(service, slug="riverside", roster=students(2, prefix="L"))
    fake = FakeOneRoster()
    with running(fake) as url:
        counts = sync(service, district_id, await fetch(source, options(url, fake)))

    assert counts.active_students == 2 + SAMPLE_ACTIVE_STUDENTS


async def test_a_students_enrollment_end_is_the_last_of_their_student_roles(source):
    fake = FakeOneRoster(
        students=[
            Person("left", orgs=("sch-oak", "sch-river"), end_date="2026-06-12"),
            # Still enrolled at Elm: a student role with no end.
            Person("enrolled", end_date="2026-06-12", other_roles=(("student", "sch-elm"),)),
            Person("open"),
        ]
    )
    with running(fake) as url:
        items = await fetch(source, options(url, fake))

    ends = {record.source_id: record.enrollment_end for record in people_of(items)}
    assert ends == {"left": date(2026, 6, 12), "enrolled": None, "open": None}
