"""The worker's change hub (licensing/orchestration/change_hub.py): followers with a due time
(a subscription whose token expires) are woken once it has come, by the service's clock, and not
before: while nothing changes and nothing is due, no follower runs."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from licensing.storage.changes import LICENSE_TOPICS

pytestmark = pytest.mark.anyio

INTERVAL = 0.02
# Many intervals: a follower woken at each interval, or every other one, would have woken here.
QUIET_SECONDS = 20 * INTERVAL


async def test_a_follower_is_woken_once_its_due_time_has_come_and_not_before(
    service, make_district, clock
):
    district = await make_district(seats=100, active=40)
    service.settings.live_poll_seconds = INTERVAL
    hub = service.change_hub
    soon, later = clock() + timedelta(minutes=10), clock() + timedelta(minutes=20)
    woken: dict[str, list[object]] = {"soon": [], "later": [], "never": []}

    async def follow(name: str, due_at) -> None:
        async with hub.follow(district.id, LICENSE_TOPICS, due_at=due_at) as follower:
            while True:
                woken[name].append(await follower.next_change())

    async with anyio.create_task_group() as followers:
        followers.start_soon(follow, "soon", soon)
        followers.start_soon(follow, "later", later)
        followers.start_soon(follow, "never", None)
        await anyio.sleep(QUIET_SECONDS)
        assert woken == {"soon": [], "later": [], "never": []}

        clock.set(soon)
        with anyio.fail_after(5):
            while not woken["soon"]:
                await anyio.sleep(INTERVAL)
        await anyio.sleep(QUIET_SECONDS)
        # Once, without a change; the others still wait.
        assert woken == {"soon": [None], "later": [], "never": []}

        clock.set(later + timedelta(seconds=1))
        with anyio.fail_after(5):
            while not woken["later"]:
                await anyio.sleep(INTERVAL)
        await anyio.sleep(QUIET_SECONDS)
        assert woken == {"soon": [None], "later": [None], "never": []}
        followers.cancel_scope.cancel()


async def test_followers_that_left_before_their_due_time_are_not_woken_and_not_kept(
    service, make_district, clock
):
    """Subscriptions open and close long before their tokens expire; their due times must not
    pile up in the worker, nor wake anything when they come."""
    district = await make_district(seats=100, active=40)
    service.settings.live_poll_seconds = INTERVAL
    hub = service.change_hub
    due_at = clock() + timedelta(minutes=10)
    woken: list[object] = []

    async def stay(*, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        async with hub.follow(district.id, LICENSE_TOPICS, due_at=due_at + timedelta(days=1)) as f:
            task_status.started()
            woken.append(await f.next_change())

    async with anyio.create_task_group() as group:
        await group.start(stay)  # keeps the hub running meanwhile
        for _ in range(500):
            async with hub.follow(district.id, LICENSE_TOPICS, due_at=due_at):
                pass
        assert hub.followers == 1
        assert hub.pending_due_times() <= 2 * hub.followers + 16
        clock.set(due_at)
        await anyio.sleep(QUIET_SECONDS)
        assert woken == []
        group.cancel_scope.cancel()
