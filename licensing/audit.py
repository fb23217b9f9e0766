"""The audit log: who changed what, when, from what to what, and how it went. Append-only."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session

from db.models import AuditEvent


def record_event(
    session: Session,
    *,
    district_id: int,
    actor: str,
    action: str,
    outcome: str,
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
            action=action,
            old_value=None if old is None else json.dumps(old, default=str, sort_keys=True),
            new_value=None if new is None else json.dumps(new, default=str, sort_keys=True),
            outcome=outcome,
            detail=detail[:2000] if detail else None,
        )
    )
