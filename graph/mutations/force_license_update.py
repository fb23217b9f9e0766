"""forceLicenseUpdate: the Force License Update button."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import License, Notice, UserError
from licensing.problems import Problem


@strawberry.type
class ForceLicenseUpdatePayload:
    license: License | None
    updated: bool = strawberry.field(description="True when the license source sent changes.")
    throttled: bool = strawberry.field(
        description="True when pressed again within the cooldown; nothing was asked."
    )
    retry_after_seconds: int | None
    in_progress: bool = strawberry.field(
        description="True when the license source had not answered within the wait "
        "(force_update_wait_seconds): the update goes on in the background, and licenseChanged "
        "and the next read show its outcome. `license` is the license held until then."
    )
    errors: list[UserError]
    notices: list[Notice] = strawberry.field(
        description="What the update changed besides the license (a lowered alert threshold)."
    )


@strawberry.type
class ForceLicenseUpdateMutation:
    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Ask the licensing service for this district's license now.",
    )
    async def force_license_update(self, info: Info) -> ForceLicenseUpdatePayload:
        forced = await info.context.service.force_license_update(info.context.principal)
        info.context.remember_district_state(forced.state)
        outcome = forced.outcome
        # A throttled press is not a mistake: it is answered by throttled and retryAfterSeconds.
        problems: list[Problem] = [outcome.problem] if outcome.problem else []
        license_view = forced.state.license
        return ForceLicenseUpdatePayload(
            license=License.from_view(license_view) if license_view else None,
            updated=outcome.updated,
            throttled=outcome.throttled,
            retry_after_seconds=outcome.retry_after_seconds,
            in_progress=outcome.in_progress,
            errors=[UserError.from_problem(problem) for problem in problems],
            notices=[Notice.from_problem(notice) for notice in outcome.notices],
        )
