"""Global ids and Relay connections: node(id:)/nodes(ids:) find only the caller's district's
objects, and activeStudents and auditLog page both ways with exact pageInfo."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import event

from licensing.orchestration.scheduled_jobs import service_scheduler
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

EVERY_NODE = """{
  alerts { id kind message }
  activeStudents(first: 2) { nodes { id sourceId } }
  auditLog(first: 2) { nodes { id action } }
  dataSources { id name }
  scheduledJobs { id name }
}"""

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on Alert { kind message }
  ... on ActiveStudent { sourceId }
  ... on AuditEvent { action }
  ... on DataSource { name }
  ... on ScheduledJob { name }
} }"""

NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"""


def answer(response: Any) -> dict[str, Any]:
    """The response body without its cost report (which counts down with every request)."""
    return {key: value for key, value in response.json().items() if key != "extensions"}


def global_id(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def cursor_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


async def district_with_every_node(make_district, service, slug: str) -> Any:
    """A district showing an alert (4 licenses left, threshold 5), with students, audit
    events, its local roster source and its scheduled jobs."""
    district = await make_district(slug, seats=10, active=6, threshold=5)
    await service_scheduler(service, holder="runner").tick()
    return district


def objects_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each listed object by its id, with its type."""
    listed = {
        "Alert": data["alerts"],
        "ActiveStudent": data["activeStudents"]["nodes"],
        "AuditEvent": data["auditLog"]["nodes"],
        "DataSource": data["dataSources"],
        "ScheduledJob": data["scheduledJobs"],
    }
    return {
        item["id"]: {"__typename": kind, **item} for kind, items in listed.items() for item in items
    }


async def test_every_node_type_round_trips_through_node_and_nodes(client, make_district, service):
    district = await district_with_every_node(make_district, service, "riverside")
    objects = objects_of(await graphql_data(client, district.manager_token, EVERY_NODE))
    assert {item["__typename"] for item in objects.values()} == {
        "Alert",
        "ActiveStudent",
        "AuditEvent",
        "DataSource",
        "ScheduledJob",
    }

    for object_id, listed in objects.items():
        found = (await graphql_data(client, district.manager_token, NODE, {"id": object_id}))[
            "node"
        ]
        assert {key: found[key] for key in listed} == listed

    ids = list(objects)
    nodes = (await graphql_data(client, district.manager_token, NODES, {"ids": ids}))["nodes"]
    assert [(node["__typename"], node["id"]) for node in nodes] == [
        (objects[object_id]["__typename"], object_id) for object_id in ids
    ]


async def test_ids_are_opaque_and_differ_across_types(client, make_district, service):
    district = await district_with_every_node(make_district, service, "riverside")
    objects = objects_of(await graphql_data(client, district.manager_token, EVERY_NODE))

    for object_id in objects:
        assert not object_id.isdigit()
    assert len(set(objects)) == len(objects)


async def test_another_districts_ids_find_nothing_like_ids_that_never_existed(
    client, make_district, service
):
    riverside = await district_with_every_node(make_district, service, "riverside")
    hillcrest = await district_with_every_node(make_district, service, "hillcrest")
    riverside_objects = objects_of(await graphql_data(client, riverside.manager_token, EVERY_NODE))
    hillcrest_objects = objects_of(await graphql_data(client, hillcrest.manager_token, EVERY_NODE))
    # Both districts have a roster source by the same name; its ids still differ.
    assert "local" in {item.get("name") for item in riverside_objects.values()}
    assert "local" in {item.get("name") for item in hillcrest_objects.values()}
    riverside_ids = list(riverside_objects)
    assert not set(riverside_ids) & set(hillcrest_objects)

    for object_id in riverside_ids:
        response = await graphql(client, hillcrest.manager_token, NODE, {"id": object_id})
        never_existed = await graphql(
            client, hillcrest.manager_token, NODE, {"id": global_id("AuditEvent:2000000000")}
        )
        assert answer(response) == answer(never_existed) == {"data": {"node": None}}

    response = await graphql(client, hillcrest.manager_token, NODES, {"ids": riverside_ids})
    assert answer(response) == {"data": {"nodes": [None] * len(riverside_ids)}}


