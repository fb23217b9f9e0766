"""The audit log: who changed what, when, from what to what, and how it went. Append-only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from db.models import AuditEvent, table_of
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.storage import cursors
from licensing.storage.district_version import district_changed
from licensing.storage.paging import KeysetList, Page, PageRequest, keyset_page


def record_event(
    session: Session,
    *,
    district_id: int,
    actor: str,
    action: AuditAction,
    outcome: AuditOutcome,
    now: datetime,
    old: Any = None,
    new: Any = None,
    detail: str | None = None,
) -> None:
    """Add one event to the district's audit log, in the caller's transaction; the district's
    version changes with it (the log itself is shown by ``auditLog``)."""
    session.add(
        AuditEvent(
            district_id=district_id,
            occurred_at=now,
            actor=actor,
            # Checked against the vocabulary (a caller may pass the text), stored as plain text.
            action=AuditAction(action).value,
            old_value=_value_text(old),
            new_value=_value_text(new),
            outcome=AuditOutcome(outcome).value,
            detail=detail[:2000] if detail else None,
        )
    )
    district_changed(session, district_id)


# The size of the old_value and new_value columns.
MAX_VALUE_TEXT = 4000


def _value_text(value: Any) -> str | None:
    """The value as JSON; one too long for its column (a caller may send long ids) is cut, and
    still JSON: ``{"truncated": "<the start of the JSON text>"}``."""
    if value is None:
        return None
    text = json.dumps(value, default=str, sort_keys=True)
    if len(text) <= MAX_VALUE_TEXT:
        return text
    # Escaping can at most double the kept part, so the whole stays within the column.
    return json.dumps({"truncated": text[: MAX_VALUE_TEXT // 2 - 50]})


def _value_of(text: str | None) -> Any:
    return None if text is None else json.loads(text)


MAX_AUDIT_PAGE = 100
DEFAULT_AUDIT_PAGE = 50

# Newest first.
AUDIT_LIST = KeysetList(
    cursor_kind="audit",
    where="the audit log",
    descending=True,
    default_size=DEFAULT_AUDIT_PAGE,
    max_size=MAX_AUDIT_PAGE,
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    occurred_at: datetime
    actor: str
    action: AuditAction
    outcome: AuditOutcome
    old_value: Any  # the JSON value recorded, decoded
    new_value: Any
    detail: str | None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=AuditAction(row.action),
        outcome=AuditOutcome(row.outcome),
        old_value=_value_of(row.old_value),
        new_value=_value_of(row.new_value),
        detail=row.detail,
    )


def encode_audit_cursor(event_id: int) -> str:
    return cursors.encode_cursor(AUDIT_LIST.cursor_kind, event_id)


audit_events = table_of(AuditEvent)


@dataclass(frozen=True)
class AuditFilter:
    """Which events a page of the audit log keeps: these actions only (all when None), and
    those that occurred from ``since`` (inclusive) to ``until`` (exclusive), moments in UTC."""

    actions: frozenset[AuditAction] | None = None
    since: datetime | None = None
    until: datetime | None = None


def audit_page(
    session: Session,
    *,
    district_id: int,
    request: PageRequest,
    keep: AuditFilter = AuditFilter(),
) -> Page[AuditEntry]:
    """A page of the district's audit log (newest first), forwards or backwards from a cursor,
    of the events ``keep`` keeps; ValueError for a page size out of range or a cursor the audit
    log did not issue. A cursor stays valid when the filter changes (it is the event's id)."""
    conditions = [audit_events.c.district_id == district_id]
    if keep.actions is not None:
        conditions.append(audit_events.c.action.in_(sorted(a.value for a in keep.actions)))
    if keep.since is not None:
        conditions.append(audit_events.c.occurred_at >= keep.since)
    if keep.until is not None:
        conditions.append(audit_events.c.occurred_at < keep.until)
    return keyset_page(
        session,
        keyset=AUDIT_LIST,
        base=select(audit_events),
        conditions=conditions,
        key=audit_events.c.id,
        request=request,
        row_of=_entry,
    )


def count_audit_events(session: Session, *, district_id: int) -> int:
    return session.execute(
        select(func.count()).where(audit_events.c.district_id == district_id)
    ).scalar_one()


def audit_entries_by_id(
    session: Session, *, district_id: int, event_ids: list[int]
) -> dict[int, AuditEntry]:
    """The district's audit events among ``event_ids``."""
    if not event_ids:
        return {}
    rows = session.execute(
        select(audit_events).where(
            audit_events.c.district_id == district_id, audit_events.c.id.in_(event_ids)
        )
    )
    return {row.id: _entry(row) for row in rows}
