"""setThreshold: the "Number of Students Remaining to Show Alert" setting."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import License, LicenseSettings, UserError


@strawberry.type
class SetThresholdPayload:
    license_settings: LicenseSettings | None
    license: License | None
    errors: list[UserError]


@strawberry.type
class SetThresholdMutation:
    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Set how many remaining licenses start the alerts (0 to the licensed total).",
    )
    async def set_threshold(self, info: Info, students_remaining: int) -> SetThresholdPayload:
        change = await info.context.service.set_threshold(
            info.context.principal, students_remaining
        )
        info.context.remember_district_state(change.state)
        state = change.state
        return SetThresholdPayload(
            license_settings=LicenseSettings.from_view(state.settings),
            license=License.from_view(state.license) if state.license else None,
            errors=[UserError.from_problem(problem) for problem in change.problems],
        )
