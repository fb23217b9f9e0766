"""deactivatedStudents: the local roster's deactivated students, whom reactivateStudents takes,
paged both ways, within the caller's district, for Manage Settings only."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import event

from licensing.storage.roster_changes import apply_roster
from plugins.records import StudentRecord
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

DEACTIVATED = """query($first: Int, $after: String, $last: Int, $before: String, $search: String) {
  deactivatedStudents(first: $first, after: $after, last: $last, before: $before, search: $search) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id sourceId } }
    nodes { id sourceId givenName familyName grade school status }
  }
}"""

NODE = """query($id: ID!) { node(id: $id) { __typename ... on DeactivatedStudent { sourceId } } }"""

DEACTIVATE = """mutation($ids: [String!]!) { deactivateStudents(ids: $ids) {
  changed usage { activeStudents } errors { code message } } }"""

REACTIVATE = """mutation($ids: [String!]!) { reactivateStudents(ids: $ids) {
  changed usage { activeStudents } errors { code message } } }"""


def pupil(number: int, **fields: Any) -> StudentRecord:
    values: dict[str, Any] = {
        "given_name": "Ava",
        "family_name": f"Lopez{number}",
        "grade": "7",
        "primary_school": "North Middle",
        "schools": ("North Middle",),
    }
    values.update(fields)
    return StudentRecord(source_id=f"L{number:03d}", **values)


def global_id(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


async def deactivate(client: Any, token: str, ids: list[str]) -> dict[str, Any]:
    payload = (await graphql_data(client, token, DEACTIVATE, {"ids": ids}))["deactivateStudents"]
    assert payload["errors"] == []
    return payload


async def listed(client: Any, token: str, **variables: Any) -> dict[str, Any]:
    data = await graphql_data(client, token, DEACTIVATED, variables)
    connection: dict[str, Any] = data["deactivatedStudents"]
    return connection


async def walk(client: Any, token: str, *, backwards: bool) -> list[tuple[list[str], bool, bool]]:
    """Every page of three, from one end to the other: (source ids, hasPrevious, hasNext)."""
    pages = []
    cursor = None
    while True:
        variables = {"last": 3, "before": cursor} if backwards else {"first": 3, "after": cursor}
        connection = await listed(client, token, **variables)
        info = connection["pageInfo"]
        ids = [edge["node"]["sourceId"] for edge in connection["edges"]]
        pages.append((ids, info["hasPreviousPage"], info["hasNextPage"]))
        if not (info["hasPreviousPage"] if backwards else info["hasNextPage"]):
            return pages
        cursor = info["startCursor"] if backwards else info["endCursor"]


async def test_the_list_pages_the_same_students_forwards_and_backwards(client, make_district):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 51)])
    token = district.manager_token
    gone = [f"L{n:03d}" for n in (3, 9, 14, 22, 30, 41, 47)]
    payload = await deactivate(client, token, gone)
    assert (payload["changed"], payload["usage"]["activeStudents"]) == (7, 43)

    forwards = await walk(client, token, backwards=False)
    backwards = await walk(client, token, backwards=True)

    assert [(len(ids), previous, following) for ids, previous, following in forwards] == [
        (3, False, True),
        (3, True, True),
        (1, True, False),
    ]
    assert [(len(ids), previous, following) for ids, previous, following in backwards] == [
        (3, True, False),
        (3, True, True),
        (1, False, True),
    ]
    in_order = [source_id for ids, _, _ in forwards for source_id in ids]
    assert [source_id for ids, _, _ in reversed(backwards) for source_id in ids] == in_order
    assert sorted(in_order) == gone
    everything = await listed(client, token, first=100)
    assert everything["totalCount"] == 7
    first = everything["nodes"][0]
    assert (first["givenName"], first["grade"], first["school"], first["status"]) == (
        "Ava",
        "7",
        "North Middle",
        "ACTIVE",
    )


async def test_only_deactivated_local_students_are_listed(client, make_district, service):
    """Active students, disabled staff and a SIS's disabled students are not: reactivateStudents
    would refuse them all."""
    roster = [
        *(pupil(n) for n in range(1, 41)),
        pupil(90, enabled=False),
        pupil(91, enabled=False, status="graduated"),
        StudentRecord(source_id="STAFF-1", role="staff", enabled=False),
    ]
    district = await make_district("riverside", roster=roster)
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district.id,
            source="sis",
            records=[StudentRecord(source_id="SIS-1", enabled=False), StudentRecord("SIS-2")],
            replace=True,
            now=service.clock(),
        )

    connection = await listed(client, district.manager_token, first=100)

    assert [node["sourceId"] for node in connection["nodes"]] == ["L090", "L091"]
    assert [node["status"] for node in connection["nodes"]] == ["ACTIVE", "GRADUATED"]
    assert connection["totalCount"] == 2


async def test_reactivating_from_the_list_raises_the_count_and_empties_the_list(
    client, make_district
):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 51)])
    token = district.manager_token
    await deactivate(client, token, ["L001", "L002"])

    ids = [node["sourceId"] for node in (await listed(client, token))["nodes"]]
    back = (await graphql_data(client, token, REACTIVATE, {"ids": ids}))["reactivateStudents"]

    assert back == {"changed": 2, "usage": {"activeStudents": 50}, "errors": []}
    after = await listed(client, token)
    assert (after["nodes"], after["totalCount"]) == ([], 0)


async def test_the_list_is_the_callers_district_only(client, make_district):
    riverside = await make_district("riverside", roster=[pupil(n) for n in range(1, 41)])
    hillside = await make_district("hillside", roster=[pupil(n) for n in range(1, 41)])
    await deactivate(client, riverside.manager_token, ["L001", "L002"])
    await deactivate(client, hillside.manager_token, ["L040"])

    mine = await listed(client, riverside.manager_token)
    theirs = await listed(client, hillside.manager_token)

    assert [node["sourceId"] for node in mine["nodes"]] == ["L001", "L002"]
    assert [node["sourceId"] for node in theirs["nodes"]] == ["L040"]
    # Their ids find nothing from here, like ids that never existed; ours find ours.
    their_id = theirs["nodes"][0]["id"]
    assert (await graphql_data(client, riverside.manager_token, NODE, {"id": their_id}))[
        "node"
    ] is None
    own = await graphql_data(client, riverside.manager_token, NODE, {"id": mine["nodes"][0]["id"]})
    assert own["node"] == {"__typename": "DeactivatedStudent", "sourceId": "L001"}
    # A cursor of their list is just a position: it never reaches their rows.
    cursor = theirs["pageInfo"]["startCursor"]
    before_theirs = await listed(client, riverside.manager_token, first=10, after=cursor)
    assert all(node["sourceId"] != "L040" for node in before_theirs["nodes"])


async def test_a_view_license_token_is_refused_the_list_and_its_ids(client, make_district):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 41)])
    await deactivate(client, district.manager_token, ["L001"])
    student_id = (await listed(client, district.manager_token))["nodes"][0]["id"]

    refused = (await graphql(client, district.viewer_token, DEACTIVATED, {})).json()
    by_id = (await graphql(client, district.viewer_token, NODE, {"id": student_id})).json()

    assert refused["data"] == {"deactivatedStudents": None}
    assert [error["extensions"]["code"] for error in refused["errors"]] == ["FORBIDDEN"]
    assert by_id["data"] == {"node": None}
    assert by_id["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_reactivated_student_is_no_longer_a_deactivated_student_node(client, make_district):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 41)])
    token = district.manager_token
    await deactivate(client, token, ["L001"])
    student_id = (await listed(client, token))["nodes"][0]["id"]
    await graphql_data(client, token, REACTIVATE, {"ids": ["L001"]})

    assert (await graphql_data(client, token, NODE, {"id": student_id}))["node"] is None


async def test_search_finds_part_of_a_name_or_id_in_any_case(client, make_district):
    roster = [
        *(pupil(n) for n in range(1, 41)),
        pupil(50, given_name="Zoë", family_name="Marsh"),
        pupil(51, given_name="Noah", family_name="Marshall"),
        pupil(52, given_name="Liam", family_name="Brook"),
    ]
    district = await make_district("riverside", roster=roster)
    token = district.manager_token
    await deactivate(client, token, ["L050", "L051", "L052"])

    marsh = await listed(client, token, search="MARSH")
    by_id = await listed(client, token, search="l052")
    nothing = await listed(client, token, search="marsh\x00")

    assert [node["sourceId"] for node in marsh["nodes"]] == ["L050", "L051"]
    assert marsh["totalCount"] == 2
    assert [node["sourceId"] for node in by_id["nodes"]] == ["L052"]
    assert (nothing["nodes"], nothing["totalCount"]) == ([], 0)


@pytest.mark.parametrize(
    ("variables", "words"),
    [
        ({"first": 0}, "first must be between 1 and 100"),
        ({"first": 101}, "first must be between 1 and 100"),
        ({"first": 2, "last": 2}, "first or last, not both"),
        ({"after": "bm90LWEtY3Vyc29y"}, "not a cursor from the deactivated students"),
    ],
)
async def test_a_bad_page_request_is_refused_with_a_clear_error(
    client, make_district, variables, words
):
    district = await make_district("riverside", active=3)

    body = (await graphql(client, district.manager_token, DEACTIVATED, variables)).json()

    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_ARGUMENT"
    assert words in error["message"]


async def test_a_cursor_of_the_active_students_is_refused(client, make_district):
    district = await make_district("riverside", active=3)
    active = await graphql_data(
        client, district.manager_token, "{ activeStudents(first: 1) { pageInfo { endCursor } } }"
    )
    cursor = active["activeStudents"]["pageInfo"]["endCursor"]

    body = (
        await graphql(client, district.manager_token, DEACTIVATED, {"first": 1, "after": cursor})
    ).json()

    assert body["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"


async def test_a_page_is_read_through_the_index_of_disabled_records(client, make_district, service):
    """However large the roster, a page reads the deactivated students only: the database
    plans the read with the partial index of disabled records."""
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 61)])
    token = district.manager_token
    await deactivate(client, token, ["L010", "L020"])
    engine = service.database.engine
    seen: list[tuple[str, Any]] = []

    def record(_connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM roster_record" in statement and "LIMIT" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        page = await listed(client, token, first=1)
        await listed(client, token, first=1, after=page["pageInfo"]["endCursor"])
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert seen
    for statement, parameters in seen:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plan = " ".join(str(row[-1]) for row in rows)
            else:
                # The table is tiny here: without this, PostgreSQL reads it whole either way.
                connection.exec_driver_sql("SET enable_seqscan = off")
                rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plan = " ".join(str(row[0]) for row in rows)
        assert "ix_roster_record_disabled" in plan, plan


async def test_an_active_students_id_is_not_a_deactivated_student(client, make_district):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 41)])
    active = await graphql_data(
        client, district.manager_token, "{ activeStudents(first: 1) { nodes { id } } }"
    )
    row = base64.b64decode(active["activeStudents"]["nodes"][0]["id"]).decode().split(":")[1]

    found = await graphql_data(
        client, district.manager_token, NODE, {"id": global_id(f"DeactivatedStudent:{row}")}
    )

    assert found["node"] is None


async def test_a_refused_change_names_each_refused_id_and_changes_nothing(
    client, make_district, service
):
    district = await make_district("riverside", roster=[pupil(n) for n in range(1, 41)])
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
        """mutation($ids: [String!]!) { deactivateStudents(ids: $ids) {
             changed usage { activeStudents } errors { code }
             refusedIds { sourceId code source } } }""",
        {"ids": ["L001", "nobody", "SIS-1", "nobody", "L002"]},
    )

    payload = result["deactivateStudents"]
    assert payload["refusedIds"] == [
        {"sourceId": "nobody", "code": "NOT_FOUND", "source": None},
        {"sourceId": "SIS-1", "code": "OWNED_BY_SOURCE", "source": "sis"},
    ]
    assert (payload["changed"], payload["usage"]["activeStudents"]) == (0, 41)
    assert (await listed(client, district.manager_token))["totalCount"] == 0
