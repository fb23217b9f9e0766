"""The audit log's vocabulary: what was done (``AuditAction``) and how it went
(``AuditOutcome``). The stored text is each member's value; the API shows the member's name.
A value is part of the stored history: never rename one, only add."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """What an audit event records."""

    SET_THRESHOLD = "set_threshold"
    FORCE_LICENSE_UPDATE = "force_license_update"
    LICENSE_REFRESH = "license_refresh"  # the scheduled refresh
    ROSTER_SYNC = "roster_sync"
    ROSTER_IMPORT = "roster_import"  # `licensing roster import`
    ROSTER_SYNC_CONFIRM = "roster_sync_confirm"
    ROSTER_SYNC_DISCARD = "roster_sync_discard"
    DEACTIVATE_STUDENTS = "deactivate_students"
    REACTIVATE_STUDENTS = "reactivate_students"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"


class AuditOutcome(StrEnum):
    """How the recorded action went."""

    CHANGED = "changed"  # a setting was saved
    REJECTED = "rejected"  # refused as asked; nothing changed
    LOWERED = "lowered"  # a smaller license lowered the alert threshold to fit it
    UPDATED = "updated"  # the license source sent changes
    UNCHANGED = "unchanged"  # the source had nothing new
    THROTTLED = "throttled"  # pressed again within the cooldown; nothing was asked
    FAILED = "failed"
    APPLIED = "applied"  # a roster change is in the counts
    HELD = "held"  # a roster change waits for an administrator's confirmation
    SUPERSEDED = "superseded"  # a newer sync of the source came first
    DISCARDED = "discarded"  # a held roster change an administrator chose not to apply
    CREATED = "created"
    REVOKED = "revoked"
