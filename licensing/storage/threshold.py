"""The stored alert threshold: set by an administrator, lowered when a smaller license arrives.

A threshold above the licensed total could never be saved again from the tab (it would be
refused as too large), so a license update that shrinks the total below it lowers it, in the
same transaction, and says so in the audit log and in the update's result.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from db.models import LicenseSettings
from licensing.domain import rules
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem
from licensing.storage.audit import record_event

THRESHOLD_ACTION = AuditAction.SET_THRESHOLD
THRESHOLD_FIELD = "studentsRemaining"
MAX_ACTOR = 200  # the audit log's actor column


def save_threshold(session: Session, *, district_id: int, value: int, now: datetime) -> None:
    """Store the district's threshold, in the caller's transaction."""
    stored = session.get(LicenseSettings, district_id)
    if stored is None:
        stored = LicenseSettings(district_id=district_id)
        session.add(stored)
    stored.students_remaining_threshold = value
    stored.updated_at = now
    session.flush()


def lower_threshold_to_license(
    session: Session, *, district_id: int, total: int, actor: str, now: datetime
) -> Problem | None:
    """Lower the threshold to what a license of ``total`` seats accepts, when it is above that;
    the notice for the administrator, or None when the threshold already fits."""
    stored = session.get(LicenseSettings, district_id)
    old = stored.students_remaining_threshold if stored else rules.DEFAULT_THRESHOLD
    new = rules.maximum_threshold(total)
    if old <= new:
        return None
    save_threshold(session, district_id=district_id, value=new, now=now)
    message = rules.threshold_lowered_message(old, new, total=total)
    record_event(
        session,
        district_id=district_id,
        actor=f"license update ({actor})"[:MAX_ACTOR],
        action=THRESHOLD_ACTION,
        outcome=AuditOutcome.LOWERED,
        now=now,
        old=old,
        new=new,
        detail=message,
    )
    return Problem(ErrorCode.THRESHOLD_LOWERED, message, field=THRESHOLD_FIELD)
