"""Each API token's budget: drawn by every request, shown in extensions, refused with 429 and
Retry-After once spent, restored as time passes."""

from __future__ import annotations

import json
import math
import threading

import anyio
import pytest
from sqlmodel import select
from websockets.asyncio.client import connect

from app.factory import create_app
from app.report_export import REPORT_DOWNLOAD_COST, REPORT_PATH
from db.models import ApiToken, TokenBudget
from graph.cost import CHEAP_ROWS_PER_POINT
from graph.rate_limit import (
    ALLOWANCE_FRACTION,
    RATE_LIMITED,
    SharedTokenBudgets,
    TokenBudgets,
    token_budgets,
)
from licensing.storage.history import MAX_HISTORY_DAYS
from licensing.storage.tokens import hash_token
from tests.fakes.serve import serve
from tests.utils.databases import skip_unless_postgres
from tests.utils.graphql import graphql

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
TAB = {"X-Requested-With": "licensing-tab"}


@pytest.fixture
async def district(make_district):
    return await make_district(active=10, threshold=50)


async def budget_after(client, token: str | None, query: str = DASHBOARD) -> dict:
    """The request's extensions.cost, failing on anything but a 200 answer."""
    response = await graphql(client, token, query)
    assert response.status_code == 200, response.text
    return response.json()["extensions"]["cost"]


