""" "License Count Seems Wrong": the report, the review groups, and fixing local students."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from licensing.settings import DistrictConfig
from licensing.storage.roster_changes import apply_roster
from plugins.records import StudentRecord
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

REVIEW = "{ countReview { reason students records licensesFreed examples explanation } }"
LICENSE = "{ license { display level used } usage { activeStudents inactiveStudents disabledStudents duplicatesCollapsed } }"


def scenario() -> list[StudentRecord]:
    """1000 counted students: 200 seniors whose class has graduated, 5 test accounts, and
    3 students with a second record (the same person under two ids)."""
    people = []
    for number in range(1, 1001):
        if number <= 200:
            extra = {"grade": "12", "graduation_year": 2026}
        else:
            extra = {"grade": str(1 + number % 11), "graduation_year": 2027 + number % 11}
        username = f"test.account{number}" if number >= 996 else f"s{number:04d}"
        people.append(
            StudentRecord(
                source_id=f"S{number:04d}",
                given_name="Ava",
                family_name="Lopez",
                username=username,
                **extra,
            )
        )
    for number in (300, 301, 302):
        people.append(
            StudentRecord(
                source_id=f"S{number:04d}-old",
                person_key=f"S{number:04d}",
                given_name="Ava",
                family_name="Lopez",
                username=f"old{number}",
                grade="5",
                graduation_year=2030,
            )
        )
    return people


@pytest.fixture
async def district(make_district):
    return await make_district("riverside", seats=1000, roster=scenario(), threshold=50)


async def test_count_review_names_exactly_the_scenarios_groups(client, district):
    data = await graphql_data(client, district.manager_token, REVIEW)

    groups = {group["reason"]: group for group in data["countReview"]}
    assert set(groups) == {"GRADUATION_YEAR_PASSED", "TEST_ACCOUNT", "DUPLICATE_PERSON"}
    assert [group["reason"] for group in data["countReview"]] == [
        "GRADUATION_YEAR_PASSED",
        "TEST_ACCOUNT",
        "DUPLICATE_PERSON",
    ]
    graduated = groups["GRADUATION_YEAR_PASSED"]
    assert (graduated["students"], graduated["licensesFreed"]) == (200, 200)
    assert graduated["examples"][0] == "local:S0001"
    assert "2026" in graduated["explanation"]
    tests = groups["TEST_ACCOUNT"]
    assert (tests["students"], tests["licensesFreed"]) == (5, 5)
    duplicates = groups["DUPLICATE_PERSON"]
    assert (duplicates["students"], duplicates["records"], duplicates["licensesFreed"]) == (3, 6, 0)


async def test_deactivating_the_local_ones_turns_red_to_the_right_number_at_once(client, district):
    before = await graphql_data(client, district.manager_token, LICENSE)
    assert before["license"] == {"display": "1000 / 1000", "level": "RED", "used": 1000}
    assert before["usage"]["duplicatesCollapsed"] == 3
    ids = [f"S{number:04d}" for number in [*range(1, 201), *range(996, 1001)]]

    result = await graphql_data(
        client,
        district.manager_token,
        """mutation($ids: [String!]!) { deactivateStudents(ids: $ids) {
             changed errors { code } license { display level } usage { disabledStudents } } }""",
        {"ids": ids},
    )

    # 205 of the local roster's 1003 active students is more than a change may drop unconfirmed.
    held = result["deactivateStudents"]
    assert [error["code"] for error in held["errors"]] == ["SYNC_HELD"]
    assert (held["changed"], held["license"]["display"]) == (0, "1000 / 1000")
    confirmed = await graphql_data(
        client,
        district.manager_token,
        """mutation { confirmRosterSync(source: "local") {
             status errors { code } license { display level } usage { disabledStudents } } }""",
    )

    payload = confirmed["confirmRosterSync"]
    assert (payload["status"], payload["errors"]) == ("APPLIED", [])
    assert payload["license"] == {"display": "795 / 1000", "level": "GREEN"}
    assert payload["usage"]["disabledStudents"] == 205
    after = await graphql_data(client, district.manager_token, REVIEW)
    assert [group["reason"] for group in after["countReview"]] == ["DUPLICATE_PERSON"]
    alerts = await graphql_data(client, district.manager_token, "{ alerts { kind } }")
    assert alerts["alerts"] == []

    back = await graphql_data(
        client,
        district.manager_token,
        'mutation { reactivateStudents(ids: ["S0001"]) { changed license { display } } }',
    )
    assert back["reactivateStudents"] == {"changed": 1, "license": {"display": "796 / 1000"}}


async def test_sis_owned_and_unknown_students_are_refused_and_nothing_changes(
    client, district, service
):
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district.id,
            source="sis",
            records=[StudentRecord(source_id="SIS-1")],
            replace=True,
            now=service.clock(),
        )

    result = await graphql_data(
        client,
        district.manager_token,
        'mutation { deactivateStudents(ids: ["S0001", "SIS-1", "nobody"]) { changed errors { field code message } license { used } } }',
    )

    payload = result["deactivateStudents"]
    assert payload["changed"] == 0
    assert [error["code"] for error in payload["errors"]] == ["OWNED_BY_SOURCE", "NOT_FOUND"]
    assert "'sis'" in payload["errors"][0]["message"]
    assert payload["license"]["used"] == 1001


async def test_student_changes_need_manage_settings(client, district):
    response = await graphql(
        client,
        district.viewer_token,
        'mutation { deactivateStudents(ids: ["S0001"]) { changed } }',
    )

    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_report_pages_with_stable_cursors_and_filters(client, district):
    query = """query($after: String, $filter: ActiveStudentFilterInput) {
      activeStudents(first: 100, after: $after, filter: $filter) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { sourceId source status role enabled whyCounted graduationYear } } } }"""
    seen: list[str] = []
    after = None
    while True:
        data = await graphql_data(client, district.manager_token, query, {"after": after})
        connection = data["activeStudents"]
        seen += [edge["node"]["sourceId"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert connection["totalCount"] == 1003
    assert len(seen) == len(set(seen)) == 1003
    assert seen[:2] == ["S0001", "S0002"]
    node = connection["edges"][0]["node"]
    assert (node["source"], node["status"], node["role"], node["enabled"]) == (
        "local",
        "ACTIVE",
        "STUDENT",
        True,
    )

    filtered = await graphql_data(
        client,
        district.manager_token,
        query,
        {"filter": {"graduationYear": 2026, "search": "S000"}},
    )
    assert filtered["activeStudents"]["totalCount"] == 9  # S0001..S0009


async def test_the_report_refuses_bad_paging(client, district):
    for arguments in ("first: 101", "first: 0", 'after: "not-a-cursor"'):
        response = await graphql(
            client, district.manager_token, f"{{ activeStudents({arguments}) {{ totalCount }} }}"
        )
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "INVALID_ARGUMENT", arguments


# --- Every reason at once: the groups' counts, order and examples ---------------------------------

EVERY_REASON = (
    "{ countReview { reason students records licensesFreed examples } }"  # no explanation: fixed
)


def every_reason() -> list[StudentRecord]:
    """Records that fall in every group, some in two, some only in part (so they free nothing),
    beside plain students and a record that is not counted."""
    stale = datetime(2000, 1, 1, tzinfo=UTC)
    return [
        StudentRecord(source_id="A1", graduation_year=2000),
        StudentRecord(source_id="A2", graduation_year=2000),
        StudentRecord(source_id="A2-new", person_key="A2", graduation_year=2035),
        StudentRecord(source_id="B1", grade="13"),
        StudentRecord(source_id="B2", grade="14"),
        StudentRecord(source_id="C1", last_modified=stale),
        StudentRecord(source_id="D1", username="Demo.kid"),
        StudentRecord(source_id="D2", given_name="ZZtop"),
        StudentRecord(source_id="D3", username="x_1"),
        StudentRecord(source_id="D4", username="xy1"),  # "x_" is text, not a wildcard
        StudentRecord(source_id="E1", schools=["Old Mill"]),
        StudentRecord(source_id="E2", schools=["Old Mill", "Hilltop"]),  # Hilltop is open
        StudentRecord(source_id="E3", schools=["Old Mill", "Elm Street"]),
        StudentRecord(source_id="F1", status="graduated", graduation_year=2000),  # not counted
        StudentRecord(source_id="G1", enrollment_end=date(2026, 6, 12)),  # left in June
        StudentRecord(source_id="G2", enrollment_end=date(2027, 6, 15)),  # enrolled this year
        StudentRecord(source_id="G3", enrollment_end=date(2026, 6, 12)),
        StudentRecord(source_id="G3-other", person_key="G3"),  # enrolled elsewhere still
        *(StudentRecord(source_id=f"P{number}", grade="5") for number in range(20)),
    ]


async def test_every_group_is_counted_with_its_licenses_freed_and_examples(
    client, make_district, settings
):
    settings.districts["review"] = DistrictConfig(
        test_account_patterns=["test", "demo", "zz", "x_"],
        closed_schools=["Old Mill", "Elm Street"],
    )
    district = await make_district("review", roster=every_reason())

    data = await graphql_data(client, district.manager_token, EVERY_REASON)

    assert [
        (group["reason"], group["students"], group["records"], group["licensesFreed"])
        for group in data["countReview"]
    ] == [
        ("TEST_ACCOUNT", 3, 3, 3),
        ("GRADE_BEYOND_LAST", 2, 2, 2),
        ("CLOSED_SCHOOL", 2, 2, 2),
        ("GRADUATION_YEAR_PASSED", 2, 2, 1),  # A2 has a counted record that has not graduated
        ("ENROLLMENT_ENDED", 2, 2, 1),  # G3 has a counted record with no end
        ("NOT_MODIFIED_RECENTLY", 1, 1, 1),
        ("DUPLICATE_PERSON", 2, 4, 0),
    ]
    examples = {group["reason"]: group["examples"] for group in data["countReview"]}
    assert examples["TEST_ACCOUNT"] == ["local:D1", "local:D2", "local:D3"]
    assert examples["CLOSED_SCHOOL"] == ["local:E1", "local:E3"]
    assert examples["DUPLICATE_PERSON"] == [
        "local:A2",
        "local:A2-new",
        "local:G3",
        "local:G3-other",
    ]
    assert examples["ENROLLMENT_ENDED"] == ["local:G1", "local:G3"]


async def test_the_roster_is_read_once_for_every_groups_counts(
    client, make_district, settings, service
):
    """However many reasons there are, the counts come from one statement over the roster; a
    group's examples are read only when it holds someone."""
    settings.districts["review"] = DistrictConfig(closed_schools=["Old Mill"])
    district = await make_district("review", roster=every_reason())
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        if "roster_record" in statement:
            statements.append(statement)

    event.listen(service.database.engine, "before_cursor_execute", seen)
    try:
        data = await graphql_data(client, district.manager_token, EVERY_REASON)
    finally:
        event.remove(service.database.engine, "before_cursor_execute", seen)

    groups = len(data["countReview"])
    # The closed schools' candidates, the counts, and each group's examples.
    assert len(statements) == 1 + 1 + groups


