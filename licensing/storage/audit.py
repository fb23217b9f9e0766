"""The audit log: who changed what, when, from what to what, and how it went. Append-only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from db.models import AuditEvent
from db.session import stored_id
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.storage import cursors


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
    """Add one event to the district's audit log, in the caller's transaction."""
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


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    has_next_page: bool


def encode_audit_cursor(event_id: int) -> str:
    return cursors.encode_cursor("audit", event_id)


def decode_audit_cursor(cursor: str) -> int:
    return cursors.decode_cursor("audit", cursor, where="the audit log")


def audit_page(session: Session, *, district_id: int, first: int, after: str | None) -> AuditPage:
    """The district's audit log, newest first, ``first`` events after the cursor ``after``."""
    if not 1 <= first <= MAX_AUDIT_PAGE:
        raise ValueError(f"first must be between 1 and {MAX_AUDIT_PAGE}.")
    query = select(AuditEvent).where(AuditEvent.district_id == district_id)
    if after:
        query = query.where(col(AuditEvent.id) < decode_audit_cursor(after))
    rows = session.exec(query.order_by(col(AuditEvent.id).desc()).limit(first + 1)).all()
    return AuditPage(
        entries=[
            AuditEntry(
                id=stored_id(row),
                occurred_at=row.occurred_at,
                actor=row.actor,
                action=AuditAction(row.action),
                outcome=AuditOutcome(row.outcome),
                old_value=_value_of(row.old_value),
                new_value=_value_of(row.new_value),
                detail=row.detail,
            )
            for row in rows[:first]
        ],
        has_next_page=len(rows) > first,
    )
