"""Queries about how the service runs for the district: the audit log and the scheduled jobs."""

from __future__ import annotations

import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from graph.errors import ClientError
from graph.permissions import CanManageSettings
from graph.types import AuditAction, AuditOutcome, PageInfo, ScheduledJobKind, ScheduledJobOutcome
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.scheduler import JobState
from licensing.problems import Problem
from licensing.storage.audit import AuditEntry, encode_audit_cursor


@strawberry.type(description="One entry of the audit log: who did what, when, and how it went.")
class AuditEvent:
    id: strawberry.ID
    occurred_at: datetime.datetime
    actor: str
    action: AuditAction
    outcome: AuditOutcome
    old_value: JSON | None = strawberry.field(
        description="The value before, as recorded: an object, a number or text. One too large "
        'to keep is {"truncated": "<the start of its JSON text>"}.'
    )
    new_value: JSON | None = strawberry.field(description="The value after, as recorded.")
    detail: str | None

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> AuditEvent:
        return cls(
            id=strawberry.ID(str(entry.id)),
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            action=entry.action,
            outcome=entry.outcome,
            old_value=entry.old_value,
            new_value=entry.new_value,
            detail=entry.detail,
        )


@strawberry.type
class AuditEventEdge:
    cursor: str
    node: AuditEvent


@strawberry.type(description="The audit log, newest first. It is append-only.")
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo


@strawberry.type(description="A periodic job of the district and how its last run went.")
class ScheduledJob:
    name: str
    kind: ScheduledJobKind
    schedule: str | None = strawberry.field(
        description="For roster syncs and license refreshes: the cron expression, the district's "
        "time zone, the job's fixed delay and the quiet hours its next run was computed from."
    )
    next_run_at: datetime.datetime
    last_started_at: datetime.datetime | None
    last_finished_at: datetime.datetime | None
    last_outcome: ScheduledJobOutcome | None = strawberry.field(
        description="How the last run ended; null before the first."
    )
    last_error: str | None
    consecutive_failures: int

    @classmethod
    def from_state(cls, state: JobState) -> ScheduledJob:
        return cls(
            name=state.name,
            kind=state.kind,
            schedule=state.schedule,
            next_run_at=state.next_run_at,
            last_started_at=state.last_started_at,
            last_finished_at=state.last_finished_at,
            last_outcome=state.last_outcome,
            last_error=state.last_error,
            consecutive_failures=state.consecutive_failures,
        )


@strawberry.type
class OperationsQuery:
    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="Every settings change, license update, sync and token change, newest first.",
    )
    async def audit_log(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> AuditEventConnection | None:
        try:
            page = await info.context.service.audit_log(
                info.context.principal.district_id, first=first, after=after
            )
        except ValueError as error:
            raise ClientError(Problem(ErrorCode.INVALID_ARGUMENT, str(error))) from None
        edges = [
            AuditEventEdge(cursor=encode_audit_cursor(entry.id), node=AuditEvent.from_entry(entry))
            for entry in page.entries
        ]
        return AuditEventConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None
            ),
        )

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The district's scheduled jobs and the last outcome of each.",
    )
    async def scheduled_jobs(self, info: Info) -> list[ScheduledJob] | None:
        states = await info.context.service.scheduled_jobs(info.context.principal.district_id)
        return [ScheduledJob.from_state(state) for state in states]
