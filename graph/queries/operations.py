"""Queries about how the service runs for the district: the audit log and the scheduled jobs."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Annotated, ClassVar, Self

import strawberry
from strawberry import relay
from strawberry.scalars import JSON
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
from graph.types import AuditAction, AuditOutcome, ScheduledJobKind, ScheduledJobOutcome
from licensing.orchestration.scheduler import JobState
from licensing.storage.audit import AUDIT_LIST, AuditEntry
from licensing.storage.tokens import Permission

AUDIT_ARGUMENTS = argument_descriptions(AUDIT_LIST)


@strawberry.type(description="One entry of the audit log: who did what, when, and how it went.")
class AuditEvent(relay.Node):
    id: relay.NodeID[int]
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
            id=entry.id,
            occurred_at=entry.occurred_at,
            actor=entry.actor,
            action=entry.action,
            outcome=entry.outcome,
            old_value=entry.old_value,
            new_value=entry.new_value,
            detail=entry.detail,
        )

    permission: ClassVar[Permission] = Permission.MANAGE_SETTINGS

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[AuditEvent | None]:
        district_id = context.principal.district_id
        return await load_by_row_id(
            keys, lambda ids: context.service.audit_entries_by_id(district_id, ids), cls.from_entry
        )


@strawberry.type(description="The audit log, newest first. It is append-only.")
class AuditEventConnection(relay.Connection[AuditEvent]):
    nodes: list[AuditEvent] = strawberry.field(
        description="The page's events: edges without the cursors."
    )
    count_rows: strawberry.Private[Counter]

    @strawberry.field(
        description="Events in the whole log (counted only when asked for: one indexed count of "
        "the district's events)."
    )
    async def total_count(self) -> int:
        return await self.count_rows()


@strawberry.type(description="A periodic job of the district and how its last run went.")
class ScheduledJob(relay.Node):
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

    permission: ClassVar[Permission] = Permission.MANAGE_SETTINGS

    @classmethod
    def resolve_id(cls, root: Self, *, info: Info) -> str:
        return root.name

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[ScheduledJob | None]:
        states = await context.service.scheduled_jobs(context.principal.district_id)
        by_name = {state.name: state for state in states}
        return [cls.from_state(by_name[key]) if key in by_name else None for key in keys]


@strawberry.type
class OperationsQuery:
    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="Every settings change, license update, sync and token change, newest first.",
    )
    async def audit_log(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description=AUDIT_ARGUMENTS["first"])
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description=AUDIT_ARGUMENTS["after"])
        ] = None,
        last: Annotated[
            int | None, strawberry.argument(description=AUDIT_ARGUMENTS["last"])
        ] = None,
        before: Annotated[
            str | None, strawberry.argument(description=AUDIT_ARGUMENTS["before"])
        ] = None,
        actions: Annotated[
            list[AuditAction] | None,
            strawberry.argument(description="Only events of these kinds (all when omitted)."),
        ] = None,
        since: Annotated[
            datetime.date | None,
            strawberry.argument(
                description="Only events on or after this day, in the district's time zone."
            ),
        ] = None,
        until: Annotated[
            datetime.date | None,
            strawberry.argument(
                description="Only events on or before this day, in the district's time zone."
            ),
        ] = None,
    ) -> AuditEventConnection | None:
        service = info.context.service
        district_id = info.context.principal.district_id
        page = await read_page(
            service.audit_log(
                district_id,
                request=page_request(first, after, last, before),
                actions=actions,
                since=since,
                until=until,
            )
        )
        edges, page_info = page_parts(
            page, AUDIT_LIST, AuditEvent.from_entry, lambda entry: entry.id
        )

        async def count_rows() -> int:
            return await service.count_audit_events(district_id)

        return AuditEventConnection(
            edges=edges,
            page_info=page_info,
            nodes=[edge.node for edge in edges],
            count_rows=count_rows,
        )

    @strawberry.field(
        permission_classes=[CanManageSettings],
        description="The district's scheduled jobs and the last outcome of each.",
    )
    async def scheduled_jobs(self, info: Info) -> list[ScheduledJob] | None:
        states = await info.context.service.scheduled_jobs(info.context.principal.district_id)
        return [ScheduledJob.from_state(state) for state in states]
