"""Asking a license source for a district's license and keeping what it says.

A refresh verifies the signed document, checks that it is this district's and not older than the
one held, and stores it with the sync outcome, alerts and audit event in one transaction. A failed
refresh never touches the license: the last good one stays, marked stale.

Force License Update adds three rules: presses that arrive while a request is under way share it;
within the cooldown a press is answered with the current license and the seconds to wait; and a
press waits for a slow source only ``force_update_wait_seconds``, then is answered that the update
is in progress while it goes on in the background, its outcome stored (and announced to live
subscribers) like any refresh's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from sqlmodel import Session, select

from db.models import District, License, LicenseSyncState
from db.session import Database, lock_district
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.domain.error_codes import ErrorCode
from licensing.domain.states import LicenseSyncStatus
from licensing.metrics import count_license_refresh
from licensing.problems import Problem
from licensing.settings import Settings
from licensing.storage import signing
from licensing.storage.audit import record_event
from licensing.storage.district_state import AlertPolicy, reevaluate_alerts
from licensing.storage.districts import district_ref
from licensing.storage.threshold import lower_threshold_to_license
from plugins.manager import PluginManager, UnknownSourceError, source_options
from plugins.records import DamagedLicenseError, DistrictRef, SignedLicense, SourceError

FORCED_ACTION = AuditAction.FORCE_LICENSE_UPDATE
REFRESH_ACTION = AuditAction.LICENSE_REFRESH

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshOutcome:
    updated: bool
    problem: Problem | None = None
    # For the operator (the command line), never stored or shown in the API: the file path,
    # address or parser text behind a failure, as written to the log.
    detail: str | None = None
    # What the update changed besides the license, for the administrator (a lowered threshold).
    notices: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class ForceUpdateOutcome:
    updated: bool
    throttled: bool
    retry_after_seconds: int | None = None
    problem: Problem | None = None
    notices: tuple[Problem, ...] = ()
    # The source is still being asked: the outcome is stored when it answers.
    in_progress: bool = False


IN_PROGRESS = ForceUpdateOutcome(updated=False, throttled=False, in_progress=True)


class LicenseUpdater:
    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        plugins: PluginManager,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.database = database
        self.plugins = plugins
        self.clock = clock
        self._in_flight: dict[int, asyncio.Task[ForceUpdateOutcome]] = {}

    @property
    def cooldown(self) -> timedelta:
        return timedelta(seconds=self.settings.force_update_cooldown_seconds)

    async def force_update(self, *, district_id: int, actor: str) -> ForceUpdateOutcome:
        """Force License Update: one upstream request however many presses arrive together."""
        task = self._in_flight.get(district_id)
        if task is None:
            task = asyncio.create_task(self._forced(district_id=district_id, actor=actor))
            # Held here until done, so a request left to finish in the background is not
            # collected half-way; its outcome is in the database, so nothing else needs it.
            self._in_flight[district_id] = task
            task.add_done_callback(lambda done: self._finished(district_id, done))
        try:
            # Shielded: neither a caller going away nor the wait running out cancels the
            # request that the others wait on.
            return await asyncio.wait_for(
                asyncio.shield(task), timeout=self.settings.force_update_wait_seconds
            )
        except TimeoutError:
            return IN_PROGRESS

    async def _forced(self, *, district_id: int, actor: str) -> ForceUpdateOutcome:
        try:
            return await self._claim_and_refresh(district_id=district_id, actor=actor)
        except Exception as error:
            # No one may be waiting any more: the failure must reach the log and the database.
            problem = await self._unexpected_failure(
                error, district_id=district_id, actor=actor, forced=True
            )
            return ForceUpdateOutcome(updated=False, throttled=False, problem=problem)

    def _finished(self, district_id: int, task: asyncio.Task[ForceUpdateOutcome]) -> None:
        self._in_flight.pop(district_id, None)
        if not task.cancelled():
            task.exception()  # seen: the waiters, or the log, have it

    async def _claim_and_refresh(self, *, district_id: int, actor: str) -> ForceUpdateOutcome:
        retry_after = await to_thread.run_sync(self._claim_forced_update, district_id, actor)
        if retry_after is not None:
            count_license_refresh(outcome="throttled", action=FORCED_ACTION)
            return ForceUpdateOutcome(
                updated=False, throttled=True, retry_after_seconds=retry_after
            )
        outcome = await self.refresh(district_id=district_id, actor=actor, forced=True)
        return ForceUpdateOutcome(
            updated=outcome.updated,
            throttled=False,
            problem=outcome.problem,
            notices=outcome.notices,
        )

    def _claim_forced_update(self, district_id: int, actor: str) -> int | None:
        """Seconds to wait when still cooling down; otherwise start the cooldown and return None."""
        with self.database.write() as session:
            lock_district(session, district_id)  # two workers must not both start a cooldown
            # Read after the lock: a time read while waiting for it would make the wait look
            # longer than the cooldown (retry in 61 s) and could start the cooldown in the past.
            now = self.clock()
            state = _sync_state(session, district_id)
            if state.last_forced_at is not None:
                wait = state.last_forced_at + self.cooldown - now
                if wait > timedelta(0):
                    seconds = max(1, math.ceil(wait.total_seconds()))
                    record_event(
                        session,
                        district_id=district_id,
                        actor=actor,
                        action=FORCED_ACTION,
                        outcome=AuditOutcome.THROTTLED,
                        now=now,
                        detail=f"Pressed again within the cooldown; retry in {seconds} s.",
                    )
                    return seconds
            state.last_forced_at = now
            return None

    async def refresh(
        self, *, district_id: int, actor: str, forced: bool = False
    ) -> RefreshOutcome:
        """Ask the district's license source now and keep what it returns, if it is valid."""
        district_ref, source_name = await to_thread.run_sync(self._district_ref, district_id)
        options = dict(self.settings.district(district_ref.slug).license_options)
        # What is stored and shown (lastSyncError, the payload's errors, the audit log) is the
        # problem's message, written for the administrator; ``detail`` (a path on this server,
        # an address, a parser's or library's words) goes only to the log, with the request id.
        detail: str | None = None
        try:
            source = self.plugins.license_source(source_name)
            options = source_options(source, options, district_slug=district_ref.slug)
            signed = await _fetch(source, district_ref, options)
            keys = signing.trusted_keys(
                self.settings.license_public_keys, self.settings.trusted_keys_dir
            )
            terms = signing.verify_license(
                signed, keys=keys, district_slug=district_ref.slug, now=self.clock()
            )
        except signing.LicenseRejected as rejected:
            problem = Problem(rejected.code, rejected.message)
            detail = rejected.detail
        except DamagedLicenseError as error:
            # The source answered, but with an altered document: refused like a bad signature.
            problem = Problem(
                ErrorCode.BAD_SIGNATURE,
                str(error)
                or "The license document was altered or damaged, so its signature cannot "
                "match. The last good license is kept.",
            )
            detail = error.detail
        except SourceError as error:
            problem = Problem(ErrorCode.LICENSE_SOURCE_UNAVAILABLE, str(error))
            detail = error.detail
        except UnknownSourceError as error:
            problem = Problem(ErrorCode.LICENSE_SOURCE_UNAVAILABLE, str(error))
        except Exception as error:  # a plugin's bug must not lose the last good license
            problem = Problem(
                ErrorCode.LICENSE_SOURCE_UNAVAILABLE,
                f"The license source {source_name!r} failed unexpectedly; the last good license "
                "is kept. The service log has the details.",
            )
            detail = f"{type(error).__name__}: {error}"
            logger.error(
                "The license source %r of district %s failed unexpectedly",
                source_name,
                district_ref.slug,
                exc_info=error,
                extra={"district": district_ref.slug, "code": problem.code.value},
            )
        else:
            try:
                return await to_thread.run_sync(
                    self._store, district_id, source_name, signed, terms, actor, forced
                )
            except Exception as error:
                problem = await self._unexpected_failure(
                    error, district_id=district_id, actor=actor, forced=forced
                )
                return RefreshOutcome(updated=False, problem=problem)
        logger.warning(
            "License refresh of district %s from %r failed: %s: %s%s",
            district_ref.slug,
            source_name,
            problem.code,
            problem.message,
            f" ({detail})" if detail else "",
            extra={"district": district_ref.slug, "code": problem.code.value},
        )
        await to_thread.run_sync(self._record_failure, district_id, problem, actor, forced)
        return RefreshOutcome(updated=False, problem=problem, detail=detail)

    async def _unexpected_failure(
        self, error: Exception, *, district_id: int, actor: str, forced: bool
    ) -> Problem:
        """Log an unexpected failure and record it like any failed refresh, in words without
        the error's text (a database error quotes its SQL). When even recording fails, the
        database is down: the error is raised again, for the caller's outage answer."""
        logger.error("The license update of district %s failed", district_id, exc_info=error)
        problem = Problem(
            ErrorCode.LICENSE_UPDATE_FAILED,
            "The license update failed unexpectedly; the last good license is kept. Try again "
            "later; the service log has the details.",
        )
        try:
            await to_thread.run_sync(self._record_failure, district_id, problem, actor, forced)
        except Exception:
            logger.exception("Could not record the failed update of district %s", district_id)
            raise error from None
        return problem

    def _district_ref(self, district_id: int) -> tuple[DistrictRef, str]:
        with self.database.read() as session:
            district = session.get(District, district_id)
            if district is None:
                raise LookupError(f"district {district_id} does not exist")
        return district_ref(district), self.settings.district(district.slug).license_source

    def _store(
        self,
        district_id: int,
        source_name: str,
        signed: SignedLicense,
        terms: signing.LicenseTerms,
        actor: str,
        forced: bool,
    ) -> RefreshOutcome:
        now = self.clock()
        action = FORCED_ACTION if forced else REFRESH_ACTION
        with self.database.write() as session:
            lock_district(session, district_id)
            held = session.exec(select(License).where(License.district_id == district_id)).first()
            if held is not None and terms.issued_at < held.issued_at:
                problem = Problem(
                    ErrorCode.OLDER_LICENSE,
                    f"The license source returned a license issued {terms.issued_at:%Y-%m-%d}, "
                    f"older than the one held (issued {held.issued_at:%Y-%m-%d}); it was not applied.",
                )
                self._note_failure(session, district_id, problem, actor, action, now)
                return RefreshOutcome(updated=False, problem=problem)
            old = _summary(held)
            # Terms, not bytes: a live server signs every answer anew (its signed_at changes).
            changed = held is None or _held_terms(held) != terms
            values: dict[str, Any] = {  # License's columns
                **_terms_columns(terms),
                "source": source_name,
                "payload": signed.payload,
                "signature": signed.signature.hex(),
                "key_id": signed.key_id,
                "received_at": now,
            }
            if held is None:
                held = License(district_id=district_id, **values)
                session.add(held)
            else:
                for name, value in values.items():
                    setattr(held, name, value)
            state = _sync_state(session, district_id)
            state.last_attempt_at = now
            state.last_success_at = now
            state.last_status = (
                LicenseSyncStatus.UPDATED if changed else LicenseSyncStatus.UNCHANGED
            ).value
            state.last_error = None
            state.failing_since = None
            session.flush()
            record_event(
                session,
                district_id=district_id,
                actor=actor,
                action=action,
                outcome=AuditOutcome.UPDATED if changed else AuditOutcome.UNCHANGED,
                now=now,
                old=old,
                new=_summary(held),
            )
            lowered = lower_threshold_to_license(
                session, district_id=district_id, total=terms.total, actor=actor, now=now
            )
            self._reconcile(session, district_id, now)
        count_license_refresh(outcome="updated" if changed else "unchanged", action=action)
        return RefreshOutcome(updated=changed, notices=(lowered,) if lowered else ())

    def _record_failure(self, district_id: int, problem: Problem, actor: str, forced: bool) -> None:
        now = self.clock()
        with self.database.write() as session:
            lock_district(session, district_id)
            action = FORCED_ACTION if forced else REFRESH_ACTION
            self._note_failure(session, district_id, problem, actor, action, now)

    def _note_failure(
        self,
        session: Session,
        district_id: int,
        problem: Problem,
        actor: str,
        action: AuditAction,
        now: datetime,
    ) -> None:
        state = _sync_state(session, district_id)
        state.last_attempt_at = now
        state.last_status = LicenseSyncStatus.FAILED.value
        state.last_error = problem.message[:1000]
        state.failing_since = state.failing_since or now
        count_license_refresh(outcome="failed", action=action)
        session.flush()
        self._reconcile(session, district_id, now)
        record_event(
            session,
            district_id=district_id,
            actor=actor,
            action=action,
            outcome=AuditOutcome.FAILED,
            now=now,
            detail=f"{problem.code}: {problem.message}",
        )

    def _reconcile(self, session: Session, district_id: int, now: datetime) -> None:
        reevaluate_alerts(
            session,
            district_id=district_id,
            now=now,
            policy=AlertPolicy.from_settings(self.settings),
        )