@pytest.mark.parametrize(
    "bad_id",
    [
        "",
        "not base64 at all!",
        "%%%%",
        global_id("Alert"),  # no key
        global_id("Alert:abc"),
        global_id("Alert:-1"),
        global_id("Alert:0"),
        global_id("Alert:99999999999999999999"),
        global_id("Alert:١٢"),  # digits, not ASCII ones
        global_id("License:1"),  # a type, but not a Node
        global_id("Node:1"),  # the interface itself
        global_id("UsageDay:1"),
        global_id("NoSuchType:1"),
        global_id("ScheduledJob:" + "x" * 500),
        base64.b64encode(b"\xff\xfe:1").decode("ascii"),  # not UTF-8
    ],
)
async def test_a_malformed_or_unknown_id_is_null_not_an_error(client, make_district, bad_id):
    district = await make_district("riverside", active=2)

    one = await graphql(client, district.manager_token, NODE, {"id": bad_id})
    many = await graphql(client, district.manager_token, NODES, {"ids": [bad_id, bad_id]})

    assert answer(one) == {"data": {"node": None}}
    assert answer(many) == {"data": {"nodes": [None, None]}}


async def test_a_view_token_reads_alerts_by_id_but_not_what_needs_manage_settings(
    client, make_district, service
):
    district = await district_with_every_node(make_district, service, "riverside")
    objects = objects_of(await graphql_data(client, district.manager_token, EVERY_NODE))
    alert = next(i for i, item in objects.items() if item["__typename"] == "Alert")
    student = next(i for i, item in objects.items() if item["__typename"] == "ActiveStudent")
    event = next(i for i, item in objects.items() if item["__typename"] == "AuditEvent")

    found = await graphql_data(client, district.viewer_token, NODE, {"id": alert})
    assert found["node"]["kind"] == "LICENSES_LOW"

    refused = (await graphql(client, district.viewer_token, NODE, {"id": student})).json()
    assert refused["data"] == {"node": None}
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["node"]

    mixed = (
        await graphql(client, district.viewer_token, NODES, {"ids": [alert, event, alert]})
    ).json()
    assert [node and node["id"] for node in mixed["data"]["nodes"]] == [alert, None, alert]
    [error] = mixed["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["path"] == ["nodes", 1]


async def test_the_permission_is_refused_before_the_id_is_looked_up(client, make_district):
    """The answer for an id the token may not read says nothing of whether it exists."""
    district = await make_district("riverside", active=2)
    data = await graphql_data(
        client, district.manager_token, "{ activeStudents(first: 1) { nodes { id } } }"
    )
    existing = data["activeStudents"]["nodes"][0]["id"]
    missing = global_id("ActiveStudent:2000000000")

    answers = [
        answer(await graphql(client, district.viewer_token, NODE, {"id": object_id}))
        for object_id in (existing, missing)
    ]

    assert answers[0] == answers[1]
    assert answers[0]["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_student_no_longer_counted_is_no_longer_an_active_student_node(
    client, make_district
):
    # Enough students that one fewer is not a drop held for confirmation.
    district = await make_district("riverside", active=40)
    data = await graphql_data(
        client,
        district.manager_token,
        "{ activeStudents(first: 1) { nodes { id sourceId } } }",
    )
    [student] = data["activeStudents"]["nodes"]
    changed = await graphql_data(
        client,
        district.manager_token,
        "mutation($ids: [String!]!) { deactivateStudents(ids: $ids) { changed errors { code message } } }",
        {"ids": [student["sourceId"]]},
    )
    assert changed["deactivateStudents"] == {"changed": 1, "errors": []}

    found = await graphql_data(client, district.manager_token, NODE, {"id": student["id"]})

    assert found["node"] is None


async def test_nodes_takes_at_most_a_hundred_ids(client, make_district):
    district = await make_district("riverside")

    response = await graphql(
        client, district.manager_token, NODES, {"ids": [global_id("Alert:1")] * 101}
    )

    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TOO_MANY_IDS"
    assert "100" in error["message"]


STUDENTS = """query($first: Int, $after: String, $last: Int, $before: String) {
  activeStudents(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id sourceId } }
    nodes { id }
  }
}"""

AUDIT = """query($first: Int, $after: String, $last: Int, $before: String) {
  auditLog(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id action } }
    nodes { id }
  }
}"""


async def walk(client, token: str, document: str, field: str, *, backwards: bool) -> list[Any]:
    """Every page, from one end to the other: (ids of the page, hasPrevious, hasNext)."""
    pages = []
    cursor = None
    while True:
        variables = {"last": 3, "before": cursor} if backwards else {"first": 3, "after": cursor}
        connection = (await graphql_data(client, token, document, variables))[field]
        ids = [edge["node"]["id"] for edge in connection["edges"]]
        info = connection["pageInfo"]
        assert [node["id"] for node in connection["nodes"]] == ids
        assert info["startCursor"] == connection["edges"][0]["cursor"]
        assert info["endCursor"] == connection["edges"][-1]["cursor"]
        pages.append((ids, info["hasPreviousPage"], info["hasNextPage"]))
        more = info["hasPreviousPage"] if backwards else info["hasNextPage"]
        if not more:
            return pages
        cursor = info["startCursor"] if backwards else info["endCursor"]


async def test_active_students_page_the_same_rows_forwards_and_backwards(client, make_district):
    district = await make_district("riverside", active=7)
    token = district.manager_token

    forwards = await walk(client, token, STUDENTS, "activeStudents", backwards=False)
    backwards = await walk(client, token, STUDENTS, "activeStudents", backwards=True)

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
    in_order = [object_id for ids, _, _ in forwards for object_id in ids]
    assert [object_id for ids, _, _ in reversed(backwards) for object_id in ids] == in_order
    assert len(set(in_order)) == 7
    everything = await graphql_data(client, token, STUDENTS, {"first": 100})
    assert [edge["node"]["id"] for edge in everything["activeStudents"]["edges"]] == in_order
    assert everything["activeStudents"]["totalCount"] == 7


async def test_the_audit_log_pages_newest_first_both_ways(client, make_district, clock):
    district = await make_district("riverside", active=3)
    token = district.manager_token
    for threshold in (10, 11, 12, 13, 14):
        clock.advance(seconds=1)
        await graphql_data(
            client,
            token,
            f"mutation {{ setThreshold(studentsRemaining: {threshold}) {{ errors {{ code }} }} }}",
        )
    everything = (await graphql_data(client, token, AUDIT, {"first": 100}))["auditLog"]
    newest_first = [edge["node"]["id"] for edge in everything["edges"]]
    assert everything["totalCount"] == len(newest_first) == 7  # import, license, 5 thresholds
    assert everything["edges"][0]["node"]["action"] == "SET_THRESHOLD"
    assert everything["pageInfo"]["hasNextPage"] is False
    assert everything["pageInfo"]["hasPreviousPage"] is False

    forwards = await walk(client, token, AUDIT, "auditLog", backwards=False)
    backwards = await walk(client, token, AUDIT, "auditLog", backwards=True)

    assert [object_id for ids, _, _ in forwards for object_id in ids] == newest_first
    assert [object_id for ids, _, _ in reversed(backwards) for object_id in ids] == newest_first
    assert [(previous, following) for _, previous, following in forwards] == [
        (False, True),
        (True, True),
        (True, False),
    ]
    assert [(previous, following) for _, previous, following in backwards] == [
        (True, False),
        (True, True),
        (False, True),
    ]


async def test_after_and_before_together_bound_a_window(client, make_district):
    district = await make_district("riverside", active=6)
    token = district.manager_token
    edges = (await graphql_data(client, token, STUDENTS, {"first": 6}))["activeStudents"]["edges"]
    cursors = [edge["cursor"] for edge in edges]
    ids = [edge["node"]["id"] for edge in edges]

    window = (
        await graphql_data(client, token, STUDENTS, {"after": cursors[0], "before": cursors[5]})
    )["activeStudents"]
    from_the_end = (
        await graphql_data(
            client, token, STUDENTS, {"last": 2, "after": cursors[0], "before": cursors[5]}
        )
    )["activeStudents"]

    assert [node["id"] for node in window["nodes"]] == ids[1:5]
    assert (window["pageInfo"]["hasPreviousPage"], window["pageInfo"]["hasNextPage"]) == (
        True,
        False,  # as Relay's algorithm says for first/after: nothing more within the window
    )
    assert [node["id"] for node in from_the_end["nodes"]] == ids[3:5]
    assert from_the_end["pageInfo"]["hasPreviousPage"] is True
    assert from_the_end["pageInfo"]["hasNextPage"] is True  # the row at `before` is there


async def test_an_empty_page_has_no_cursors(client, make_district):
    district = await make_district("riverside", active=2)
    token = district.manager_token
    edges = (await graphql_data(client, token, STUDENTS, {"first": 2}))["activeStudents"]["edges"]

    page = (await graphql_data(client, token, STUDENTS, {"after": edges[-1]["cursor"]}))[
        "activeStudents"
    ]

    assert page["edges"] == page["nodes"] == []
    assert page["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": None,
        "endCursor": None,
    }


@pytest.mark.parametrize("field", ["activeStudents", "auditLog"])
@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 2, "last": 2}, "not both"),
        ({"last": 0}, "last must be between 1 and 100"),
        ({"last": 101}, "last must be between 1 and 100"),
        ({"first": -1}, "first must be between 1 and 100"),
        ({"before": "forged"}, "is not a cursor from"),
        ({"last": 2, "before": cursor_of("student:1:extra")}, "is not a cursor from"),
        ({"last": 2, "before": cursor_of("other:1")}, "is not a cursor from"),
        ({"before": cursor_of("audit:2147483648")}, "is not a cursor from"),
    ],
)
async def test_a_bad_page_request_is_refused_with_a_clear_error(
    client, make_district, field, variables, message
):
    district = await make_district("riverside", active=2)
    document = STUDENTS if field == "activeStudents" else AUDIT

    response = await graphql(client, district.manager_token, document, variables)

    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {field: None}  # the field is nullable: the rest of an answer survives
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_ARGUMENT"
    assert message in error["message"]


