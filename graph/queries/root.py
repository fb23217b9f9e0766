"""Query resolvers. The district is always the caller's own, taken from the token."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from graph.connections import argument_descriptions, page_parts, page_request, read_page
from graph.errors import ClientError
from graph.permissions import CanManageSettings, CanViewLicense
from graph.types import (
    ActiveStudent,
    ActiveStudentConnection,
    ActiveStudentFilterInput,
    Alert,
    AlertPlacement,
    ApiToken,
    DataSource,
    District,
    License,
    LicenseCheck,
    LicenseSettings,
    LicenseSyncStatus,
    LicenseUnavailable,
    Permission,
    ReviewGroup,
    Usage,
    Viewer,
)
from licensing.domain.error_codes import ErrorCode
from licensing.domain.license_absence import license_absence
from licensing.problems import Problem
from licensing.storage.student_report import REPORT_LIST, ActiveStudentFilter

REPORT_ARGUMENTS = argument_descriptions(REPORT_LIST)

MAX_ADDITIONAL_STUDENTS = 10_000_000


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="The caller's district's license; null until the license source has answered "
        "once: licenseUnavailable then says why and what to do.",
    )
    async def license(self, info: Info) -> License | None:
        state = await info.context.district_state()
        return License.from_view(state.license) if state.license else None

    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="Why `license` is null, and what to do; null when there is a license.",
    )
    async def license_unavailable(self, info: Info) -> LicenseUnavailable | None:
        state = await info.context.district_state()
        if state.license is not None:
            return None
        sync = state.snapshot.sync
        return LicenseUnavailable.from_absence(
            license_absence(
                last_status=LicenseSyncStatus(sync.last_status)
                if sync and sync.last_status
                else None,
                last_attempt_at=sync.last_attempt_at if sync else None,
                last_error=sync.last_error if sync else None,
            )
        )

    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="Who is calling: the district and the API token (the Licensing tab's "
        "session answers with the token that signed in).",
    )
    async def viewer(self, info: Info) -> Viewer:
        principal = info.context.principal
        district = (await info.context.district_state()).snapshot.district
        return Viewer(
            district=District(
                slug=district.slug, name=district.official_name, time_zone=district.time_zone
            ),
            token=ApiToken(
                name=principal.token_name,
                # In the enum's order, so the answer is stable.
                permissions=[p for p in Permission if principal.may(p)],
                expires_at=principal.expires_at,
            ),
        )

    @strawberry.field(permission_classes=[CanViewLicense])
    async def usage(self, info: Info) -> Usage:
        state = await info.context.district_state()
        return Usage.from_counts(state.usage, roster=state.roster)

    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="Alerts showing now, most severe first; with includeResolved, history too.",
    )
    async def alerts(
        self,
        info: Info,
        placement: AlertPlacement | None = None,
        include_resolved: bool = False,
    ) -> list[Alert]:
        state = await info.context.district_state()
        records = list(state.alerts)
        if include_resolved:
            records += await info.context.service.alert_history(info.context.principal.district_id)
        return [
            Alert.from_record(record)
            for record in records
            if placement is None or placement in record.placements
        ]

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The Licensing Settings section; null (with a FORBIDDEN error) for a token "
        "without MANAGE_SETTINGS.",
    )
    async def license_settings(self, info: Info) -> LicenseSettings | None:
        state = await info.context.district_state()
        return LicenseSettings.from_view(state.settings)

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The students who count against the license, with why and from where.",
    )
    async def active_students(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description=REPORT_ARGUMENTS["first"])
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description=REPORT_ARGUMENTS["after"])
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description=REPORT_ARGUMENTS["last"])
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description=REPORT_ARGUMENTS["before"])
        ] = None,
        filter: ActiveStudentFilterInput | None = None,
    ) -> ActiveStudentConnection | None:
        report_filter = filter.to_filter() if filter else ActiveStudentFilter()
        service = info.context.service
        district_id = info.context.principal.district_id
        page = await read_page(
            service.active_students(
                district_id,
                report_filter=report_filter,
                request=page_request(first, after, last, before),
            )
        )
        edges, page_info = page_parts(page, REPORT_LIST, ActiveStudent.from_row, lambda row: row.id)

        async def count_rows() -> int:
            return await service.count_active_students(district_id, report_filter=report_filter)

        return ActiveStudentConnection(
            edges=edges,
            page_info=page_info,
            nodes=[edge.node for edge in edges],
            count_rows=count_rows,
        )

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="Groups of counted students worth a look, largest saving first.",
    )
    async def count_review(self, info: Info) -> list[ReviewGroup] | None:
        groups = await info.context.service.count_review(info.context.principal.district_id)
        return [ReviewGroup.from_group(group) for group in groups]

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The district's roster sources and how their syncs went.",
    )
    async def data_sources(self, info: Info) -> list[DataSource] | None:
        views = await info.context.service.data_sources(info.context.principal.district_id)
        return [DataSource.from_view(view) for view in views]

    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="May the district activate this many more students?",
    )
    async def license_check(self, info: Info, additional_students: int = 1) -> LicenseCheck | None:
        if not 0 <= additional_students <= MAX_ADDITIONAL_STUDENTS:
            raise ClientError(
                Problem(
                    ErrorCode.INVALID_ADDITIONAL_STUDENTS,
                    f"additionalStudents must be between 0 and {MAX_ADDITIONAL_STUDENTS:,}.",
                )
            )
        service = info.context.service
        check = await service.license_check(info.context.principal.district_id, additional_students)
        return LicenseCheck.from_rule(check)
