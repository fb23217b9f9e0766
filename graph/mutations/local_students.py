"""deactivateStudents and reactivateStudents: local-roster students switched off and on."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from graph.permissions import CanManageSettings
from graph.types import ErrorCode, License, Usage, UserError
from licensing.storage.local_students import RefusedId


@strawberry.type(description="An id that refused a change of local-roster students.")
class RefusedStudentId:
    source_id: str = strawberry.field(description="The student id as given.")
    code: ErrorCode = strawberry.field(
        description="NOT_FOUND: no student of the local roster has it; OWNED_BY_SOURCE: a roster "
        "source's student (change it there)."
    )
    source: str | None = strawberry.field(description="For OWNED_BY_SOURCE: the source's name.")

    @classmethod
    def from_refused(cls, refused: RefusedId) -> RefusedStudentId:
        return cls(source_id=refused.id, code=refused.code, source=refused.source)


@strawberry.type
class StudentsPayload:
    changed: int = strawberry.field(description="Students whose state changed.")
    license: License | None
    usage: Usage
    errors: list[UserError]
    refused_ids: list[RefusedStudentId] = strawberry.field(
        description="The ids that refused the change (nothing changed then), each once, in the "
        "order given: to name them to the user."
    )


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
        refused_ids=[RefusedStudentId.from_refused(refused) for refused in update.refused],
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
