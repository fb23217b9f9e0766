"""GraphQL object types and enums, each built from the domain's plain views."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import ClassVar, Self

import strawberry
from strawberry import relay
from strawberry.types import Info

from graph.connections import Counter
from graph.context import GraphContext
from graph.nodes import load_by_row_id
from licensing.domain import audit, error_codes, license_absence, rules, states
from licensing.problems import Problem
from licensing.storage import count_review as review
from licensing.storage.alert_state import AlertRecord
from licensing.storage.data_sources import INTAKE_SAMPLE, DataSourceView, IntakeView
from licensing.storage.district_state import LicenseView, ThresholdSettingsView
from licensing.storage.intake import IntakeIssue as StoredIntakeIssue
from licensing.storage.roster import UsageCounts
from licensing.storage.student_report import ActiveStudentFilter, ActiveStudentRow
from licensing.storage.tokens import Permission as TokenPermission

# The domain's enums are the schema's: strawberry.enum registers each one (and returns it
# unchanged). The names are plain aliases so that type checkers read them as types.
LicenseStatus = rules.LicenseStatus
strawberry.enum(rules.LicenseStatus, description="Whether the license is valid.")
UsageLevel = rules.UsageLevel
strawberry.enum(
    rules.UsageLevel, description="The colour of the license count: green, yellow, red."
)
AccessLevel = rules.AccessLevel
strawberry.enum(rules.AccessLevel, description="Whether the system restricts use.")
AlertKind = rules.AlertKind
strawberry.enum(rules.AlertKind)
AlertSeverity = rules.AlertSeverity
strawberry.enum(rules.AlertSeverity)
AlertPlacement = rules.AlertPlacement
strawberry.enum(rules.AlertPlacement, description="Where an alert is shown.")
LicenseCheckReason = rules.LicenseCheckReason
strawberry.enum(rules.LicenseCheckReason)
ErrorCode = error_codes.ErrorCode
strawberry.enum(error_codes.ErrorCode, description="Why a request, or part of it, was refused.")
RosterState = rules.RosterState
strawberry.enum(
    rules.RosterState,
    description="Whether the students of a roster are in the counts: CURRENT (its last sync was "
    "applied), NEVER_SYNCED (no sync has completed: its students are not counted yet), FAILED "
    "(its last sync failed: the counts are from the last good one, if any), HELD (its last sync "
    "waits for an administrator's confirmation).",
)
LicenseSyncStatus = states.LicenseSyncStatus
strawberry.enum(
    states.LicenseSyncStatus,
    description="How the last license refresh went: UPDATED (the license source sent changes), "
    "UNCHANGED (it sent the license already held), FAILED (it could not be asked, or its answer "
    "was refused: see lastSyncError).",
)
SyncRunStatus = states.SyncRunStatus
strawberry.enum(
    states.SyncRunStatus,
    description="Where a roster sync stands: RUNNING, APPLIED (in the counts), HELD (waiting for "
    "an administrator's confirmation), FAILED, SUPERSEDED (a newer sync of the source came "
    "first), UNCHANGED (the source had nothing new; the roster in force is kept).",
)
SyncMode = states.SyncMode
strawberry.enum(
    states.SyncMode,
    description="What a sync delivered: FULL (the source's whole roster) or DELTA (only changes).",
)
ScheduledJobKind = states.ScheduledJobKind
strawberry.enum(states.ScheduledJobKind, description="What a scheduled job does.")
ScheduledJobOutcome = states.ScheduledJobOutcome
strawberry.enum(states.ScheduledJobOutcome, description="How a scheduled job's last run ended.")
AuditAction = audit.AuditAction
strawberry.enum(audit.AuditAction, description="What an audit event records.")
AuditOutcome = audit.AuditOutcome
strawberry.enum(
    audit.AuditOutcome,
    description="How the recorded action went. CHANGED: a setting was saved; REJECTED: refused, "
    "nothing changed; LOWERED: a smaller license lowered the alert threshold; UPDATED or "
    "UNCHANGED: what the license source or roster source sent; THROTTLED: pressed again within "
    "the cooldown; APPLIED, HELD, SUPERSEDED: what became of a roster change.",
)
RosterRole = rules.Role
strawberry.enum(rules.Role, name="RosterRole", description="A roster record's role.")
EnrollmentStatus = rules.Lifecycle
strawberry.enum(
    rules.Lifecycle,
    name="EnrollmentStatus",
    description="A roster record's enrolment state; only ACTIVE students count against the "
    "license.",
)
Permission = TokenPermission
strawberry.enum(
    TokenPermission,
    description="What an API token may do: VIEW_LICENSE (read the Licensing tab) or "
    "MANAGE_SETTINGS (also change its settings, Force License Update, rosters and reports).",
)
LicenseUnavailableReason = license_absence.LicenseUnavailableReason
strawberry.enum(
    license_absence.LicenseUnavailableReason,
    description="Why a district has no license to show: NOT_REQUESTED (the license source has "
    "not been asked yet), UPDATE_FAILED (the last request failed), NOT_RECEIVED (asked, but no "
    "license has been stored).",
)


@strawberry.type(
    description="How the roster behind the counts stands: a source's, or the district's (its "
    "most pressing source's). A district whose roster is kept here (no synced source) is "
    "CURRENT with no source."
)
class RosterStatus:
    state: RosterState
    counts_known: bool = strawberry.field(
        description="False while a synced source has never completed a sync: its students are "
        "missing from the counts, which are then not the district's (the license count shows "
        '"? / 1000").'
    )
    source: str | None = strawberry.field(description="The roster source this status is about.")
    since: datetime.datetime | None = strawberry.field(
        description="CURRENT: when the last sync was applied (for the district, the oldest of "
        "its sources'); FAILED: when the syncs began failing; HELD: when the sync was held."
    )
    reason: str | None = strawberry.field(
        description="What the state means for the counts, in a sentence; the source's own "
        "error is dataSources.lastError (Manage Settings)."
    )

    @classmethod
    def from_status(cls, status: rules.RosterStatus) -> RosterStatus:
        return cls(
            state=status.state,
            counts_known=status.counts_known,
            source=status.source,
            since=status.since,
            reason=status.reason,
        )


@strawberry.type(description="The district's license as the Licensing tab shows it.")
class License:
    status: LicenseStatus
    licensed_to: str = strawberry.field(description="The district the license is issued to.")
    legal_entity_name: str | None = strawberry.field(
        description="The legal entity name, when it differs from the district's name."
    )
    used: int = strawberry.field(description="Active students: the licenses in use.")
    total: int = strawberry.field(description="Licensed capacity.")
    remaining: int = strawberry.field(description="total - used; negative when over the limit.")
    overage: int = strawberry.field(description="How far used exceeds total, else 0.")
    display: str = strawberry.field(description='The count as "487 / 1000".')
    level: UsageLevel
    access_level: AccessLevel
    overage_allowance: float = strawberry.field(
        description="Fraction of total the license tolerates above the limit before restricting."
    )
    created_at: datetime.date = strawberry.field(description="When the district's license began.")
    expires_at: datetime.date = strawberry.field(
        description="Last day of the license period (valid through its end, district time)."
    )
    days_until_expiration: int
    last_synced_at: datetime.datetime | None
    last_sync_status: LicenseSyncStatus | None
    last_sync_error: str | None
    stale: bool = strawberry.field(
        description="True when the last refresh failed: the figures are the last good license."
    )
    roster_status: RosterStatus = strawberry.field(
        description="Whether used (and so display, remaining and level) counts every student: "
        "see countsKnown and state."
    )

    @classmethod
    def from_view(cls, view: LicenseView) -> License:
        return cls(
            status=view.status,
            licensed_to=view.licensed_to,
            legal_entity_name=view.legal_entity_name,
            used=view.used,
            total=view.total,
            remaining=view.remaining,
            overage=view.overage,
            display=view.display,
            level=view.level,
            access_level=view.access_level,
            overage_allowance=view.overage_allowance,
            created_at=view.created_on,
            expires_at=view.expires_on,
            days_until_expiration=view.days_until_expiration,
            last_synced_at=view.last_synced_at,
            last_sync_status=view.last_sync_status,
            last_sync_error=view.last_sync_error,
            stale=view.stale,
            roster_status=RosterStatus.from_status(view.roster),
        )


@strawberry.type(
    description="Why the district has no license to show, and what to do: `license` is null "
    "until the license source has answered once. The rest of the tab (usage, alerts, settings) "
    "still answers."
)
class LicenseUnavailable:
    reason: LicenseUnavailableReason
    message: str = strawberry.field(
        description="What happened and what to do next, in plain words for an administrator."
    )
    last_attempt_at: datetime.datetime | None = strawberry.field(
        description="When the license source was last asked; null if it never was."
    )
    last_error: str | None = strawberry.field(
        description="For UPDATE_FAILED: what the last request ran into."
    )

    @classmethod
    def from_absence(cls, absence: license_absence.LicenseAbsence) -> LicenseUnavailable:
        return cls(
            reason=absence.reason,
            message=absence.message,
            last_attempt_at=absence.last_attempt_at,
            last_error=absence.last_error,
        )


@strawberry.type(description="The caller's district.")
class District:
    slug: str = strawberry.field(description="The district's short name, as in the command line.")
    name: str = strawberry.field(description="The district's official name.")
    time_zone: str = strawberry.field(
        description="IANA time zone name: license expiry and daily counts follow its days."
    )


@strawberry.type(description="The API token the caller signed in with.")
class ApiToken:
    name: str
    permissions: list[Permission] = strawberry.field(
        description="What it may do, with what that implies (MANAGE_SETTINGS includes "
        "VIEW_LICENSE)."
    )
    expires_at: datetime.datetime | None = strawberry.field(
        description="When the token stops working (HTTP 401 with the code TOKEN_EXPIRED from "
        "then on): create a new token before then and switch to it. Null: it does not expire "
        "and works until revoked (`licensing token revoke`). A Licensing tab session ends no "
        "later than this too."
    )


@strawberry.type(
    description="Who is calling: the district and the API token behind the request (for the "
    "Licensing tab's session, the token that signed in)."
)
class Viewer:
    district: District
    token: ApiToken


@strawberry.type(
    description="Who is in the system. Only activeStudents counts against the license."
)
class Usage:
    active_students: int
    inactive_students: int
    staff: int
    devices: int
    disabled_students: int = strawberry.field(
        description="Of the inactive students, those whose account is disabled."
    )
    duplicates_collapsed: int = strawberry.field(
        description="Extra records of active students (another school or source) counted once."
    )
    roster_status: RosterStatus = strawberry.field(
        description="Whether these counts hold every student: see countsKnown and state."
    )

    @classmethod
    def from_counts(cls, counts: UsageCounts, *, roster: rules.RosterStatus) -> Usage:
        return cls(
            active_students=counts.active_students,
            inactive_students=counts.inactive_students,
            staff=counts.staff,
            devices=counts.devices,
            disabled_students=counts.disabled_students,
            duplicates_collapsed=counts.duplicates_collapsed,
            roster_status=RosterStatus.from_status(roster),
        )


@strawberry.type(description="A license alert; it persists while its condition holds.")
class Alert(relay.Node):
    id: relay.NodeID[int]
    kind: AlertKind
    severity: AlertSeverity
    message: str
    placements: list[AlertPlacement]
    raised_at: datetime.datetime
    resolved_at: datetime.datetime | None

    @classmethod
    def from_record(cls, record: AlertRecord) -> Alert:
        return cls(
            id=record.id,
            kind=record.kind,
            severity=record.severity,
            message=record.message,
            placements=list(record.placements),
            raised_at=record.raised_at,
            resolved_at=record.resolved_at,
        )

    permission: ClassVar[Permission] = Permission.VIEW_LICENSE

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[Alert | None]:
        district_id = context.principal.district_id
        return await load_by_row_id(
            keys, lambda ids: context.service.alerts_by_id(district_id, ids), cls.from_record
        )


@strawberry.type(description="The Licensing Settings section.")
class LicenseSettings:
    students_remaining_threshold: int = strawberry.field(
        description="Alerts begin when this many licenses or fewer remain."
    )
    recommended_threshold_min: int
    recommended_threshold_max: int
    maximum_threshold: int = strawberry.field(
        description="The highest threshold accepted now: the licensed total."
    )

    @classmethod
    def from_view(cls, view: ThresholdSettingsView) -> LicenseSettings:
        return cls(
            students_remaining_threshold=view.students_remaining_threshold,
            recommended_threshold_min=view.recommended.minimum,
            recommended_threshold_max=view.recommended.maximum,
            maximum_threshold=view.maximum,
        )


@strawberry.type(description="May the district activate more students?")
class LicenseCheck:
    allowed: bool
    reason: LicenseCheckReason

    @classmethod
    def from_rule(cls, check: rules.LicenseCheck) -> LicenseCheck:
        return cls(allowed=check.allowed, reason=check.reason)


@strawberry.type(description="A mistake the caller can fix; nothing was changed.")
class UserError:
    field: str | None
    code: ErrorCode
    message: str

    @classmethod
    def from_problem(cls, problem: Problem) -> Self:
        return cls(field=problem.field, code=problem.code, message=problem.message)


@strawberry.type(
    description="Something an operation changed besides what was asked, for the administrator "
    "to know: THRESHOLD_LOWERED when a smaller license lowered the alert threshold to fit it."
)
class Notice(UserError):
    pass


@strawberry.type(description="Students left out of the count, by reason.")
class SourceExclusions:
    staff: int
    inactive: int
    disabled: int
    duplicate: int = strawberry.field(
        description="Extra records of students already counted (another school or id)."
    )
    other_role: int = strawberry.field(
        description="Guardians, parents, relatives, and people with only extension (ext:) roles."
    )


@strawberry.type(
    description="A warning or a quarantined row of a sync: where in the source's input, and what."
)
class IntakeIssue:
    file: str | None = strawberry.field(description="The file or collection, e.g. users.csv.")
    line: int | None = strawberry.field(
        description="The line in the file (for a warning that stands for many rows, the first)."
    )
    column: str | None
    reason: str = strawberry.field(description="What was wrong, and what the sync did about it.")
    rows: int = strawberry.field(
        description="How many rows it stands for (1 for a quarantined row)."
    )
    source_id: str | None = strawberry.field(
        description="The row's id in its source, when it has one."
    )

    @classmethod
    def from_issue(cls, issue: StoredIntakeIssue) -> IntakeIssue:
        return cls(
            file=issue.file,
            line=issue.line,
            column=issue.column,
            reason=issue.message,
            rows=issue.rows,
            source_id=issue.source_id,
        )


@strawberry.type(
    description="Warnings, or quarantined rows, of a source's latest finished sync: how many, "
    "and the first few."
)
class IntakeIssues:
    run_id: int | None = strawberry.field(
        description="The sync run they belong to: the source's latest finished one (none before "
        "its first sync)."
    )
    total: int
    sample: list[IntakeIssue] = strawberry.field(
        description=f"The first {INTAKE_SAMPLE}, in the order the source reported them."
    )

    @classmethod
    def of(cls, view: IntakeView | None, *, quarantined: bool) -> IntakeIssues:
        if view is None:
            return cls(run_id=None, total=0, sample=[])
        issues = view.quarantined_sample if quarantined else view.warning_sample
        return cls(
            run_id=view.run_id,
            total=view.quarantined if quarantined else view.warnings,
            sample=[IntakeIssue.from_issue(issue) for issue in issues],
        )


@strawberry.type(
    description="A roster sync waiting for an administrator's confirmation (confirmRosterSync), "
    "and what applying it would change."
)
class HeldSync:
    run_id: int = strawberry.field(description="The run to pass to confirmRosterSync.")
    held_at: datetime.datetime | None = strawberry.field(description="When it was held.")
    active_students_before: int | None = strawberry.field(
        description="The source's active students now, as its last applied sync left them."
    )
    active_students_after: int | None = strawberry.field(
        description="The source's active students once this sync is applied."
    )


@strawberry.type(description="A roster source of the district and how its syncs went.")
class DataSource(relay.Node):
    name: str
    kind: str = strawberry.field(
        description="The roster source plugin that reads it, e.g. local, oneroster_csv, "
        "oneroster_drop, oneroster_rest, clever. A String, not an enum: third-party plugins add kinds."
    )
    configured: bool
    last_status: SyncRunStatus | None = strawberry.field(
        description="How the latest sync went; null before the first."
    )
    last_attempt_at: datetime.datetime | None
    last_success_at: datetime.datetime | None
    last_error: str | None
    records: int | None = strawberry.field(
        description="Records of the source's roster as its last applied sync left it (after a "
        "delta: those of the full sync before it, with the changes applied)."
    )
    active_students: int | None = strawberry.field(
        description="Distinct active students in this source at its last applied sync."
    )
    last_sync_mode: SyncMode | None = strawberry.field(
        description="What the last applied sync delivered: the whole roster, or only changes."
    )
    last_full_sync_at: datetime.datetime | None = strawberry.field(
        description="When the source's whole roster was last applied; deltas in between are "
        "reconciled by the next full sync."
    )
    excluded: SourceExclusions | None
    server_count: int | None = strawberry.field(
        description="The source server's own total, when it states one (a cross-check)."
    )
    held: bool
    held_sync: HeldSync | None = strawberry.field(
        description="The sync waiting for confirmation, with what it would change; null when "
        "nothing is held."
    )
    warnings: IntakeIssues = strawberry.field(
        description="What the latest finished sync read past without changing the count: "
        "unknown or misspelt columns, unreadable dates, another text encoding."
    )
    quarantined: IntakeIssues = strawberry.field(
        description="Rows the latest finished sync could not classify (no id, no role): not "
        "counted. More than the source's max_quarantined_share holds the sync."
    )
    roster_status: RosterStatus = strawberry.field(
        description="This source's state: NEVER_SYNCED, FAILED, HELD or CURRENT, since when "
        "and why."
    )

    @classmethod
    def from_view(cls, view: DataSourceView) -> DataSource:
        excluded = view.excluded
        return cls(
            name=view.name,
            kind=view.kind,
            configured=view.configured,
            last_status=view.last_status,
            last_attempt_at=view.last_attempt_at,
            last_success_at=view.last_success_at,
            last_error=view.last_error,
            records=view.records,
            active_students=view.active_students,
            excluded=SourceExclusions(
                staff=excluded.get("staff", 0),
                inactive=excluded.get("inactive", 0),
                disabled=excluded.get("disabled", 0),
                duplicate=excluded.get("duplicate", 0),
                other_role=excluded.get("other_role", 0),
            )
            if excluded
            else None,
            server_count=view.server_count,
            held=view.held,
            held_sync=HeldSync(
                run_id=view.held_run.run_id,
                held_at=view.held_run.held_at,
                active_students_before=view.held_run.active_before,
                active_students_after=view.held_run.active_after,
            )
            if view.held_run
            else None,
            warnings=IntakeIssues.of(view.intake, quarantined=False),
            quarantined=IntakeIssues.of(view.intake, quarantined=True),
            roster_status=RosterStatus.from_status(view.roster),
            last_sync_mode=view.last_sync_mode,
            last_full_sync_at=view.last_full_sync_at,
        )

    permission: ClassVar[Permission] = Permission.MANAGE_SETTINGS

    @classmethod
    def resolve_id(cls, root: Self, *, info: Info) -> str:
        # A name is unique only within its district (every district has "local"): with the
        # district's slug the id is unique across districts too, as a client's cache expects.
        return f"{info.context.principal.district_slug}/{root.name}"

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[DataSource | None]:
        views = await context.service.data_sources(context.principal.district_id)
        by_key = {f"{context.principal.district_slug}/{view.name}": view for view in views}
        return [cls.from_view(by_key[key]) if key in by_key else None for key in keys]


@strawberry.type(description="A student who counts against the license, and why.")
class ActiveStudent(relay.Node):
    id: relay.NodeID[int]
    source: str = strawberry.field(description="The roster source the record came from.")
    source_id: str = strawberry.field(description="The student's id in that source.")
    person_key: str = strawberry.field(description="Records sharing it are one person.")
    given_name: str | None
    family_name: str | None
    username: str | None
    grade: str | None
    school: str | None
    schools: list[str]
    graduation_year: int | None
    last_modified: datetime.datetime | None
    role: RosterRole
    status: EnrollmentStatus
    raw_status: str | None = strawberry.field(
        description="The status exactly as the source sent it."
    )
    enabled: bool
    why_counted: str

    @classmethod
    def from_row(cls, row: ActiveStudentRow) -> ActiveStudent:
        return cls(
            id=row.id,
            source=row.source,
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
            role=row.role,
            status=row.status,
            raw_status=row.raw_status,
            enabled=row.enabled,
            why_counted=row.why_counted,
        )

    permission: ClassVar[Permission] = Permission.MANAGE_SETTINGS

    @classmethod
    async def load(cls, context: GraphContext, keys: Sequence[str]) -> list[ActiveStudent | None]:
        """Records of the district that count against its license now; any other is null."""
        district_id = context.principal.district_id
        return await load_by_row_id(
            keys, lambda ids: context.service.active_students_by_id(district_id, ids), cls.from_row
        )


@strawberry.type(description="A page of the active-student report, in record order.")
class ActiveStudentConnection(relay.Connection[ActiveStudent]):
    nodes: list[ActiveStudent] = strawberry.field(
        description="The page's students: edges without the cursors."
    )
    count_rows: strawberry.Private[Counter]

    @strawberry.field(
        description="Students matching the filter, on every page (counted only when asked for)."
    )
    async def total_count(self) -> int:
        return await self.count_rows()


@strawberry.input(description="Narrows the active-student report; fields combine with AND.")
class ActiveStudentFilterInput:
    source: str | None = None
    school: str | None = None
    grade: str | None = None
    graduation_year: int | None = None
    modified_before: datetime.date | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of a name, username or id; letter case does not matter."
    )

    def to_filter(self) -> ActiveStudentFilter:
        return ActiveStudentFilter(
            source=self.source,
            school=self.school,
            grade=self.grade,
            graduation_year=self.graduation_year,
            modified_before=self.modified_before,
            search=self.search,
        )


ReviewReason = review.ReviewReason
strawberry.enum(review.ReviewReason, description="Why a group is worth a look.")


@strawberry.type(
    description="Counted students worth a look, and what fixing them would free; or "
    "(QUARANTINED_ROWS, INTAKE_WARNINGS) what the rosters in force could not classify or read "
    "past."
)
class ReviewGroup:
    reason: ReviewReason
    explanation: str
    students: int = strawberry.field(description="Counted students in the group (0 for intake).")
    records: int = strawberry.field(
        description="Roster records in the group; quarantined rows or warnings for intake."
    )
    licenses_freed: int = strawberry.field(
        description="Licenses freed if these students were made inactive at their source."
    )
    examples: list[str] = strawberry.field(
        description='A few of them, as "source:id" (intake: "source:file:line: reason").'
    )

    @classmethod
    def from_group(cls, group: review.ReviewGroup) -> ReviewGroup:
        return cls(
            reason=group.reason,
            explanation=group.explanation,
            students=group.students,
            records=group.records,
            licenses_freed=group.licenses_freed,
            examples=group.examples,
        )