async def test_students_whose_enrollments_all_ended_are_suggested_after_a_sync(
    client, make_district, settings, service, tmp_path
):
    from licensing.settings import RosterSourceConfig
    from tests.plugins.test_oneroster_csv import (
        ENROLLMENT_ROWS,
        v1p1_with_enrollments,
    )

    bundle = v1p1_with_enrollments(tmp_path, ENROLLMENT_ROWS)  # "left" left in June 2026
    settings.districts["riverside"] = DistrictConfig(
        roster_sources={
            "sis": RosterSourceConfig(kind="oneroster_csv", options={"path": str(bundle)})
        }
    )
    district = await make_district("riverside", seats=100)
    outcome = await service.roster_sync.sync(district_id=district.id, source="sis", actor="test")
    assert outcome.status == "applied"

    data = await graphql_data(client, district.manager_token, REVIEW)

    [ended] = [group for group in data["countReview"] if group["reason"] == "ENROLLMENT_ENDED"]
    assert (ended["students"], ended["licensesFreed"], ended["examples"]) == (1, 1, ["sis:left"])
    assert "Every enrollment of theirs has ended" in ended["explanation"]


# --- The review kept between reads: always the answer a count of the roster gives -------------

# Each read is a new document: the same document at the same district version and day would be
# answered from the worker's kept answers (docs/caching.md) without reading the review at all.
FIGURES = "{{ countReview {{ reason students records licensesFreed examples }} }} # read {read}"


