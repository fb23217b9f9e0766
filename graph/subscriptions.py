"""Live updates: subscriptions that follow the district's change log.

Each subscription sends the current state first, then waits for its worker's one reader of the
change log (licensing/orchestration/change_hub.py; the log is in the database, so changes made
by any worker or host count) to see its district change, and sends the new state; every change
within one interval (``live_poll_seconds``) arrives as one update, and an update that would
repeat the last one is not sent. The district is always the caller's. The state after a change,
and the check that the caller is still signed in, are read once for all of the district's
subscriptions on the worker; while nothing changes a subscription does nothing at all.

Each subscription counts against its token's cap while it is open and draws points from the
token's budget for the time it is held (graph/rate_limit.py ``SubscriptionMeter``, charged for
all of the token's subscriptions at once); once the budget is spent it ends with
``RATE_LIMITED``. It ends as it would on revocation, with ``TOKEN_EXPIRED``, within an interval
of its token's expiry, change or no change.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection
from contextlib import aclosing
from datetime import datetime
from functools import partial
from typing import TypeVar

import strawberry
from strawberry.types import Info

from graph.auth import token_expired_message
from graph.errors import ClientError
from graph.fanout import DirectUpdates, shared_value
from graph.permissions import CanViewLicense
from graph.rate_limit import SubscriptionMeter
from graph.types import Alert, License
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import DistrictState, LicensingService
from licensing.problems import Problem
from licensing.storage.alert_state import AlertRecord
from licensing.storage.changes import ALERT_TOPICS, LICENSE_TOPICS
from licensing.storage.dashboard_sessions import LiveSignIns
from licensing.storage.tokens import Principal, hash_token

TOKEN_REVOKED = Problem(
    ErrorCode.UNAUTHENTICATED, "The API token has been revoked; sign in again with a valid token."
)
_Value = TypeVar("_Value")


def signed_out(principal: Principal, now: datetime) -> Problem:
    """Why a connection's token no longer signs in: it expired, or else it was revoked."""
    if principal.expires_at is not None and principal.expired(now):
        return Problem(ErrorCode.TOKEN_EXPIRED, token_expired_message(principal.expires_at))
    return TOKEN_REVOKED


class _ChangeFollower:
    """The caller's district's state, again each time the change log moves on ``topics``."""

    def __init__(self, info: Info, topics: Collection[str]) -> None:
        self.service: LicensingService = info.context.service
        self.principal: Principal = info.context.principal
        self.district_id: int = self.principal.district_id
        self.topics = topics
        self.token_id: int = self.principal.token_id
        session_id = getattr(info.context, "session_id", None)
        self.session_hash = hash_token(session_id) if session_id is not None else None
        self.meter = SubscriptionMeter(self.service, self.token_id)

    def _still_signed_in(self, live: LiveSignIns) -> bool:
        """Whether the connection's tab session, or else its token, can still sign in."""
        if self.session_hash is not None:
            return live.has_session(self.session_hash)
        return live.has_token(self.token_id)

    async def values(
        self, value_of: Callable[[DistrictState], _Value | None]
    ) -> AsyncGenerator[_Value, None]:
        """What ``value_of`` makes of the state: first as it is now (strawberry sends it), then
        after each change when it differs from the last, sent straight to the websocket
        (graph/fanout.py) or, when it cannot be, yielded. Every subscription of the district
        gets the same state object after a change, so the value, its answer and the answer's
        JSON are made once for all of them."""
        direct = DirectUpdates()
        hub = self.service.change_hub
        # A token that expires is due then: the hub wakes the subscription at the first read
        # after it, change or no change (it keeps one heap of such times for all of them).
        following = hub.follow(self.district_id, self.topics, due_at=self.principal.expires_at)
        async with self.meter, following as changes:
            self.meter.on_spent = changes.interrupt
            # Followed before the state is read, so a change committed in between is sent
            # again rather than missed.
            last = value_of(await self.service.district_state(self.district_id))
            if last is not None:
                yield last
            while True:
                change = await changes.next_change()
                self.meter.check()  # ends it once its token's budget is spent
                # Nothing is written when a token expires: the clock is asked at every wake.
                now = self.service.clock()
                if self.principal.expired(now):
                    raise ClientError(signed_out(self.principal, now))
                if change is None:
                    if changes.interrupted:
                        return
                    continue
                # A token revoked (or a session ended) while its connection is open receives
                # nothing more; who is still signed in is read once for the district.
                if not self._still_signed_in(change.sign_ins):
                    raise ClientError(signed_out(self.principal, now))
                state = change.state
                current = value_of(state)
                if current is None or current is last or current == last:
                    continue
                first, last = last is None, current
                if first or not await direct.send(current):
                    yield current


def _license_of(state: DistrictState) -> License | None:
    if state.license is None:
        return None
    return shared_value(state, "license", partial(License.from_view, state.license))


def _alerts_of(state: DistrictState) -> list[Alert]:
    return shared_value(state, "alerts", partial(_alerts, state.alerts))


def _alerts(records: list[AlertRecord]) -> list[Alert]:
    return [Alert.from_record(record) for record in records]


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[CanViewLicense],
        description="The caller's district's license now, then again each time it changes "
        "(counts, license terms, sync status). Nothing is sent until the district has a license.",
    )
    async def license_changed(self, info: Info) -> AsyncGenerator[License, None]:
        follower = _ChangeFollower(info, LICENSE_TOPICS)
        async with aclosing(follower.values(_license_of)) as updates:
            async for license in updates:
                yield license

    @strawberry.subscription(
        permission_classes=[CanViewLicense],
        description="The alerts showing now, most severe first, then the whole list again each "
        "time an alert is raised, resolved or reworded.",
    )
    async def alerts_changed(self, info: Info) -> AsyncGenerator[list[Alert], None]:
        follower = _ChangeFollower(info, ALERT_TOPICS)
        async with aclosing(follower.values(_alerts_of)) as updates:
            async for alerts in updates:
                yield alerts
