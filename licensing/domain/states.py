"""The states a sync, a license refresh or a scheduled job can be in, as stored. The stored text
is each member's value; the API shows the member's name. Never rename a value, only add."""

from __future__ import annotations

from enum import StrEnum


class SyncRunStatus(StrEnum):
    """Where a roster sync run stands. ``rules.RunOutcome`` is the part of it a finished run
    can end in that decides the roster status."""

    RUNNING = "running"  # reading the source, or staging what it read
    APPLIED = "applied"
    HELD = "held"  # waits for an administrator's confirmation
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer sync of the source came first
    UNCHANGED = "unchanged"  # the source had nothing new: the roster in force is kept
    DISCARDED = "discarded"  # held, then an administrator chose not to apply it


class SyncMode(StrEnum):
    """What a sync run delivered: the source's whole roster, or changes to the roster held."""

    FULL = "full"
    DELTA = "delta"


class LicenseSyncStatus(StrEnum):
    """How the last attempt to refresh a district's license went."""

    UPDATED = "updated"  # the license source sent changes
    UNCHANGED = "unchanged"  # it answered with the license already held
    FAILED = "failed"  # it could not be asked, or its answer was refused


class ScheduledJobKind(StrEnum):
    """What a scheduled job does."""

    LICENSE_REFRESH = "license_refresh"
    ROSTER_SYNC = "roster_sync"
    USAGE_SNAPSHOT = "usage_snapshot"
    ALERTS = "alerts"
    # Jobs of the whole service, not of one district.
    NOTIFICATIONS = "notifications"
    ROSTER_CLEANUP = "roster_cleanup"


class ScheduledJobOutcome(StrEnum):
    """How a scheduled job's last run ended."""

    OK = "ok"
    FAILED = "failed"