async def review_figures(client, token: str, read: int) -> dict[str, tuple[int, int, int]]:
    data = await graphql_data(client, token, FIGURES.format(read=read))
    return {
        group["reason"]: (group["students"], group["records"], group["licensesFreed"])
        for group in data["countReview"]
    }


async def test_a_change_of_the_roster_changes_the_next_review(client, district):
    before = await review_figures(client, district.manager_token, 1)
    assert before["TEST_ACCOUNT"] == (5, 5, 5)

    changed = await graphql_data(
        client,
        district.manager_token,
        'mutation { deactivateStudents(ids: ["S0996", "S0997"]) { changed } }',
    )

    assert changed["deactivateStudents"]["changed"] == 2
    after = await review_figures(client, district.manager_token, 2)
    assert after["TEST_ACCOUNT"] == (3, 3, 3)
    assert after["GRADUATION_YEAR_PASSED"] == before["GRADUATION_YEAR_PASSED"]


def modified_over_the_day() -> list[StudentRecord]:
    """With the default 400 days: M1 is stale already; M2 at 18:00 today, M3 at 21:00 (and
    its second record, modified last week, keeps M3 counted); M4 never is."""
    today = datetime(2026, 11, 28, tzinfo=UTC)
    line = today - timedelta(days=400)
    return [
        StudentRecord(source_id="M1", last_modified=line - timedelta(days=30)),
        StudentRecord(source_id="M2", last_modified=line + timedelta(hours=18)),
        StudentRecord(source_id="M3", last_modified=line + timedelta(hours=21)),
        StudentRecord(
            source_id="M3-other", person_key="M3", last_modified=today - timedelta(days=7)
        ),
        StudentRecord(source_id="M4", last_modified=today - timedelta(days=2)),
    ]


