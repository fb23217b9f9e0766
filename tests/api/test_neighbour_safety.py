"""One token cannot slow another district: documents are bounded before they are validated, and
charged for what reading them costs; costly fields are charged by the work they do; subscriptions
are capped and charged for the time they are held; and the budget is shared by every worker."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Iterator

import anyio
import pytest
import strawberry.schema.schema

import graph.limits
import licensing.orchestration.service
from app.runtime import build_service
from graph.cost import CHEAP_ROWS_PER_POINT, STUDENTS_PER_POINT, refused_document_cost
from graph.rate_limit import ALLOWANCE_FRACTION, COSTLY_OPERATION_RUNNING, RATE_LIMITED
from licensing.orchestration.service import LicensingService
from licensing.storage.history import MAX_HISTORY_DAYS
from tests.api.test_subscriptions import LICENSE_CHANGED, served, subscriber
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

DASHBOARD = "{ license { display } usage { activeStudents } alerts { kind } }"
# The most days of usageHistory, ten times over: a costly query (within the maximum per query),
# to spend a budget in few requests.
HISTORY_COPIES = 10
HISTORY = (
    "{ "
    + " ".join(
        f"h{copy}: usageHistory(days: {MAX_HISTORY_DAYS}) {{ day }}"
        for copy in range(HISTORY_COPIES)
    )
    + " }"
)
HISTORY_COST = HISTORY_COPIES * -(-MAX_HISTORY_DAYS // CHEAP_ROWS_PER_POINT)
LICENSE_FIELDS = ("display", "used", "total", "remaining", "level", "status", "stale")


def varied_license_selections(copies: int) -> str:
    """``license { ... }`` ``copies`` times, each with different subfields: nothing to merge
    for free, every pair to compare."""
    subsets = itertools.cycle(itertools.combinations(LICENSE_FIELDS, 3))
    return " ".join(f"license {{ {' '.join(next(subsets))} }}" for _ in range(copies))


async def remaining_after(client, token: str, query: str = "{ license { display } }") -> int:
    response = await graphql(client, token, query)
    assert response.status_code == 200, response.text
    return response.json()["extensions"]["cost"]["remaining"]


@pytest.fixture
async def districts(make_district):
    flooding = await make_district("flooding", active=10)
    neighbour = await make_district("neighbour", active=10)
    return flooding, neighbour


# --- Documents: bounded before validation, charged by size ---------------------------------------


async def test_a_document_over_the_token_limit_is_refused_and_charged_by_its_size(
    client, districts, settings
):
    flooding, _ = districts
    query = "{" + " __typename" * 2_001 + " }"

    response = await graphql(client, flooding.viewer_token, query)

    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    charged = refused_document_cost(query)
    assert charged > 100  # not the 1 point a small mistake costs
    assert body["extensions"]["cost"]["remaining"] == settings.rate_limit.bucket_size - charged


async def test_many_differing_repeats_are_refused_before_validation_and_charged_by_size(
    client, districts, settings
):
    flooding, _ = districts
    # An unknown field too: validation would report it, so its absence shows it never ran.
    query = "{ " + varied_license_selections(200) + " noSuchField }"

    response = await graphql(client, flooding.viewer_token, query)

    body = response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert f"at most {settings.graphql.max_field_merges}" in error["message"]
    assert body["extensions"]["cost"]["remaining"] == (
        settings.rate_limit.bucket_size - refused_document_cost(query)
    )


async def test_a_large_document_the_budget_cannot_pay_for_is_refused_unread(
    client, districts, settings, monkeypatch
):
    """Repeated fields, whitespace varied so no cache helps: once the budget cannot pay for
    reading one, the next is refused without being parsed, and the neighbour is unaffected."""
    flooding, neighbour = districts
    parsed: list[int] = []
    real_parse = graph.limits.parse

    def counted_parse(source, *args, **kwargs):
        parsed.append(len(source))
        return real_parse(source, *args, **kwargs)

    monkeypatch.setattr(graph.limits, "parse", counted_parse)

    def repeated(number: int) -> str:
        return "{" + " license { display }" * 440 + " " * (number + 1) + "}"

    size = refused_document_cost(repeated(0))
    remaining = settings.rate_limit.bucket_size
    for number in range(settings.rate_limit.bucket_size):
        if remaining < size:
            break
        response = await graphql(client, flooding.viewer_token, repeated(number))
        remaining = response.json()["extensions"]["cost"]["remaining"]
    read_before = len(parsed)

    refused = await graphql(client, flooding.viewer_token, repeated(-1))

    assert refused.status_code == 429
    assert [error["extensions"]["code"] for error in refused.json()["errors"]] == [RATE_LIMITED]
    assert refused.json()["extensions"]["cost"]["requested"] == size
    assert len(parsed) == read_before  # refused unread
    assert "errors" not in (await graphql(client, neighbour.viewer_token, DASHBOARD)).json()


async def test_identical_repeats_are_merged_and_answered_as_graphql_would(client, districts):
    flooding, _ = districts
    typenames = "{" + " __typename" * 1_990 + " }"
    licenses = "{" + " license { display }" * 440 + " }"

    assert await graphql_data(client, flooding.viewer_token, typenames) == {"__typename": "Query"}
    assert await graphql_data(client, flooding.viewer_token, licenses) == {
        "license": {"display": "10 / 1000"}
    }


async def test_a_few_differing_repeats_still_run(client, districts):
    flooding, _ = districts
    query = "{ " + varied_license_selections(6) + " }"

    data = await graphql_data(client, flooding.viewer_token, query)

    asked = set().union(*itertools.islice(itertools.combinations(LICENSE_FIELDS, 3), 6))
    assert set(data["license"]) == asked


async def test_a_large_document_is_validated_off_the_event_loop(client, districts, monkeypatch):
    """While a large document is being validated, another district's dashboard is answered:
    the validation waits until the neighbour's answer has come, which can only happen if the
    event loop is free while it runs."""
    flooding, neighbour = districts
    large = "{ " + varied_license_selections(20) + " " + " " * 3_000 + "}"
    validating, neighbour_answered = threading.Event(), threading.Event()
    real_validate = strawberry.schema.schema.validate
    waited: list[bool] = []

    def gated_validate(schema, document, *args, **kwargs):
        if len(document.definitions[0].selection_set.selections) >= 20:
            validating.set()
            waited.append(neighbour_answered.wait(timeout=10))
        return real_validate(schema, document, *args, **kwargs)

    monkeypatch.setattr(strawberry.schema.schema, "validate", gated_validate)
    answers = {}

    async def flood() -> None:
        answers["flood"] = await graphql(client, flooding.viewer_token, large)

    async def dashboard() -> None:
        await anyio.to_thread.run_sync(validating.wait, 10)
        answers["neighbour"] = await graphql(client, neighbour.viewer_token, DASHBOARD)
        neighbour_answered.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(flood)
            tasks.start_soon(dashboard)

    assert waited == [True]  # the neighbour was answered during the validation
    assert answers["neighbour"].status_code == 200
    assert "errors" not in answers["neighbour"].json()
    assert "errors" not in answers["flood"].json(), answers["flood"].json()


# --- Costly fields: charged by the work they do -------------------------------------------------


async def test_count_review_costs_more_in_a_larger_district(client, make_district):
    small = await make_district("small", active=10)
    large = await make_district("large", active=10 + 50 * STUDENTS_PER_POINT)
    query = "{ countReview { reason students } }"

    small_cost = (await graphql(client, small.manager_token, query)).json()["extensions"]["cost"]
    large_cost = (await graphql(client, large.manager_token, query)).json()["extensions"]["cost"]

    assert large_cost["requested"] - small_cost["requested"] == 50


async def test_one_count_review_runs_at_a_time_per_token_and_the_neighbour_is_answered(
    client, districts, monkeypatch
):
    """While a token's countReview runs, its second one is refused with a code, and another district's dashboard is answered."""
    flooding, neighbour = districts
    running, release = threading.Event(), threading.Event()
    real_count_review = licensing.orchestration.service.count_review

    def held_count_review(*args, **kwargs):
        running.set()
        release.wait(timeout=10)
        return real_count_review(*args, **kwargs)

    monkeypatch.setattr(licensing.orchestration.service, "count_review", held_count_review)
    query = "{ countReview { reason } }"
    answers = {}

    async def first() -> None:
        answers["first"] = await graphql(client, flooding.manager_token, query)

    async def meanwhile() -> None:
        await anyio.to_thread.run_sync(running.wait, 10)
        answers["second"] = await graphql(client, flooding.manager_token, query)
        answers["neighbour"] = await graphql(client, neighbour.viewer_token, DASHBOARD)
        release.set()

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first)
            tasks.start_soon(meanwhile)

    second = answers["second"]
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    assert [error["extensions"]["code"] for error in second.json()["errors"]] == [
        COSTLY_OPERATION_RUNNING
    ]
    assert "errors" not in answers["neighbour"].json()
    assert "errors" not in answers["first"].json()
    # Once it has been answered, the token may run another.
    assert "errors" not in (await graphql(client, flooding.manager_token, query)).json()


# --- Subscriptions: capped per token, charged for the time held ---------------------------------


async def test_subscriptions_are_capped_per_token(service, districts):
    flooding, neighbour = districts
    service.settings.rate_limit.max_subscriptions_per_token = 2

    with served(service) as url:
        async with subscriber(url, flooding.viewer_token) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            for operation in ("1", "2"):
                await ws.subscribe(LICENSE_CHANGED, operation)
                assert (await ws.next_data(operation))["licenseChanged"]
            await ws.subscribe(LICENSE_CHANGED, "3")
            refused = await ws.receive()

            async with subscriber(url, neighbour.viewer_token) as other:
                assert (await other.init())["type"] == "connection_ack"
                await other.subscribe(LICENSE_CHANGED)
                assert (await other.next_data())["licenseChanged"]

    assert refused["id"] == "3"
    assert refused["type"] in ("error", "next")
    errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_a_held_subscription_draws_points_until_the_budget_is_spent(
    service, districts, clock
):
    flooding, _ = districts
    limits = service.settings.rate_limit
    limits.restore_rate = 0.01  # the clock moves by hours below: refills must not hide charges
    per_minute = limits.subscription_points_per_minute
    minutes_to_spend = limits.bucket_size // per_minute + 1

    with served(service) as url:
        async with subscriber(url, flooding.viewer_token) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe(LICENSE_CHANGED)
            assert (await ws.next_data())["licenseChanged"]

            clock.advance(minutes=minutes_to_spend)
            ended = await ws.receive()

    assert ended["type"] in ("error", "next")
    errors = ended["payload"] if ended["type"] == "error" else ended["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == RATE_LIMITED


# --- The budget: shared by every worker and host ------------------------------------------------


@pytest.fixture
def second_instance(settings, clock) -> Iterator[LicensingService]:
    """Another service on the same database: another worker process, or another host."""
    other = build_service(settings, clock=clock)
    yield other
    other.database.dispose()


async def test_two_instances_on_one_database_share_each_tokens_budget(
    client, client_factory, second_instance, districts, settings
):
    flooding, _ = districts

    first = await remaining_after(client, flooding.viewer_token, HISTORY)
    async with client_factory(second_instance) as other_client:
        second = await remaining_after(other_client, flooding.viewer_token, HISTORY)

    size = settings.rate_limit.bucket_size
    assert first == size - HISTORY_COST
    # The second sees the first's draw, and the allowance the first took with it
    # (graph/rate_limit.py, SharedTokenBudgets): points only the first worker can spend now.
    allowance = math.floor(size * ALLOWANCE_FRACTION)
    assert second == size - 2 * HISTORY_COST - allowance


async def test_a_budget_spent_on_one_instance_is_refused_on_the_other(
    client, client_factory, second_instance, districts, settings
):
    flooding, neighbour = districts
    for _ in range(settings.rate_limit.bucket_size // HISTORY_COST):
        await remaining_after(client, flooding.viewer_token, HISTORY)

    async with client_factory(second_instance) as other_client:
        refused = await graphql(other_client, flooding.viewer_token, HISTORY)
        neighbours = await graphql(other_client, neighbour.viewer_token, HISTORY)

    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == RATE_LIMITED
    assert neighbours.status_code == 200


async def test_refused_documents_are_charged_in_full_even_past_an_empty_bucket(
    client, districts, settings
):
    flooding, _ = districts
    query = "{" + " __typename" * 2_001 + " }"
    charged = refused_document_cost(query)
    refused_for_size = 0
    for _ in range(2 * settings.rate_limit.bucket_size // charged):
        response = await graphql(client, flooding.viewer_token, query)
        if response.status_code == 429:
            break
        refused_for_size += 1

    # The document the budget could not pay for was refused unread, and charged all the same.
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == [RATE_LIMITED]
    owed = (refused_for_size + 1) * charged - settings.rate_limit.bucket_size
    assert owed > 0  # the last document was charged in full, past the empty bucket
    retry_after = int(response.headers["Retry-After"])
    assert retry_after == math.ceil((charged + owed) / settings.rate_limit.restore_rate)
