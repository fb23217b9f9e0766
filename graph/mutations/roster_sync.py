"""confirmRosterSync and discardRosterSync: apply a held roster change, as `licensing sync
confirm` does, or drop it and keep the roster in force."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import License, SyncRunStatus, Usage, UserError
from licensing.orchestration.service import DistrictState
from licensing.storage.roster_changes import SyncOutcome


@strawberry.type
class ConfirmRosterSyncPayload:
    status: SyncRunStatus = strawberry.field(
        description="APPLIED (confirmed) or DISCARDED (discarded), or what the run is now when it "
        "was refused (see errors): FAILED, or SUPERSEDED when a newer sync of the source came "
        "first."
    )
    run_id: int | None = strawberry.field(description="The sync run confirmed or refused.")
    license: License | None
    usage: Usage
    errors: list[UserError]


@strawberry.type
class RosterSyncMutation:
    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Apply a held roster change of a source (the run reviewed, when given). "
        "Refused when a newer sync of the source superseded it, or when nothing is held.",
    )
    async def confirm_roster_sync(
        self,
        info: Info,
        # Named apart in Python: resolvers' extensions take a parameter called source.
        roster_source: Annotated[str, strawberry.argument(name="source")],
        run_id: int | None = None,
    ) -> ConfirmRosterSyncPayload:
        state, outcome = await info.context.service.confirm_roster_sync(
            info.context.principal, roster_source, run_id
        )
        return _payload(info, state, outcome)

    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Drop a held roster change of a source without applying it: the roster in "
        "force stays, and the source's next sync is checked afresh. Refused unless the run is "
        "the source's held one.",
    )
    async def discard_roster_sync(
        self,
        info: Info,
        roster_source: Annotated[str, strawberry.argument(name="source")],
        run_id: int,
    ) -> ConfirmRosterSyncPayload:
        state, outcome = await info.context.service.discard_roster_sync(
            info.context.principal, roster_source, run_id
        )
        return _payload(info, state, outcome)


def _payload(info: Info, state: DistrictState, outcome: SyncOutcome) -> ConfirmRosterSyncPayload:
    info.context.remember_district_state(state)
    return ConfirmRosterSyncPayload(
        status=SyncRunStatus(outcome.status),
        run_id=outcome.run_id,
        license=License.from_view(state.license) if state.license else None,
        usage=Usage.from_counts(state.usage, roster=state.roster),
        errors=[UserError.from_problem(outcome.problem)] if outcome.problem else [],
    )