async def spend_all(client, token: str, settings) -> None:
    """Send the costliest query until the next one cannot be paid."""
    for _ in range(settings.rate_limit.bucket_size // HISTORY_COST):
        await budget_after(client, token, HISTORY)


async def spend_down_to(client, token: str, settings, points: int) -> None:
    """Spend the budget until exactly ``points`` are left (a page of n students costs 1 + n)."""
    await spend_all(client, token, settings)
    left = await budget_after(client, token, "{ license { display } }")
    assert left["remaining"] >= points
    while left["remaining"] > points:
        rows = min(left["remaining"] - points, 101) - 1
        page = f"{{ activeStudents(first: {rows}) {{ edges {{ node {{ sourceId }} }} }} }}"
        left = await budget_after(client, token, page if rows else "{ license { display } }")
    assert left["remaining"] == points


def assert_rate_limited(response) -> int:
    """A 429 with a readable JSON error and a whole number of seconds to wait; that number."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == RATE_LIMITED
    assert error["extensions"]["retryAfterSeconds"] == retry_after
    assert "Retry after" in error["message"] and "points" in error["message"]
    return retry_after


# --- The budget in every answer -----------------------------------------------------------------


async def test_every_answer_shows_the_cost_and_what_is_left(client, district, settings):
    first = await budget_after(client, district.viewer_token)
    second = await budget_after(client, district.viewer_token)

    size = settings.rate_limit.bucket_size
    assert first["remaining"] == size - first["requested"]
    assert second["remaining"] == size - 2 * first["requested"]
    assert first["maximum"] == settings.graphql.max_query_cost
    assert first["bucketSize"] == size
    assert first["restoreRate"] == settings.rate_limit.restore_rate


async def test_ratelimit_headers_say_the_same(client, district, settings):
    response = await graphql(client, district.viewer_token, DASHBOARD)

    remaining = response.json()["extensions"]["cost"]["remaining"]
    size = settings.rate_limit.bucket_size
    assert f'"token-budget";r={remaining};' in response.headers["RateLimit"]
    assert f";q={size};" in response.headers["RateLimit-Policy"]
    assert "Retry-After" not in response.headers


async def test_a_request_with_a_mistake_still_costs_one_point(client, district, settings):
    response = await graphql(client, district.viewer_token, "{ license { noSuchField } }")

    assert response.status_code == 200
    assert response.json()["errors"][0]["message"].startswith("Cannot query field")
    assert response.json()["extensions"]["cost"]["remaining"] == (
        settings.rate_limit.bucket_size - 1
    )


# --- Spent --------------------------------------------------------------------------------------


async def test_a_spent_budget_is_refused_with_429_and_retry_after(
    client, district, settings, clock
):
    await spend_all(client, district.viewer_token, settings)
    left = await budget_after(client, district.viewer_token, "{ license { display } }")

    response = await graphql(client, district.viewer_token, HISTORY)

    retry_after = assert_rate_limited(response)
    restore_rate = settings.rate_limit.restore_rate
    assert retry_after == math.ceil((HISTORY_COST - left["remaining"]) / restore_rate)
    assert response.json()["data"] is None
    assert response.json()["extensions"]["cost"]["remaining"] == left["remaining"]


async def test_waiting_retry_after_is_enough_and_waiting_less_is_not(
    client, district, settings, clock
):
    await spend_all(client, district.viewer_token, settings)
    retry_after = assert_rate_limited(await graphql(client, district.viewer_token, HISTORY))

    clock.advance(seconds=retry_after - 1)
    assert_rate_limited(await graphql(client, district.viewer_token, HISTORY))
    clock.advance(seconds=1)
    response = await graphql(client, district.viewer_token, HISTORY)

    assert response.status_code == 200, response.text


async def test_the_budget_refills_at_the_restore_rate_up_to_the_bucket_size(
    client, district, settings, clock
):
    spent = await budget_after(client, district.viewer_token, HISTORY)

    clock.advance(seconds=2)
    two_seconds_later = await budget_after(client, district.viewer_token, "{ license { display } }")
    clock.advance(hours=1)
    an_hour_later = await budget_after(client, district.viewer_token, "{ license { display } }")

    restored = math.floor(2 * settings.rate_limit.restore_rate)
    assert two_seconds_later["remaining"] == spent["remaining"] + restored - 1
    assert an_hour_later["remaining"] == settings.rate_limit.bucket_size - 1


async def test_a_refused_mutation_does_not_run(client, district, settings, clock):
    # One point left: the mutation costs more.
    await spend_down_to(client, district.manager_token, settings, 1)
    mutation = "mutation { setThreshold(studentsRemaining: 80) { errors { code } } }"

    response = await graphql(client, district.manager_token, mutation)

    assert_rate_limited(response)
    clock.advance(hours=1)
    after = await graphql(
        client, district.manager_token, "{ licenseSettings { studentsRemainingThreshold } }"
    )
    assert after.json()["data"]["licenseSettings"]["studentsRemainingThreshold"] == 50


async def test_an_empty_budget_is_refused_before_the_request_is_even_read(
    client, district, settings
):
    await spend_down_to(client, district.viewer_token, settings, 0)

    response = await client.post(
        "/graphql",
        content=b"this is not JSON",
        headers={"Authorization": f"Bearer {district.viewer_token}"},
    )

    assert_rate_limited(response)


# --- Whose budget -------------------------------------------------------------------------------


async def test_each_token_has_its_own_budget(client, district, settings):
    await spend_all(client, district.viewer_token, settings)
    assert_rate_limited(await graphql(client, district.viewer_token, HISTORY))

    other = await budget_after(client, district.manager_token, HISTORY)

    assert other["remaining"] == settings.rate_limit.bucket_size - HISTORY_COST


async def test_the_tab_session_and_the_report_download_draw_from_the_tokens_budget(
    client, district, settings
):
    signed_in = await client.post("/session", json={"token": district.manager_token}, headers=TAB)
    assert signed_in.status_code == 200, signed_in.text

    by_cookie = await client.post("/graphql", json={"query": DASHBOARD}, headers=TAB)
    download = await client.get(REPORT_PATH)
    client.cookies.clear()
    by_bearer = await budget_after(client, district.manager_token)

    assert by_cookie.status_code == 200 and download.status_code == 200
    cost = by_cookie.json()["extensions"]["cost"]["requested"]
    assert by_bearer["remaining"] == (
        settings.rate_limit.bucket_size - cost - REPORT_DOWNLOAD_COST - cost
    )


async def test_a_spent_budget_refuses_the_report_download_too(client, district, settings):
    await spend_down_to(client, district.manager_token, settings, REPORT_DOWNLOAD_COST - 1)

    response = await client.get(
        REPORT_PATH, headers={"Authorization": f"Bearer {district.manager_token}"}
    )

    assert_rate_limited(response)
    assert "text/csv" not in response.headers["content-type"]


# --- Settings -----------------------------------------------------------------------------------


async def test_turned_off_nothing_is_refused_and_no_budget_is_shown(
    service, district, client_factory, settings
):
    service.settings.rate_limit.enabled = False

    async with client_factory(service) as client:
        for _ in range(3 * settings.rate_limit.bucket_size // HISTORY_COST):
            cost = await budget_after(client, district.viewer_token, HISTORY)
        response = await graphql(client, district.viewer_token, HISTORY)

    assert response.status_code == 200
    assert cost == {"requested": HISTORY_COST, "maximum": settings.graphql.max_query_cost}
    assert "RateLimit" not in response.headers


def test_concurrent_draws_never_spend_more_than_the_bucket_holds():
    """Resolvers may run in worker threads: every point is paid once, whatever the interleaving."""
    budgets = TokenBudgets(bucket_size=1000, restore_rate=1, clock=lambda: 0.0)
    allowed = []

    def draw_many() -> None:
        allowed.extend(budgets.draw(7, 3).allowed for _ in range(200))

    threads = [threading.Thread(target=draw_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert allowed.count(True) == 1000 // 3
    assert budgets.draw(7, 0).remaining == 1000 % 3


async def test_operations_over_a_websocket_draw_from_the_same_budget(
    service, client, district, settings
):
    await spend_down_to(client, district.viewer_token, settings, 0)
    init = {
        "type": "connection_init",
        "payload": {"Authorization": f"Bearer {district.viewer_token}"},
    }
    subscribe = {
        "id": "1",
        "type": "subscribe",
        "payload": {"query": "subscription { licenseChanged { display } }"},
    }

    with serve(create_app(service), websockets=True) as base_url:
        url = base_url.replace("http://", "ws://") + "/graphql"
        async with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=5) as socket:
            await socket.send(json.dumps(init))
            acknowledged = json.loads(await socket.recv())
            await socket.send(json.dumps(subscribe))
            with anyio.fail_after(5):
                refused = json.loads(await socket.recv())

    assert acknowledged["type"] == "connection_ack"
    assert refused["payload"]["data"] is None  # nothing was sent of the license
    assert refused["payload"]["errors"][0]["extensions"]["code"] == RATE_LIMITED


# --- Shared by workers: an allowance taken ahead ----------------------------------------------


def stored_level(service, secret: str) -> float:
    """The token's bucket as the database holds it, shared by every worker."""
    with service.database.read() as session:
        return session.get(TokenBudget, token_id_of(service, secret)).level


async def test_a_worker_pays_most_requests_from_an_allowance_the_answers_count_exactly(
    client, district, settings, service
):
    size = settings.rate_limit.bucket_size
    allowance = math.floor(size * ALLOWANCE_FRACTION)
    first = await budget_after(client, district.viewer_token)
    cost = first["requested"]
    taken_with_the_first = stored_level(service, district.viewer_token)

    answers = [await budget_after(client, district.viewer_token) for _ in range(allowance // cost)]
    after_the_allowance = stored_level(service, district.viewer_token)
    one_more = await budget_after(client, district.viewer_token)

    # The first draw took the allowance with its cost; the next requests left the database alone
    # until the allowance was spent, then one draw took the next.
    assert taken_with_the_first == size - cost - allowance
    assert after_the_allowance == taken_with_the_first
    assert stored_level(service, district.viewer_token) < after_the_allowance
    # Every answer counted the allowance as the token's own: down by the cost, each time.
    remaining = [first["remaining"], *(answer["remaining"] for answer in answers)]
    remaining.append(one_more["remaining"])
    assert remaining == [size - cost * number for number in range(1, len(remaining) + 1)]


async def test_concurrent_draws_on_the_shared_budget_never_spend_more_than_it_holds(
    service, district
):
    """On PostgreSQL draws run in worker threads: whatever the interleaving of allowances taken,
    spent and given back, no point is paid twice."""
    skip_unless_postgres()
    budgets = SharedTokenBudgets(
        service.database, bucket_size=1000, restore_rate=1, clock=lambda: 0.0
    )
    token_id = token_id_of(service, district.viewer_token)
    allowed: list[bool] = []

    def draw_many() -> None:
        allowed.extend(budgets.draw(token_id, 3).allowed for _ in range(60))

    threads = [threading.Thread(target=draw_many) for _ in range(8)]

    def run_all() -> None:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    await anyio.to_thread.run_sync(run_all)

    # Each refusal gives back the allowance it took: a few points may wait there, never more
    # than one cost per thread.
    assert 1000 // 3 - len(threads) <= allowed.count(True) <= 1000 // 3
    assert stored_level(service, district.viewer_token) >= 0


# --- Subscriptions' time, drawn in batches ---------------------------------------------------------


@pytest.mark.parametrize("store", ["memory", "database"])
@pytest.mark.parametrize("points_per_second", [80, 110])  # below, then above the refill
async def test_time_held_drawn_late_takes_what_draws_on_time_would(
    service, district, clock, settings, store, points_per_second
):
    """Subscriptions' points accrue while they are held and are drawn in batches: a batch drawn
    late (a busy database) leaves the budget where batches drawn on time would have, so a token
    whose subscriptions cost less than its refill is never found spent."""
    limits = settings.rate_limit
    if store == "memory":
        budgets = TokenBudgets(
            bucket_size=limits.bucket_size,
            restore_rate=limits.restore_rate,
            clock=lambda: clock().timestamp(),
        )
    else:
        budgets = token_budgets(service)
    timely, late = (
        token_id_of(service, token) for token in (district.viewer_token, district.manager_token)
    )
    for token_id in (timely, late):
        budgets.spend(token_id, 1)  # both start full, now

    for _ in range(10):
        clock.advance(seconds=30)
        on_time = budgets.spend_held(timely, 30 * points_per_second, over_seconds=30)
    drawn_late = budgets.spend_held(late, 300 * points_per_second, over_seconds=300)

    assert drawn_late.remaining == on_time.remaining
    # As if drawn point by point: full while the refill outpaces them, else going down.
    held = 300 * (limits.restore_rate - points_per_second)
    assert drawn_late.remaining == math.floor(
        min(limits.bucket_size, limits.bucket_size - 1 + held)
    )


def token_id_of(service, secret: str) -> int:
    with service.database.read() as session:
        return session.exec(
            select(ApiToken.id).where(ApiToken.token_hash == hash_token(secret))
        ).one()