async def _fetch(source: object, district: DistrictRef, options: Any) -> SignedLicense:
    fetch = source.fetch_license  # type: ignore[attr-defined]
    # ``options`` joined the contract later: a source written without it is called without it.
    arguments: dict[str, Any] = {"district": district}
    if _accepts_options(fetch):
        arguments["options"] = options
    if inspect.iscoroutinefunction(fetch):
        result = await fetch(**arguments)
    else:
        # A blocking source (file, sync client) must not stall the event loop.
        result = await to_thread.run_sync(lambda: fetch(**arguments))
    if inspect.isawaitable(result):
        result = await result
    if not isinstance(result, SignedLicense):
        raise SourceError(
            "The license source did not return a license; the last good license is kept.",
            detail=f"it returned {type(result).__name__}",
        )
    return result


def _accepts_options(fetch: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fetch).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything
        return True
    return any(
        parameter.name == "options" or parameter.kind is inspect.Parameter.VAR_KEYWORD
        for parameter in parameters
    )


def _sync_state(session: Session, district_id: int) -> LicenseSyncState:
    state = session.get(LicenseSyncState, district_id)
    if state is None:
        state = LicenseSyncState(district_id=district_id)
        session.add(state)
    return state


def _held_terms(held: License) -> signing.LicenseTerms | None:
    """The terms of the license held; None when its document no longer passes today's checks
    (a license stored before they were tightened), which any good license then replaces."""
    try:
        return signing.parse_terms(held.payload)
    except signing.LicenseRejected:
        return None


def _terms_columns(terms: signing.LicenseTerms) -> dict[str, Any]:
    return {
        "license_id": terms.license_id,
        "licensed_to": terms.licensed_to,
        "legal_entity_name": terms.legal_entity_name,
        "total": terms.total,
        "created_on": terms.created_on,
        "expires_on": terms.expires_on,
        "deactivated": terms.deactivated,
        "overage_allowance": terms.overage_allowance,
        "issued_at": terms.issued_at,
    }


def _summary(license_row: License | None) -> dict[str, object] | None:
    if license_row is None:
        return None
    return {
        "license_id": license_row.license_id,
        "total": license_row.total,
        "expires_on": license_row.expires_on.isoformat(),
        "deactivated": license_row.deactivated,
        "licensed_to": license_row.licensed_to,
    }
