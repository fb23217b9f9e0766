"""deactivateStudents and reactivateStudents: local-roster students switched off and on."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import License, Usage, UserError


@strawberry.type
class StudentsPayload:
    changed: int = strawberry.field(description="Students whose state changed.")
    license: License | None
    usage: Usage
    errors: list[UserError]


async def _set_enabled(info: Info, ids: list[str], *, enabled: bool) -> StudentsPayload:
    update = await info.context.service.set_local_students_enabled(
        info.context.principal, ids, enabled=enabled
    )
    info.context.remember_district_state(update.state)
    state = update.state
    return StudentsPayload(
        changed=update.changed,
        license=License.from_view(state.license) if state.license else None,
        usage=Usage.from_counts(state.usage, roster=state.roster),
        errors=[UserError.from_problem(problem) for problem in update.problems],
    )


@strawberry.type
class LocalStudentsMutation:
    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Deactivate local-roster students by id (at most 1000); all or none.",
    )
    async def deactivate_students(self, info: Info, ids: list[str]) -> StudentsPayload:
        return await _set_enabled(info, ids, enabled=False)

    @strawberry.mutation(
        permission_classes=[CanManageSettings],
        description="Reactivate local-roster students by id (at most 1000); all or none.",
    )
    async def reactivate_students(self, info: Info, ids: list[str]) -> StudentsPayload:
        return await _set_enabled(info, ids, enabled=True)