async def test_not_modified_recently_follows_the_clock_through_the_day(
    client, make_district, clock
):
    clock.set(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    district = await make_district("review", roster=modified_over_the_day())
    token = district.manager_token

    morning = await review_figures(client, token, 1)
    clock.set(datetime(2026, 11, 28, 19, 0, tzinfo=UTC))
    evening = await review_figures(client, token, 2)
    clock.set(datetime(2026, 11, 28, 22, 0, tzinfo=UTC))
    night = await review_figures(client, token, 3)
    clock.set(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    next_day = await review_figures(client, token, 4)

    assert morning["NOT_MODIFIED_RECENTLY"] == (1, 1, 1)
    assert evening["NOT_MODIFIED_RECENTLY"] == (2, 2, 2)
    # M3's other record is recent: M3 is in the group, but reviewing M3 frees no license.
    assert night["NOT_MODIFIED_RECENTLY"] == (3, 3, 2)
    assert next_day["NOT_MODIFIED_RECENTLY"] == (3, 3, 2)
    examples = await graphql_data(client, token, "{ countReview { reason examples } } # 5")
    [stale] = [g for g in examples["countReview"] if g["reason"] == "NOT_MODIFIED_RECENTLY"]
    assert stale["examples"] == ["local:M1", "local:M2", "local:M3"]


async def test_other_review_options_are_counted_at_once(client, make_district, settings):
    settings.districts["review"] = DistrictConfig(test_account_patterns=["test"])
    district = await make_district("review", roster=every_reason())
    before = await review_figures(client, district.manager_token, 1)
    assert "TEST_ACCOUNT" not in before and "CLOSED_SCHOOL" not in before

    settings.districts["review"] = DistrictConfig(
        test_account_patterns=["demo", "zz"], closed_schools=["Old Mill", "Elm Street"]
    )
    after = await review_figures(client, district.manager_token, 2)

    assert after["TEST_ACCOUNT"] == (2, 2, 2)
    assert after["CLOSED_SCHOOL"] == (2, 2, 2)
