"""Live updates: subscriptions that follow the district's change log.

Each subscription sends the current state first, then waits for the change log (in the database,
so changes made by any worker or host count) to move past the last entry it saw, and sends the
new state; every change within one poll interval (``live_poll_seconds``) arrives as one update,
and an update that would repeat the last one is not sent. The district is always the caller's.

Each subscription counts against its token's cap while it is open and draws points from the
token's budget for the time it is held (graph/rate_limit.py ``SubscriptionMeter``); once the
budget is spent it ends with ``RATE_LIMITED``. It ends as it would on revocation, with
``TOKEN_EXPIRED``, within a few poll intervals of its token's expiry, change or no change.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from contextlib import aclosing
from datetime import datetime

import anyio
import strawberry
from strawberry.types import Info

from graph.auth import token_expired_message
from graph.errors import ClientError
from graph.permissions import CanViewLicense
from graph.rate_limit import SubscriptionMeter
from graph.types import Alert, License
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import DistrictState, LicensingService
from licensing.problems import Problem
from licensing.storage.changes import ALERT_TOPICS, LICENSE_TOPICS
from licensing.storage.tokens import Principal

TOKEN_REVOKED = Problem(
    ErrorCode.UNAUTHENTICATED, "The API token has been revoked; sign in again with a valid token."
)


def signed_out(principal: Principal, now: datetime) -> Problem:
    """Why a connection's token no longer signs in: it expired, or else it was revoked."""
    if principal.expires_at is not None and principal.expired(now):
        return Problem(ErrorCode.TOKEN_EXPIRED, token_expired_message(principal.expires_at))
    return TOKEN_REVOKED


class _ChangeFollower:
    """The caller's district's state, read again each time the change log moves on ``topics``."""

    def __init__(self, info: Info, topics: Collection[str]) -> None:
        self.context = info.context
        self.service: LicensingService = info.context.service
        self.principal: Principal = info.context.principal
        self.district_id: int = self.principal.district_id
        self.topics = topics
        self.poll_seconds = self.service.settings.live_poll_seconds
        self.meter = SubscriptionMeter(self.service, self.principal.token_id)

    async def states(self) -> AsyncGenerator[DistrictState, None]:
        async with self.meter:
            # The cursor is read before the state, so a change committed in between is sent
            # again rather than missed.
            seen = await self.service.latest_change_id(self.district_id, self.topics)
            yield await self.service.district_state(self.district_id)
            while True:
                newest = None
                # Wakes every few polls even without a change, to charge the time held and to
                # end at the token's expiry.
                with anyio.move_on_after(2 * self.poll_seconds):
                    newest = await self.service.wait_for_change(
                        self.district_id, seen, self.topics, self.poll_seconds
                    )
                # Nothing is written when a token expires: the clock is asked at every wake.
                now = self.service.clock()
                if self.principal.expired(now):
                    raise ClientError(signed_out(self.principal, now))
                await self.meter.charge()
                if newest is None:
                    continue
                seen = newest
                # A token revoked while its connection is open receives nothing more.
                still_signed_in = getattr(self.context, "still_signed_in", None)
                if still_signed_in is not None and not await still_signed_in():
                    raise ClientError(signed_out(self.principal, self.service.clock()))
                yield await self.service.district_state(self.district_id)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[CanViewLicense],
        description="The caller's district's license now, then again each time it changes "
        "(counts, license terms, sync status). Nothing is sent until the district has a license.",
    )
    async def license_changed(self, info: Info) -> AsyncGenerator[License, None]:
        last: License | None = None
        async with aclosing(_ChangeFollower(info, LICENSE_TOPICS).states()) as states:
            async for state in states:
                if state.license is None:
                    continue
                current = License.from_view(state.license)
                if current != last:
                    last = current
                    yield current

    @strawberry.subscription(
        permission_classes=[CanViewLicense],
        description="The alerts showing now, most severe first, then the whole list again each "
        "time an alert is raised, resolved or reworded.",
    )
    async def alerts_changed(self, info: Info) -> AsyncGenerator[list[Alert], None]:
        last: list[Alert] | None = None
        async with aclosing(_ChangeFollower(info, ALERT_TOPICS).states()) as states:
            async for state in states:
                current = [Alert.from_record(record) for record in state.alerts]
                if current != last:
                    last = current
                    yield current