async def test_a_cursor_of_one_list_is_refused_by_the_other(client, make_district):
    district = await make_district("riverside", active=2)
    token = district.manager_token
    student = (await graphql_data(client, token, STUDENTS, {"first": 1}))["activeStudents"]

    response = await graphql(
        client, token, AUDIT, {"last": 1, "before": student["pageInfo"]["endCursor"]}
    )

    assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"


class Statements:
    """The SQL statements run on the service's database while in the block, by table."""

    def __init__(self, service: Any) -> None:
        self.engine = service.database.engine
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self.record)

    def record(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.seen.append(statement)

    def on(self, table: str) -> list[str]:
        return [statement for statement in self.seen if f"FROM {table}" in statement]


async def test_the_last_page_is_read_without_reading_the_rest(client, make_district, service):
    district = await make_district("riverside", active=60)

    with Statements(service) as statements:
        data = await graphql_data(
            client, district.manager_token, "{ activeStudents(last: 2) { nodes { sourceId } } }"
        )

    assert [node["sourceId"] for node in data["activeStudents"]["nodes"]] == [
        "riverside-000059",
        "riverside-000060",
    ]
    reads = statements.on("roster_record")
    assert reads  # the page itself, and no count: totalCount was not asked for
    assert all("LIMIT" in statement and "count(" not in statement for statement in reads)


async def test_nodes_reads_each_type_once_however_many_ids(client, make_district, service):
    district = await make_district("riverside", active=12)
    token = district.manager_token
    data = await graphql_data(
        client,
        token,
        "{ activeStudents(first: 10) { nodes { id } } auditLog(first: 2) { nodes { id } } }",
    )
    ids = [node["id"] for node in data["activeStudents"]["nodes"]] + [
        node["id"] for node in data["auditLog"]["nodes"]
    ]

    with Statements(service) as statements:
        nodes = (await graphql_data(client, token, NODES, {"ids": ids}))["nodes"]
        aliased = await graphql_data(
            client,
            token,
            "query($a: ID!, $b: ID!) { a: node(id: $a) { id } b: node(id: $b) { id } }",
            {"a": ids[0], "b": ids[1]},
        )

    assert [node["id"] for node in nodes] == ids
    assert (aliased["a"]["id"], aliased["b"]["id"]) == (ids[0], ids[1])
    assert len(statements.on("roster_record")) == 2  # one per request
    assert len(statements.on("audit_event")) == 1
