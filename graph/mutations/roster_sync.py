"""confirmRosterSync: apply a held roster change, as `licensing sync confirm` does."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import License, SyncRunStatus, Usage, UserError


@strawberry.type
class ConfirmRosterSyncPayload:
    status: SyncRunStatus = strawberry.field(
        description="APPLIED, or what the run is now when it was refused (see errors): FAILED, "
        "or SUPERSEDED when a newer sync of the source came first."
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
        info.context.remember_district_state(state)
        return ConfirmRosterSyncPayload(
            status=SyncRunStatus(outcome.status),
            run_id=outcome.run_id,
            license=License.from_view(state.license) if state.license else None,
            usage=Usage.from_counts(state.usage, roster=state.roster),
            errors=[UserError.from_problem(outcome.problem)] if outcome.problem else [],
        )
