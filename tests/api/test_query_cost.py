"""What a query costs (extensions.cost.requested), and that a query costing more than the maximum
is refused before it runs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLObjectType,
    build_schema,
    get_introspection_query,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    parse,
)

from graph.cost import (
    CHEAP_ROWS_PER_POINT,
    DEFAULT_LIST_SIZE,
    INTROSPECTION_COST,
    LIST_SIZES,
    MUTATION_COST,
    QUERY_TOO_COSTLY,
    operation_cost,
)
from graph.schema import build_schema as build_licensing_schema
from graph.strawberry_compat import graphql_core_schema
from licensing.domain.rules import AlertKind
from licensing.storage.audit import MAX_AUDIT_PAGE
from licensing.storage.history import MAX_HISTORY_DAYS
from licensing.storage.student_report import MAX_PAGE_SIZE
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

REPOSITORY = Path(__file__).resolve().parents[2]

DASHBOARD = "{ license { display used total level } usage { activeStudents } alerts { kind } }"
AUDIT_PAGE = """
query Audit($first: Int! = 5) {
  auditLog(first: $first) { edges { cursor node { id action } } pageInfo { hasNextPage } }
}
"""


@pytest.fixture
async def token(make_district) -> str:
    district = await make_district(active=10)
    return district.manager_token


async def cost_of(client, token: str, query: str, variables: dict[str, Any] | None = None) -> int:
    response = await graphql(client, token, query, variables)
    assert response.status_code == 200, response.text
    return response.json()["extensions"]["cost"]["requested"]


def audit_page_cost(rows: int) -> int:
    """The connection and its pageInfo are one object each; audit entries are cheap rows, a node
    (an edge only wraps it) per CHEAP_ROWS_PER_POINT rows, rounded up."""
    return 1 + -(-rows // CHEAP_ROWS_PER_POINT) + 1


# --- Counting -----------------------------------------------------------------------------------


async def test_the_dashboard_costs_an_object_each_and_every_alert_it_could_return(client, token):
    cost = await cost_of(client, token, DASHBOARD)

    assert cost == 1 + 1 + len(AlertKind)


async def test_scalar_fields_cost_nothing(client, token):
    few = await cost_of(client, token, "{ license { display } }")
    many = await cost_of(
        client, token, "{ license { display used total remaining overage level status stale } }"
    )

    assert few == many == 1


async def test_a_connection_costs_by_the_rows_first_asks_for(client, token):
    five = await cost_of(client, token, AUDIT_PAGE, {"first": 5})
    twenty = await cost_of(client, token, AUDIT_PAGE, {"first": 20})

    assert five == audit_page_cost(5)
    assert twenty == audit_page_cost(20)


async def test_first_given_in_the_document_a_variable_or_its_default_costs_the_same(client, token):
    literal = await cost_of(
        client, token, "{ auditLog(first: 7) { edges { node { id } } pageInfo { hasNextPage } } }"
    )
    variable = await cost_of(client, token, AUDIT_PAGE, {"first": 7})
    variable_default = await cost_of(client, token, AUDIT_PAGE.replace("= 5", "= 7"))

    assert literal == variable == variable_default == audit_page_cost(7)


async def test_without_first_a_connection_costs_its_default_page(client, token):
    cost = await cost_of(client, token, "{ auditLog { edges { node { id } } } }")

    assert cost == 1 + 50 // CHEAP_ROWS_PER_POINT  # auditLog's `first` defaults to 50


async def test_last_costs_like_first(client, token):
    first = await cost_of(client, token, "{ activeStudents(first: 7) { edges { node { id } } } }")
    last = await cost_of(client, token, "{ activeStudents(last: 7) { edges { node { id } } } }")
    nodes = await cost_of(client, token, "{ activeStudents(last: 7) { nodes { id } } }")

    assert first == last == nodes == 1 + 7


async def test_nodes_costs_an_object_per_id_and_node_one(client, token):
    one = await cost_of(client, token, 'query { node(id: "x") { id } }')
    three = await cost_of(
        client, token, "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ["a", "b", "c"]}
    )

    assert (one, three) == (1, 3)


async def test_first_beyond_the_largest_page_costs_the_largest_page(client, token):
    response = await graphql(
        client, token, "{ activeStudents(first: 100000) { edges { node { id } } } }"
    )

    body = response.json()
    assert body["extensions"]["cost"]["requested"] == 1 + MAX_PAGE_SIZE
    assert body["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"  # refused as ever


async def test_usage_history_costs_a_point_per_ten_days_rounded_up(client, token):
    thirty = await cost_of(client, token, "{ usageHistory(days: 30) { day activeStudents } }")
    all_kept = await cost_of(
        client, token, f"{{ usageHistory(days: {MAX_HISTORY_DAYS}) {{ day activeStudents }} }}"
    )

    assert thirty == 30 // CHEAP_ROWS_PER_POINT
    assert all_kept == -(-MAX_HISTORY_DAYS // CHEAP_ROWS_PER_POINT)


async def test_resolved_alerts_cost_more_only_when_asked_for(client, token):
    current = await cost_of(client, token, "{ alerts { id } }")
    with_history = await cost_of(client, token, "{ alerts(includeResolved: true) { id } }")

    assert current == len(AlertKind)
    assert with_history > current


async def test_a_mutation_costs_more_than_a_read(client, token):
    cost = await cost_of(
        client,
        token,
        "mutation { setThreshold(studentsRemaining: 40) { licenseSettings { "
        "studentsRemainingThreshold } } }",
    )

    assert cost == MUTATION_COST + 1


async def test_fragments_cost_what_the_same_fields_written_inline_cost(client, token):
    inline = await cost_of(
        client,
        token,
        "{ auditLog(first: 9) { edges { node { id actor } } pageInfo { endCursor } } "
        "license { display } }",
    )
    with_fragments = await cost_of(
        client,
        token,
        """
        { auditLog(first: 9) { ...Page } ...License }
        fragment Page on AuditEventConnection { edges { node { ...Event } } pageInfo { endCursor } }
        fragment Event on AuditEvent { id actor }
        fragment License on Query { license { display } }
        """,
    )

    assert with_fragments == inline == audit_page_cost(9) + 1


async def test_a_fragment_spread_twice_is_counted_twice(client, token):
    once = await cost_of(
        client, token, "{ ...L } fragment L on Query { license { display } usage { staff } }"
    )
    twice = await cost_of(
        client,
        token,
        "{ ...L ... on Query { ...L } } fragment L on Query { license { display } usage { staff } }",
    )

    assert twice == 2 * once


async def test_the_introspection_query_of_graphiql_and_code_generators_is_cheap(client, token):
    cost = await cost_of(client, token, get_introspection_query())

    assert cost == INTROSPECTION_COST


def test_lists_inside_lists_multiply():
    schema = build_schema(
        """
        type Query { teams: [Team!]! }
        type Team { name: String! members: [Person!]! }
        type Person { name: String! nicknames: [String!]! }
        """
    )

    teams = operation_cost(schema, parse("{ teams { name } }"))
    members = operation_cost(schema, parse("{ teams { members { name nicknames } } }"))

    assert teams == DEFAULT_LIST_SIZE
    assert members == DEFAULT_LIST_SIZE * (1 + DEFAULT_LIST_SIZE)


def test_every_connection_and_list_on_the_query_is_sized_deliberately():
    """A new list field must say how many items it can return, or its cost is a guess."""
    schema = graphql_core_schema(build_licensing_schema())
    unsized = []
    for root in (schema.query_type, schema.subscription_type):
        assert isinstance(root, GraphQLObjectType)
        for name, field in root.fields.items():
            item = get_named_type(field.type)
            is_list = is_list_type(get_nullable_type(field.type))
            sized_by_argument = {"first", "days"} & set(field.args)
            if ((is_list and not is_leaf_type(item)) or sized_by_argument) and (
                f"{root.name}.{name}" not in LIST_SIZES
            ):
                unsized.append(f"{root.name}.{name}")

    assert unsized == []
    assert LIST_SIZES["Query.auditLog"].maximum == MAX_AUDIT_PAGE


# --- Refusing -----------------------------------------------------------------------------------


def doubling_fragments(levels: int) -> str:
    fragments = ["fragment F0 on Query { license { display } }"]
    fragments += [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, levels + 1)
    ]
    return f"{{ ...F{levels} }}\n" + "\n".join(fragments)


async def test_a_query_costing_more_than_the_maximum_is_refused_with_the_cost_and_the_remedy(
    client, token, settings
):
    maximum = settings.graphql.max_query_cost
    page = f"activeStudents(first: {MAX_PAGE_SIZE}) {{ edges {{ node {{ id }} }} }}"
    copies = maximum // (1 + MAX_PAGE_SIZE) + 1
    query = "{ " + " ".join(f"p{n}: {page}" for n in range(copies)) + " }"

    response = await graphql(client, token, query)

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == QUERY_TOO_COSTLY
    cost = copies * (1 + MAX_PAGE_SIZE)
    assert f"costs {cost} points" in error["message"]
    assert f"at most {maximum}" in error["message"]
    assert "`first`" in error["message"]
    assert body["extensions"]["cost"]["requested"] == cost


async def test_as_many_copies_as_fit_under_the_maximum_run(client, token, settings):
    maximum = settings.graphql.max_query_cost
    page = f"activeStudents(first: {MAX_PAGE_SIZE}) {{ edges {{ node {{ id }} }} }}"
    copies = maximum // (1 + MAX_PAGE_SIZE)
    query = "{ " + " ".join(f"p{n}: {page}" for n in range(copies)) + " }"

    data = await graphql_data(client, token, query)

    assert len(data) == copies
    assert all(len(page["edges"]) == 10 for page in data.values())


async def test_doubling_fragments_are_refused_as_too_costly_without_stalling(client, token):
    started = time.monotonic()

    response = await graphql(client, token, doubling_fragments(60))

    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == QUERY_TOO_COSTLY
    assert f"costs {2**60} points" in body["errors"][0]["message"]
    assert time.monotonic() - started < 2


async def test_a_mutation_costing_more_than_the_maximum_changes_nothing(
    service, make_district, client_factory
):
    district = await make_district(threshold=50)
    costly = """
    mutation { setThreshold(studentsRemaining: 70) {
      licenseSettings { studentsRemainingThreshold } license { display } errors { code } } }
    """
    # Costs 1 + 1 + 2 a row: within the lowered maximum below.
    read = (
        "{ licenseSettings { studentsRemainingThreshold } auditLog(first: 3) { edges { cursor } } }"
    )
    async with client_factory(service) as client:
        before = await graphql_data(client, district.manager_token, read)

    service.settings.graphql.max_query_cost = MUTATION_COST + 5
    async with client_factory(service) as client:
        response = await graphql(client, district.manager_token, costly)
        after = await graphql_data(client, district.manager_token, read)

    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == QUERY_TOO_COSTLY
    assert after == before  # the threshold is unchanged and the audit log has no new entry


async def test_a_cheaper_mutation_under_the_same_maximum_runs(
    service, make_district, client_factory
):
    district = await make_district(threshold=50)
    service.settings.graphql.max_query_cost = MUTATION_COST + 5
    cheap = """
    mutation { setThreshold(studentsRemaining: 70) { licenseSettings { studentsRemainingThreshold } } }
    """

    async with client_factory(service) as client:
        data = await graphql_data(client, district.manager_token, cheap)

    assert data["setThreshold"]["licenseSettings"]["studentsRemainingThreshold"] == 70


async def test_the_worked_example_in_the_docs_costs_what_the_docs_say(client, token):
    documentation = (REPOSITORY / "docs" / "limits.md").read_text(encoding="utf-8")
    example = documentation.split("```graphql\n", 1)[1].split("```", 1)[0]
    stated = re.search(r"= \*\*(\d+)\*\* points", documentation)
    assert stated is not None

    cost = await cost_of(client, token, example, {"after": None})

    assert cost == int(stated.group(1))


async def test_the_largest_audit_page_and_all_usage_history_fit_in_one_query(
    client, token, settings
):
    """Cheap rows are charged a fraction of a point each, so the biggest page of each is one
    query's worth with room to spare (and not ten queries' worth of points, as a row each was)."""
    audit = await cost_of(client, token, AUDIT_PAGE, {"first": MAX_AUDIT_PAGE})
    history = await cost_of(
        client, token, f"{{ usageHistory(days: {MAX_HISTORY_DAYS}) {{ day activeStudents }} }}"
    )

    assert audit < MAX_AUDIT_PAGE and history < MAX_HISTORY_DAYS
    assert audit + history <= settings.graphql.max_query_cost
