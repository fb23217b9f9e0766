"""The service the API and the command line call: one object per process, async at its edges.

Database work runs in worker threads so a slow disk never stalls the event loop; every method
takes the caller's district from its principal, never from an argument.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError

from db.session import Database, lock_district
from licensing.domain import rules
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.domain.clock import utc_now
from licensing.domain.error_codes import ErrorCode
from licensing.domain.forecast import DailyPoint, Forecast, forecast
from licensing.domain.rules import AlertSpec, RosterStatus
from licensing.orchestration.change_hub import ChangeHub
from licensing.orchestration.license_updates import ForceUpdateOutcome, LicenseUpdater
from licensing.orchestration.notifications import dispatch_alert_changes
from licensing.orchestration.scheduler import JobState, district_jobs
from licensing.orchestration.sync import RosterSync
from licensing.orchestration.webhooks import WebhookDeliveryRecord, deliver_pending, delivery_log
from licensing.problems import Problem
from licensing.settings import Settings
from licensing.storage.alert_state import (
    AlertRecord,
    agrees,
    alerts_by_id,
    reconcile_alerts,
    resolved_alerts,
)
from licensing.storage.audit import (
    AuditEntry,
    AuditFilter,
    audit_entries_by_id,
    audit_page,
    count_audit_events,
    record_event,
)
from licensing.storage.count_review import ReviewGroup, count_review, keep_review
from licensing.storage.dashboard_sessions import (
    LiveSignIns,
    SessionLifetimes,
    end_session,
    live_sign_ins,
    start_session,
    touch_session,
)
from licensing.storage.data_sources import DataSourceView, data_sources
from licensing.storage.deactivated_students import (
    DeactivatedStudentRow,
    count_deactivated_students,
    deactivated_student_page,
    deactivated_students_by_id,
)
from licensing.storage.district_state import (
    AlertPolicy,
    DistrictSnapshot,
    LicenseView,
    ThresholdSettingsView,
    current_alerts,
    facts_for,
    license_view,
    read_snapshot,
    reevaluate_alerts,
    threshold_settings_view,
)
from licensing.storage.district_version import DistrictVersion, district_version
from licensing.storage.districts import district_time_zone
from licensing.storage.history import (
    KEEP_DAYS,
    UsageDay,
    district_today,
    take_usage_snapshot,
    usage_history,
)
from licensing.storage.local_students import LOCAL_SOURCE, RefusedId, check_local_students
from licensing.storage.paging import Page, PageRequest
from licensing.storage.persisted_queries import (
    RegisteredDocument,
    find_document,
    register_document,
)
from licensing.storage.roster import UsageCounts, current_usage
from licensing.storage.roster_changes import (
    RosterGuard,
    SyncOutcome,
    apply_enabled_switch,
    apply_roster,
    guard_for,
)
from licensing.storage.sign_in_cache import SessionSignIn, SignInCache
from licensing.storage.sign_in_limit import FailedSignIns
from licensing.storage.student_report import (
    ActiveStudentFilter,
    ActiveStudentRow,
    active_student_page,
    active_students_by_id,
    count_active_students,
)
from licensing.storage.threshold import THRESHOLD_ACTION, THRESHOLD_FIELD, save_threshold
from licensing.storage.tokens import Principal, SignedIn, expired_at
from plugins.manager import PluginManager

logger = logging.getLogger(__name__)

_Read = TypeVar("_Read")


NO_LICENSE = Problem(
    ErrorCode.LICENSE_NOT_AVAILABLE,
    "No license has been received for this district yet. Use Force License Update once the "
    "license is in place.",
)


@dataclass(frozen=True)
class DistrictState:
    """Everything the Licensing tab shows, as of one moment."""

    snapshot: DistrictSnapshot
    license: LicenseView | None
    usage: UsageCounts
    settings: ThresholdSettingsView
    alerts: list[AlertRecord]
    roster: RosterStatus
    # When this state may change with the passing of time alone, other than at the district's
    # midnight (which its version carries): a source failing for the SYNC_FAILING tolerance.
    # None when no such moment is ahead. Answers kept by version expire then (graph/answers.py).
    unchanged_until: datetime | None = None


@dataclass(frozen=True)
class ThresholdChange:
    state: DistrictState
    problems: list[Problem]


@dataclass(frozen=True)
class StudentsUpdate:
    state: DistrictState
    changed: int
    problems: list[Problem]
    # The ids that refused the change (unknown, or a roster source's), each once.
    refused: list[RefusedId] = field(default_factory=list)


@dataclass(frozen=True)
class ForcedUpdate:
    state: DistrictState
    outcome: ForceUpdateOutcome


class LicensingService:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        plugins: PluginManager,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.database = database
        self.plugins = plugins
        self.clock = clock
        self.license_updater = LicenseUpdater(
            settings=settings, database=database, plugins=plugins, clock=clock
        )
        self.roster_sync = RosterSync(
            settings=settings, database=database, plugins=plugins, clock=clock
        )
        self.failed_sign_ins = FailedSignIns(
            settings=settings.sign_in, database=database, clock=clock
        )
        self.alert_policy = AlertPolicy.from_settings(settings)
        # Live tokens and sessions of this worker (licensing/storage/sign_in_cache.py).
        self.sign_ins = SignInCache(settings.sign_in.cache_size)
        self._change_hub: ChangeHub[DistrictState] | None = None

    @property
    def change_hub(self) -> ChangeHub[DistrictState]:
        """This worker's one reader of the change log for its live subscriptions
        (licensing/orchestration/change_hub.py), made on first use."""
        if self._change_hub is None:
            self._change_hub = ChangeHub[DistrictState](
                settings=self.settings,
                database=self.database,
                run_read=self._quick_read,
                read_state=self.district_state,
                read_sign_ins=self.live_sign_ins,
                clock=self.clock,
            )
        return self._change_hub

    async def stop_live_updates(self) -> None:
        """Stop reading the change log for live subscriptions (at the app's shutdown)."""
        if self._change_hub is not None:
            await self._change_hub.stop()

    async def authenticate(self, secret: str) -> Principal | None:
        signed_in = await self.token_sign_in(secret)
        return signed_in.principal if signed_in is not None else None

    async def token_sign_in(self, secret: str) -> SignedIn | None:
        """The token's principal and its district's version now, or None when the token is
        unknown or revoked: in the common case one statement (the version's read)."""
        return await self._quick_read(self._token_sign_in, secret)

    def _token_sign_in(self, secret: str) -> SignedIn | None:
        return self.sign_ins.token(self.database, secret, now=self.clock())

    async def token_expired_at(self, secret: str) -> datetime | None:
        """When a token that no longer signs in expired; None when it is not an expired token
        (unknown, revoked, or still live). For wording a refusal only."""
        return await self._quick_read(self._token_expired_at, secret)

    def _token_expired_at(self, secret: str) -> datetime | None:
        with self.database.read_connection() as connection:
            return expired_at(connection, secret=secret, now=self.clock())

    @property
    def session_lifetimes(self) -> SessionLifetimes:
        return SessionLifetimes(
            idle=timedelta(minutes=self.settings.sign_in.session_idle_minutes),
            absolute=timedelta(hours=self.settings.sign_in.session_lifetime_hours),
        )

    async def start_session(self, principal: Principal) -> tuple[str, datetime]:
        """A new Licensing tab session for a signed-in token: its id, for the cookie, and when it
        ends at the latest (its absolute lifetime, or its token's expiry when sooner)."""

        def write() -> tuple[str, datetime]:
            with self.database.write() as session:
                return start_session(
                    session, principal=principal, now=self.clock(), lifetimes=self.session_lifetimes
                )

        return await to_thread.run_sync(write)

    async def session_principal(self, session_id: str) -> Principal | None:
        """Who a Licensing tab session belongs to, or None when it has ended."""
        signed_in = await self.session_sign_in(session_id)
        return signed_in.principal if signed_in is not None else None

    async def session_sign_in(self, session_id: str) -> SignedIn | None:
        """A Licensing tab session's principal and its district's version now, or None when the
        session has ended; records its use when due (a write, at most once a minute)."""
        found = await self._quick_read(self._session_sign_in, session_id)
        if found is None:
            return None
        if found.touch_row_id is not None:
            await to_thread.run_sync(self._touch_session, found.touch_row_id)
        return found.signed_in

    def _session_sign_in(self, session_id: str) -> SessionSignIn | None:
        return self.sign_ins.dashboard_session(self.database, session_id, now=self.clock())

    def _touch_session(self, session_row_id: int) -> None:
        with self.database.write() as session:
            touch_session(
                session,
                session_row_id=session_row_id,
                now=self.clock(),
                lifetimes=self.session_lifetimes,
            )

    async def end_session(self, session_id: str) -> None:
        def write() -> None:
            with self.database.write() as session:
                end_session(session, session_id=session_id, now=self.clock())
            self.sign_ins.forget_session(session_id)

        await to_thread.run_sync(write)

    async def record_failed_sign_in(self, client_address: str) -> int | None:
        """Count a failed sign-in from this address; the seconds to wait if it is over the
        limit (licensing/storage/sign_in_limit.py)."""
        return await to_thread.run_sync(self.failed_sign_ins.record_failure, client_address)

    async def district_state(self, district_id: int) -> DistrictState:
        state = await self._quick_read(self._current_district_state, district_id)
        if state is None:  # the stored alerts must be brought in line: a write, in a thread
            state = await to_thread.run_sync(self.read_district_state, district_id)
        return state

    async def live_sign_ins(self, district_id: int) -> LiveSignIns:
        """The district's tokens and tab sessions that can still sign in now: two statements,
        which live subscriptions share after a change (graph/subscriptions.py)."""

        def read(_: object) -> LiveSignIns:
            with self.database.read_connection() as connection:
                return live_sign_ins(connection, district_id=district_id, now=self.clock())

        return await self._quick_read(read, None)

    async def district_version(self, district_id: int) -> DistrictVersion:
        """The district's version now (licensing/storage/district_version.py): one statement."""
        return await self._quick_read(self._district_version, district_id)

    def _district_version(self, district_id: int) -> DistrictVersion:
        return district_version(self.database, district_id, now=self.clock())

    async def find_document(self, district_id: int, sha256: str) -> RegisteredDocument | None:
        """The registered GraphQL document with this hash the district may run, if any."""

        def read() -> RegisteredDocument | None:
            with self.database.read() as session:
                return find_document(session, sha256=sha256, district_id=district_id)

        return await self._quick_read(lambda _: read(), None)

    async def register_document(
        self, district_id: int, sha256: str, document: str, *, registered_by: str
    ) -> bool:
        """Register a client's document for its district; RegistrationRefused past the limit."""

        def write() -> bool:
            with self.database.write() as session:
                lock_district(session, district_id)  # the limit holds under concurrent clients
                return register_document(
                    session,
                    sha256=sha256,
                    document=document,
                    district_id=district_id,
                    registered_by=registered_by,
                    now=self.clock(),
                    max_per_district=self.settings.persisted_queries.max_per_district,
                )

        return await to_thread.run_sync(write)

    async def _quick_read(self, read: Callable[[Any], _Read], argument: Any) -> _Read:
        """Run a short read of every request: in place on SQLite, in a thread otherwise.

        In WAL mode a SQLite read never waits for a writer and takes a fraction of a
        millisecond, less than handing it to a thread and back; a PostgreSQL read crosses the
        network, so it must not hold up the event loop.
        """
        if self.database.is_sqlite:
            return read(argument)
        return await to_thread.run_sync(read, argument)

    def _current_district_state(self, district_id: int) -> DistrictState | None:
        """The tab's state, or None when its stored alerts no longer agree with the facts."""
        with self.database.read() as session:
            snapshot = read_snapshot(session, district_id=district_id)
        now = self.clock()
        alerts = current_alerts(snapshot, now=now, policy=self.alert_policy)
        if not agrees(snapshot.open_alerts, alerts):
            return None
        return self._state(snapshot, alerts, snapshot.open_alerts, now=now)

    def read_district_state(self, district_id: int) -> DistrictState:
        """The tab's state; stored alerts are brought in line first when the facts moved them
        (the passing of midnight, for instance, needs no event to expire a license)."""
        now = self.clock()
        with self.database.read() as session:
            snapshot = read_snapshot(session, district_id=district_id)
        alerts = current_alerts(snapshot, now=now, policy=self.alert_policy)
        open_alerts = snapshot.open_alerts
        if not agrees(open_alerts, alerts):
            with self.database.write() as session:
                lock_district(session, district_id)
                snapshot = read_snapshot(session, district_id=district_id)
                alerts = current_alerts(snapshot, now=now, policy=self.alert_policy)
                open_alerts = reconcile_alerts(
                    session, district_id=district_id, current=alerts, now=now
                )
        return self._state(snapshot, alerts, open_alerts, now=now)

    def _state(
        self,
        snapshot: DistrictSnapshot,
        alerts: list[AlertSpec],
        open_alerts: list[AlertRecord],
        *,
        now: datetime,
    ) -> DistrictState:
        order = {spec.kind: index for index, spec in enumerate(alerts)}
        roster = self.alert_policy.district_roster(snapshot)
        facts = facts_for(snapshot, self.alert_policy)
        unchanged_until = (
            rules.sync_failing_due(
                rosters=facts.rosters,
                license_failing_since=facts.sync_failing_since,
                now=now,
                tolerance=self.alert_policy.sync_failing_tolerance,
            )
            if facts is not None
            else None
        )
        return DistrictState(
            snapshot=snapshot,
            license=license_view(snapshot, now=now, roster=roster),
            usage=snapshot.usage,
            settings=threshold_settings_view(snapshot),
            alerts=sorted(open_alerts, key=lambda alert: order.get(alert.kind, len(order))),
            roster=roster,
            unchanged_until=unchanged_until,
        )

    def apply_roster(
        self,
        district_id: int,
        *,
        source: str,
        records: list[Any],
        replace: bool,
        actor: str = "command line",
        kind: str = "import",
    ) -> SyncOutcome:
        """Import a source's records through the one path every roster change takes: applied
        with the new counts and alerts in one transaction, or held when it drops too many."""
        guard = self._roster_guard(district_id, source)
        with self.database.write() as session:
            return apply_roster(
                session,
                district_id=district_id,
                source=source,
                records=records,
                replace=replace,
                now=self.clock(),
                actor=actor,
                kind=kind,
                guard=guard,
            )

    async def confirm_roster_sync(
        self, principal: Principal, source: str, run_id: int | None
    ) -> tuple[DistrictState, SyncOutcome]:
        """Apply a held roster change as the administrator decided (refused when superseded)."""
        outcome = await self.roster_sync.confirm(
            district_id=principal.district_id, source=source, actor=principal.actor, run_id=run_id
        )
        state = await to_thread.run_sync(self.read_district_state, principal.district_id)
        return state, outcome

    async def discard_roster_sync(
        self, principal: Principal, source: str, run_id: int
    ) -> tuple[DistrictState, SyncOutcome]:
        """Drop a held roster change as the administrator decided: the roster in force stays."""
        outcome = await self.roster_sync.discard(
            district_id=principal.district_id, source=source, actor=principal.actor, run_id=run_id
        )
        state = await to_thread.run_sync(self.read_district_state, principal.district_id)
        return state, outcome

    def _roster_guard(self, district_id: int, source: str) -> RosterGuard:
        with self.database.read() as session:
            slug = read_snapshot(session, district_id=district_id).district.slug
        return guard_for(self.settings, slug=slug, source=source)

    async def set_local_students_enabled(
        self, principal: Principal, ids: list[str], *, enabled: bool
    ) -> StudentsUpdate:
        return await to_thread.run_sync(self._set_local_students_enabled, principal, ids, enabled)

    def _set_local_students_enabled(
        self, principal: Principal, ids: list[str], enabled: bool
    ) -> StudentsUpdate:
        now = self.clock()
        district_id = principal.district_id
        action = AuditAction.REACTIVATE_STUDENTS if enabled else AuditAction.DEACTIVATE_STUDENTS
        guard = self._roster_guard(district_id, LOCAL_SOURCE)
        changed = 0
        with self.database.write() as session:
            lock_district(session, district_id)
            request = check_local_students(session, district_id=district_id, ids=ids)
            problems = list(request.problems)
            if problems:
                used = current_usage(session, district_id=district_id).active_students
                record_event(
                    session,
                    district_id=district_id,
                    actor=principal.actor,
                    action=action,
                    outcome=AuditOutcome.REJECTED,
                    now=now,
                    old={"used": used},
                    new={"used": used, "ids": ids[:100], "changed": 0},
                    detail="; ".join(problem.message for problem in problems[:10]),
                )
            else:
                changed, outcome = apply_enabled_switch(
                    session,
                    district_id=district_id,
                    source=LOCAL_SOURCE,
                    kind=LOCAL_SOURCE,
                    ids=request.ids,
                    enabled=enabled,
                    action=action,
                    actor=principal.actor,
                    now=now,
                    guard=guard,
                )
                if outcome.problem is not None:
                    problems.append(outcome.problem)
                if outcome.status != "applied":
                    changed = 0
        return StudentsUpdate(
            state=self.read_district_state(district_id),
            changed=changed,
            problems=problems,
            refused=request.refused,
        )

    async def count_review(self, district_id: int) -> list[ReviewGroup]:
        def read() -> list[ReviewGroup]:
            now = self.clock()
            with self.database.read() as session:
                district = read_snapshot(session, district_id=district_id).district
                answer = count_review(
                    session,
                    district_id=district_id,
                    config=self.settings.district(district.slug),
                    now=now,
                    time_zone=district.time_zone,
                )
            if answer.to_keep is not None:
                try:
                    with self.database.write() as session:
                        keep_review(
                            session, district_id=district_id, review=answer.to_keep, now=now
                        )
                except SQLAlchemyError as error:
                    # The answer stands; the next read counts again.
                    logger.warning("The count review could not be kept: %s", type(error).__name__)
            return answer.groups

        return await to_thread.run_sync(read)

    async def active_students(
        self, district_id: int, *, report_filter: ActiveStudentFilter, request: PageRequest
    ) -> Page[ActiveStudentRow]:
        def read() -> Page[ActiveStudentRow]:
            with self.database.read() as session:
                return active_student_page(
                    session, district_id=district_id, report_filter=report_filter, request=request
                )

        return await to_thread.run_sync(read)

    async def count_active_students(
        self, district_id: int, *, report_filter: ActiveStudentFilter
    ) -> int:
        def read() -> int:
            with self.database.read() as session:
                return count_active_students(
                    session, district_id=district_id, report_filter=report_filter
                )

        return await to_thread.run_sync(read)

    async def active_students_by_id(
        self, district_id: int, record_ids: list[int]
    ) -> dict[int, ActiveStudentRow]:
        """Those of the records that are the district's and count against its license now."""

        def read() -> dict[int, ActiveStudentRow]:
            with self.database.read() as session:
                return active_students_by_id(
                    session, district_id=district_id, record_ids=record_ids
                )

        return await to_thread.run_sync(read)

    async def deactivated_students(
        self, district_id: int, *, search: str | None, request: PageRequest
    ) -> Page[DeactivatedStudentRow]:
        """A page of the district's deactivated local students (those reactivateStudents takes)."""

        def read() -> Page[DeactivatedStudentRow]:
            with self.database.read() as session:
                return deactivated_student_page(
                    session, district_id=district_id, search=search, request=request
                )

        return await to_thread.run_sync(read)

    async def count_deactivated_students(self, district_id: int, *, search: str | None) -> int:
        def read() -> int:
            with self.database.read() as session:
                return count_deactivated_students(session, district_id=district_id, search=search)

        return await to_thread.run_sync(read)

    async def deactivated_students_by_id(
        self, district_id: int, record_ids: list[int]
    ) -> dict[int, DeactivatedStudentRow]:
        """Those of the records that are the district's deactivated local students now."""

        def read() -> dict[int, DeactivatedStudentRow]:
            with self.database.read() as session:
                return deactivated_students_by_id(
                    session, district_id=district_id, record_ids=record_ids
                )

        return await to_thread.run_sync(read)

    async def audit_log(
        self,
        district_id: int,
        *,
        request: PageRequest,
        actions: Collection[AuditAction] | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> Page[AuditEntry]:
        """A page of the audit log: of these actions only (all when None), from the district's
        day ``since`` through its day ``until``, both inclusive, in the district's time zone.
        ValueError for ``until`` before ``since``, as for a bad page request."""
        if since is not None and until is not None and until < since:
            raise ValueError(f"until ({until}) is before since ({since}): no day is in between.")

        def read() -> Page[AuditEntry]:
            with self.database.read() as session:
                zone = district_time_zone(session, district_id=district_id)
                keep = AuditFilter(
                    actions=frozenset(actions) if actions is not None else None,
                    since=rules.district_day_start(since, zone) if since else None,
                    until=rules.district_day_start(until + timedelta(days=1), zone)
                    if until
                    else None,
                )
                return audit_page(session, district_id=district_id, request=request, keep=keep)

        return await to_thread.run_sync(read)

    async def count_audit_events(self, district_id: int) -> int:
        def read() -> int:
            with self.database.read() as session:
                return count_audit_events(session, district_id=district_id)

        return await to_thread.run_sync(read)

    async def audit_entries_by_id(
        self, district_id: int, event_ids: list[int]
    ) -> dict[int, AuditEntry]:
        def read() -> dict[int, AuditEntry]:
            with self.database.read() as session:
                return audit_entries_by_id(session, district_id=district_id, event_ids=event_ids)

        return await to_thread.run_sync(read)

    async def alerts_by_id(self, district_id: int, alert_ids: list[int]) -> dict[int, AlertRecord]:
        def read() -> dict[int, AlertRecord]:
            with self.database.read() as session:
                return alerts_by_id(session, district_id=district_id, alert_ids=alert_ids)

        return await to_thread.run_sync(read)

    async def take_usage_snapshot(self, district_id: int) -> None:
        """Record today's counts for the usage history (the scheduler calls it daily)."""

        def write() -> None:
            with self.database.write() as session:
                district = read_snapshot(session, district_id=district_id).district
                take_usage_snapshot(
                    session, district_id=district_id, now=self.clock(), time_zone=district.time_zone
                )

        await to_thread.run_sync(write)

    async def scheduled_jobs(self, district_id: int) -> list[JobState]:
        return await to_thread.run_sync(district_jobs, self.database, district_id)

    async def data_sources(self, district_id: int) -> list[DataSourceView]:
        def read() -> list[DataSourceView]:
            with self.database.read() as session:
                slug = read_snapshot(session, district_id=district_id).district.slug
                return data_sources(
                    session,
                    district_id=district_id,
                    configured=self.settings.district(slug).roster_sources,
                )

        return await to_thread.run_sync(read)

    async def alert_history(self, district_id: int, *, limit: int = 200) -> list[AlertRecord]:
        def read() -> list[AlertRecord]:
            with self.database.read() as session:
                return resolved_alerts(session, district_id=district_id, limit=limit)

        return await to_thread.run_sync(read)

    async def usage_history(self, district_id: int, days: int) -> list[UsageDay]:
        """The district's daily snapshots of the last ``days`` days (its today included)."""

        def read() -> list[UsageDay]:
            with self.database.read() as session:
                district = read_snapshot(session, district_id=district_id).district
                today = district_today(self.clock(), district.time_zone)
                return usage_history(session, district_id=district_id, days=days, today=today)

        return await to_thread.run_sync(read)

    async def forecast(self, district_id: int, lead_time_days: int) -> Forecast | None:
        """The growth forecast from the kept history and today's live count; None without a
        license (there is no limit to project)."""

        def read() -> Forecast | None:
            with self.database.read() as session:
                snapshot = read_snapshot(session, district_id=district_id)
                if snapshot.license is None:
                    return None
                today = district_today(self.clock(), snapshot.district.time_zone)
                history = usage_history(
                    session, district_id=district_id, days=KEEP_DAYS, today=today
                )
            total = snapshot.license.total
            # Today's point is the live count, fresher than any snapshot taken earlier today.
            points = [day.point() for day in history if day.day != today]
            points.append(DailyPoint(today, snapshot.usage.active_students, total))
            return forecast(
                points,
                today=today,
                total=total,
                threshold=snapshot.threshold,
                lead_time_days=lead_time_days,
            )

        return await to_thread.run_sync(read)

    async def set_threshold(self, principal: Principal, students_remaining: int) -> ThresholdChange:
        return await to_thread.run_sync(self._set_threshold, principal, students_remaining)

    def _set_threshold(self, principal: Principal, students_remaining: int) -> ThresholdChange:
        now = self.clock()
        district_id = principal.district_id
        with self.database.write() as session:
            lock_district(session, district_id)
            snapshot = read_snapshot(session, district_id=district_id)
            if snapshot.license is None:
                problems = [NO_LICENSE]
            else:
                problems = [
                    Problem(problem.code, problem.message, field=THRESHOLD_FIELD)
                    for problem in rules.threshold_problems(
                        students_remaining, total=snapshot.license.total
                    )
                ]
            old = snapshot.threshold
            record_event(
                session,
                district_id=district_id,
                actor=principal.actor,
                action=THRESHOLD_ACTION,
                outcome=AuditOutcome.REJECTED if problems else AuditOutcome.CHANGED,
                now=now,
                old=old,
                new=students_remaining,
                detail="; ".join(problem.message for problem in problems) or None,
            )
            if not problems:
                save_threshold(session, district_id=district_id, value=students_remaining, now=now)
                reevaluate_alerts(
                    session, district_id=district_id, now=now, policy=self.alert_policy
                )
        return ThresholdChange(state=self.read_district_state(district_id), problems=problems)

    async def force_license_update(self, principal: Principal) -> ForcedUpdate:
        outcome = await self.license_updater.force_update(
            district_id=principal.district_id, actor=principal.actor
        )
        return ForcedUpdate(state=await self.district_state(principal.district_id), outcome=outcome)

    async def dispatch_notifications(self) -> int:
        """The scheduler's notification step: alert changes to the plugins' hooks."""
        return await dispatch_alert_changes(
            database=self.database, plugins=self.plugins, settings=self.settings, clock=self.clock
        )

    async def deliver_webhooks(self) -> int:
        """Send the webhook deliveries that are due; return how many were delivered."""
        return await deliver_pending(
            database=self.database, settings=self.settings, clock=self.clock
        )

    async def webhook_deliveries(
        self, district_id: int, *, limit: int = 100
    ) -> list[WebhookDeliveryRecord]:
        """The district's webhook delivery log, newest first."""

        def read() -> list[WebhookDeliveryRecord]:
            with self.database.read() as session:
                return delivery_log(session, district_id=district_id, limit=limit)

        return await to_thread.run_sync(read)

    async def license_check(self, district_id: int, additional_students: int) -> rules.LicenseCheck:
        state = await self.district_state(district_id)
        if state.license is None:
            return rules.LicenseCheck(allowed=False, reason=rules.LicenseCheckReason.NO_LICENSE)
        return rules.license_check(
            status=state.license.status,
            used=state.license.used,
            total=state.license.total,
            overage_allowance=state.license.overage_allowance,
            additional_students=additional_students,
        )
