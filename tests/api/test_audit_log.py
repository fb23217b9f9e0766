"""auditLog: every action with actor and time, newest first, and no way to change it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

AUDIT = """query($after: String) { auditLog(first: 2, after: $after) {
  pageInfo { hasNextPage endCursor }
  edges { node { action actor outcome occurredAt oldValue newValue } } } }"""


async def test_the_audit_log_shows_each_action_newest_first(client, make_district, clock):
    district = await make_district("riverside", active=10)
    token = district.manager_token
    await graphql_data(
        client, token, "mutation { setThreshold(studentsRemaining: 20) { errors { code } } }"
    )
    clock.advance(seconds=1)
    await graphql_data(
        client, token, "mutation { setThreshold(studentsRemaining: -5) { errors { code } } }"
    )
    clock.advance(seconds=1)
    await graphql_data(client, token, "mutation { forceLicenseUpdate { updated } }")

    actions = []
    after = None
    while True:
        page = (await graphql_data(client, token, AUDIT, {"after": after}))["auditLog"]
        actions += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]

    assert [(entry["action"], entry["outcome"]) for entry in actions] == [
        ("FORCE_LICENSE_UPDATE", "UNCHANGED"),
        ("SET_THRESHOLD", "REJECTED"),
        ("SET_THRESHOLD", "CHANGED"),
        ("LICENSE_REFRESH", "UPDATED"),
        ("ROSTER_IMPORT", "APPLIED"),  # the district's first roster
    ]
    changed = actions[2]
    # JSON values arrive as JSON: numbers and objects, not text holding them.
    assert (changed["oldValue"], changed["newValue"]) == (50, 20)
    refreshed = actions[3]
    assert refreshed["oldValue"] is None
    assert refreshed["newValue"]["total"] == 1000
    imported = actions[4]
    assert imported["oldValue"] == {"used": 0, "source_active": 0}
    assert changed["actor"].startswith("token:")
    assert changed["occurredAt"].startswith("2026-11-28T15:00")


async def test_nothing_in_the_api_can_edit_or_delete_the_audit_log(client, make_district):
    district = await make_district("riverside")
    response = await graphql(
        client, district.manager_token, "{ __schema { mutationType { fields { name } } } }"
    )
    names = [
        field["name"].lower()
        for field in response.json()["data"]["__schema"]["mutationType"]["fields"]
    ]
    assert not [name for name in names if "audit" in name]


async def test_the_audit_log_needs_manage_settings(client, make_district):
    district = await make_district("riverside")
    response = await graphql(client, district.viewer_token, "{ auditLog { edges { cursor } } }")
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


@pytest.mark.parametrize(
    ("field", "cursor"),
    [
        ("auditLog", "audit:3000000000"),  # past a 32-bit id column: PostgreSQL would refuse it
        ("auditLog", "audit:99999999999999999999999"),
        ("auditLog", "audit:2147483648"),
        ("auditLog", "audit:١٢٣"),  # digits, but not ASCII ones
        ("activeStudents", "student:3000000000"),
        ("activeStudents", "student:18446744073709551616"),
    ],
)
async def test_a_cursor_holding_an_id_no_row_can_have_is_refused_with_a_code(
    client, make_district, field, cursor
):
    district = await make_district("riverside", active=3)
    document = f"query($after: String) {{ {field}(first: 2, after: $after) {{ totalCount }} }}"
    if field == "auditLog":
        document = document.replace("totalCount", "edges { cursor }")

    response = await graphql(client, district.manager_token, document, {"after": cursor_of(cursor)})

    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INVALID_ARGUMENT"
    assert "is not a cursor from" in error["message"]


async def test_the_largest_id_a_row_can_have_is_a_valid_cursor(client, make_district):
    district = await make_district("riverside", active=3)
    document = "query($after: String) { auditLog(first: 2, after: $after) { edges { cursor } } }"
    after = cursor_of("audit:2147483647")

    data = await graphql_data(client, district.manager_token, document, {"after": after})

    assert data["auditLog"]["edges"]  # every event has a smaller id


FILTERED = """query($actions: [AuditAction!], $since: Date, $until: Date, $first: Int, $after: String,
                   $last: Int, $before: String) {
  auditLog(actions: $actions, since: $since, until: $until, first: $first, after: $after,
           last: $last, before: $before) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    nodes { action outcome occurredAt newValue } } }"""


async def _save_thresholds_across_midnight(client, make_district, clock):
    """Threshold saves at 9 AM and 11 PM on November 28 and 1 AM on November 29 in Chicago
    (the last two on November 29 in UTC), after the district's first roster and license."""
    district = await make_district("riverside", active=10, time_zone="America/Chicago")
    for value, moment in (
        (20, "2026-11-28T15:00"),
        (30, "2026-11-29T05:00"),
        (40, "2026-11-29T07:00"),
    ):
        clock.set(datetime.fromisoformat(moment).replace(tzinfo=UTC))
        mutation = (
            f"mutation {{ setThreshold(studentsRemaining: {value}) {{ errors {{ code }} }} }}"
        )
        await graphql_data(client, district.manager_token, mutation)
    return district


async def test_the_audit_log_filters_by_kind_and_by_the_districts_days(
    client, make_district, clock
):
    district = await _save_thresholds_across_midnight(client, make_district, clock)
    token = district.manager_token

    async def log(**variables):
        return (await graphql_data(client, token, FILTERED, variables))["auditLog"]["nodes"]

    saves = await log(actions=["SET_THRESHOLD"])
    assert [entry["newValue"] for entry in saves] == [40, 30, 20]
    # November 28 in Chicago ends at 6 AM UTC on the 29th: the 11 PM save is on the 28th.
    on_the_28th = await log(actions=["SET_THRESHOLD"], since="2026-11-28", until="2026-11-28")
    assert [entry["newValue"] for entry in on_the_28th] == [30, 20]
    assert [entry["newValue"] for entry in await log(since="2026-11-29")] == [40]
    every_kind_on_the_28th = await log(until="2026-11-28")
    assert [entry["action"] for entry in every_kind_on_the_28th] == [
        "SET_THRESHOLD",
        "SET_THRESHOLD",
        "LICENSE_REFRESH",
        "ROSTER_IMPORT",
    ]
    assert await log(actions=["TOKEN_REVOKED"]) == []
    assert await log(actions=[]) == []


async def test_filtered_pages_go_forward_and_back_within_the_filter(client, make_district, clock):
    district = await _save_thresholds_across_midnight(client, make_district, clock)
    token = district.manager_token
    kind = {"actions": ["SET_THRESHOLD"]}

    async def page(**variables):
        return (await graphql_data(client, token, FILTERED, {**kind, **variables}))["auditLog"]

    first = await page(first=2)
    assert [entry["newValue"] for entry in first["nodes"]] == [40, 30]
    assert first["pageInfo"]["hasNextPage"] is True
    second = await page(first=2, after=first["pageInfo"]["endCursor"])
    # Only the third save is left: the license refresh and roster import are not of this kind.
    assert [entry["newValue"] for entry in second["nodes"]] == [20]
    assert second["pageInfo"]["hasNextPage"] is False
    back = await page(last=2, before=second["pageInfo"]["startCursor"])
    assert [entry["newValue"] for entry in back["nodes"]] == [40, 30]
    assert back["pageInfo"]["hasPreviousPage"] is False


async def test_an_until_before_since_is_refused_with_a_code(client, make_district):
    district = await make_district("riverside")
    response = await graphql(
        client,
        district.manager_token,
        '{ auditLog(since: "2026-11-28", until: "2026-11-27") { nodes { action } } }',
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"
    assert body["data"]["auditLog"] is None
