"""The local roster's deactivated students: the list ``reactivateStudents`` takes its ids from."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Annotated, ClassVar

import strawberry
from strawberry import relay
from strawberry.types import Info

from graph.connections import (
    Counter,
    argument_descriptions,
    page_parts,
    page_request,
    read_page,
)
from graph.context import GraphContext
from graph.nodes import load_by_row_id
from graph.permissions import CanManageSettings
from graph.types import EnrollmentStatus
from licensing.storage.deactivated_students import DEACTIVATED_LIST, DeactivatedStudentRow
from licensing.storage.tokens import Permission

DEACTIVATED_ARGUMENTS = argument_descriptions(DEACTIVATED_LIST)


@strawberry.type(
    description="A local-roster student switched off (deactivateStudents, or `licensing roster "
    "deactivate`): they do not count against the license until reactivated."
)
class DeactivatedStudent(relay.Node):
    id: relay.NodeID[int]
    source_id: str = strawberry.field(
        description="The student's id in the local roster: what reactivateStudents takes."
    )
    person_key: str = strawberry.field(description="Records sharing it are one person.")
    given_name: str | None
    family_name: str | None
    username: str | None
    grade: str | None
    school: str | None
    schools: list[str]
    graduation_year: int | None
    last_modified: datetime.datetime | None
    status: EnrollmentStatus = strawberry.field(
        description="Their enrollment status. Only an ACTIVE one counts again once reactivated."
    )

    @classmethod
    def from_row(cls, row: DeactivatedStudentRow) -> DeactivatedStudent:
        return cls(
            id=row.id,
            source_id=row.source_id,
            person_key=row.person_key,
            given_name=row.given_name,
            family_name=row.family_name,
            username=row.username,
            grade=row.grade,
            school=row.school,
            schools=list(row.schools),
            graduation_year=row.graduation_year,
            last_modified=row.last_modified,
            status=row.status,
        )

    permission: ClassVar[Permission] = Permission.MANAGE_SETTINGS

    @classmethod
    async def load(
        cls, context: GraphContext, keys: Sequence[str]
    ) -> list[DeactivatedStudent | None]:
        """Deactivated local students of the district now; any other record is null."""
        district_id = context.principal.district_id
        return await load_by_row_id(
            keys,
            lambda ids: context.service.deactivated_students_by_id(district_id, ids),
            cls.from_row,
        )


@strawberry.type(description="A page of the deactivated local students, in record order.")
class DeactivatedStudentConnection(relay.Connection[DeactivatedStudent]):
    nodes: list[DeactivatedStudent] = strawberry.field(
        description="The page's students: edges without the cursors."
    )
    count_rows: strawberry.Private[Counter]

    @strawberry.field(
        description="Deactivated students matching the search, on every page (counted only "
        "when asked for)."
    )
    async def total_count(self) -> int:
        return await self.count_rows()


@strawberry.type
class LocalStudentsQuery:
    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The district's deactivated local-roster students: those reactivateStudents "
        "switches back on. A change of the local roster gives its records new ids: page again "
        "from the start after one.",
    )
    async def deactivated_students(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description=DEACTIVATED_ARGUMENTS["first"])
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description=DEACTIVATED_ARGUMENTS["after"])
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description=DEACTIVATED_ARGUMENTS["last"])
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description=DEACTIVATED_ARGUMENTS["before"])
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Part of a name, username or id; letter case does not matter."
            ),
        ] = None,
    ) -> DeactivatedStudentConnection | None:
        service = info.context.service
        district_id = info.context.principal.district_id
        page = await read_page(
            service.deactivated_students(
                district_id, search=search, request=page_request(first, after, last, before)
            )
        )
        edges, page_info = page_parts(
            page, DEACTIVATED_LIST, DeactivatedStudent.from_row, lambda row: row.id
        )

        async def count_rows() -> int:
            return await service.count_deactivated_students(district_id, search=search)

        return DeactivatedStudentConnection(
            edges=edges,
            page_info=page_info,
            nodes=[edge.node for edge in edges],
            count_rows=count_rows,
        )
