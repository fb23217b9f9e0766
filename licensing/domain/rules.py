"""The Licensing tab's rules as pure functions over plain data.

Nothing here reads a clock, a database or the network: the caller passes "now" and the facts, and
gets back the numbers, colours, statuses and alerts the Licensing tab shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from licensing.domain.error_codes import ErrorCode

__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_THRESHOLD",
    "RENEWAL_NOTICE_DAYS",
    "SYNC_FAILING_TOLERANCE",
    "AccessLevel",
    "AlertKind",
    "AlertPlacement",
    "AlertSeverity",
    "AlertSpec",
    "LicenseCheck",
    "LicenseCheckReason",
    "LicenseFacts",
    "LicenseStatus",
    "Lifecycle",
    "Role",
    "RosterCounts",
    "RosterEntry",
    "RosterState",
    "RosterStatus",
    "RosterSyncFacts",
    "RunOutcome",
    "ThresholdProblem",
    "ThresholdRange",
    "UsageLevel",
    "access_level",
    "alerts_for",
    "count_roster",
    "counts_against_license",
    "days_until_expiration",
    "district_roster_status",
    "license_check",
    "license_status",
    "licenses_low_message",
    "maximum_threshold",
    "overage",
    "recommended_threshold_range",
    "remaining_licenses",
    "roster_status",
    "sync_failing_alert",
    "sync_failing_due",
    "threshold_lowered_message",
    "threshold_problems",
    "unknown_usage_display",
    "usage_display",
    "usage_level",
]


class LicenseStatus(StrEnum):
    """Whether the license is in good standing."""

    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    INACTIVE = "INACTIVE"


class UsageLevel(StrEnum):
    """The colour of the License Count."""

    GREEN = "GREEN"
    YELLOW = "YELLOW"
    RED = "RED"


class AccessLevel(StrEnum):
    """Whether the district's use of the system is restricted by its license."""

    FULL = "FULL"
    RESTRICTED = "RESTRICTED"


class AlertKind(StrEnum):
    """The license alerts; declaration order breaks ties between alerts of equal severity."""

    LICENSES_LOW = "LICENSES_LOW"
    LICENSE_LIMIT_REACHED = "LICENSE_LIMIT_REACHED"
    OVER_LIMIT = "OVER_LIMIT"
    RENEWAL_DUE = "RENEWAL_DUE"
    EXPIRED = "EXPIRED"
    INACTIVE = "INACTIVE"
    SYNC_FAILING = "SYNC_FAILING"


class AlertSeverity(StrEnum):
    """How urgent an alert is, least urgent first."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class AlertPlacement(StrEnum):
    """Where an alert appears."""

    DASHBOARD = "DASHBOARD"
    LICENSE_BANNER = "LICENSE_BANNER"
    SYSTEM_INDICATOR = "SYSTEM_INDICATOR"


class LicenseCheckReason(StrEnum):
    """Why a license check allowed or refused more active students."""

    OK = "OK"
    WITHIN_OVERAGE = "WITHIN_OVERAGE"
    OVER_LIMIT = "OVER_LIMIT"
    EXPIRED = "EXPIRED"
    INACTIVE = "INACTIVE"
    # The district has received no license yet (Query.licenseUnavailable says why).
    NO_LICENSE = "NO_LICENSE"


class Role(StrEnum):
    """A roster record's role."""

    STUDENT = "student"
    STAFF = "staff"


class Lifecycle(StrEnum):
    """A roster record's enrolment state; only ACTIVE can count against the license."""

    ACTIVE = "active"
    PRE_REGISTERED = "pre-registered"
    INACTIVE = "inactive"
    TRANSFERRED = "transferred"
    GRADUATED = "graduated"
    WITHDRAWN = "withdrawn"
    DELETED = "deleted"


DEFAULT_THRESHOLD = 50
MAX_THRESHOLD = 1_000_000
RENEWAL_NOTICE_DAYS = 90
SYNC_FAILING_TOLERANCE = timedelta(hours=24)

_ALL_PLACEMENTS = (
    AlertPlacement.DASHBOARD,
    AlertPlacement.LICENSE_BANNER,
    AlertPlacement.SYSTEM_INDICATOR,
)
_SEVERITY_RANK = {AlertSeverity.CRITICAL: 0, AlertSeverity.WARNING: 1, AlertSeverity.INFO: 2}
_KIND_RANK = {kind: index for index, kind in enumerate(AlertKind)}


def _plural(count: int, singular: str, plural: str) -> str:
    """Return "1 license" or "45 licenses"."""
    return f"{count} {singular if count == 1 else plural}"


def _require_counts(used: int, total: int) -> None:
    """Raise ValueError unless both license counts are zero or more."""
    if used < 0 or total < 0:
        raise ValueError(f"license counts cannot be negative (used={used}, total={total})")


# --- License Count -------------------------------------------------------------------------------


def remaining_licenses(used: int, total: int) -> int:
    """Return the licenses left: total minus used, negative when over the limit."""
    _require_counts(used, total)
    return total - used


def overage(used: int, total: int) -> int:
    """Return how many active students are beyond the licensed total, 0 when within it."""
    return max(0, -remaining_licenses(used, total))


def usage_display(used: int, total: int) -> str:
    """Return the License Count as shown on the tab, e.g. "487 / 1000"."""
    _require_counts(used, total)
    return f"{used} / {total}"


def unknown_usage_display(total: int) -> str:
    """Return the License Count while the students are not known yet, "? / 1000"."""
    _require_counts(0, total)
    return f"? / {total}"


def usage_level(used: int, total: int, threshold: int) -> UsageLevel:
    """Return RED at or over the limit, YELLOW once remaining <= threshold, else GREEN."""
    remaining = remaining_licenses(used, total)
    if used >= total:
        return UsageLevel.RED
    if remaining <= threshold:
        return UsageLevel.YELLOW
    return UsageLevel.GREEN


# --- Status and expiry ---------------------------------------------------------------------------


def district_today(now: datetime, time_zone: str) -> date:
    """The date it is in the district's zone at ``now``; ValueError for a naive now or an
    unknown zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {time_zone!r}") from error
    return now.astimezone(zone).date()


def district_day_start(day: date, time_zone: str) -> datetime:
    """The moment (in UTC) the district's calendar day ``day`` begins in its zone; ValueError
    for an unknown zone."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {time_zone!r}") from error
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def days_until_expiration(*, expires_on: date, now: datetime, time_zone: str) -> int:
    """Return whole days from the district's today to expiry: 0 on the day, negative after."""
    return (expires_on - district_today(now, time_zone)).days


def license_status(
    *, deactivated: bool, expires_on: date, now: datetime, time_zone: str
) -> LicenseStatus:
    """Return INACTIVE if deactivated, EXPIRED once the expiry day is over, else ACTIVE."""
    # Computed from the date on every read (never stored), so the status flips at the district's
    # midnight without a sync. The zone is checked even when deactivated, so bad input shows.
    days_left = days_until_expiration(expires_on=expires_on, now=now, time_zone=time_zone)
    if deactivated:
        return LicenseStatus.INACTIVE
    if days_left < 0:
        return LicenseStatus.EXPIRED
    return LicenseStatus.ACTIVE


# --- Overage and access --------------------------------------------------------------------------


def _overage_ceiling(total: int, overage_allowance: float) -> int:
    """Return the most active students allowed: floor(total x (1 + allowance))."""
    if not math.isfinite(overage_allowance) or overage_allowance < 0:
        raise ValueError(
            f"overage allowance must be a fraction of 0 or more, not {overage_allowance}"
        )
    # The allowance is entered as a decimal such as 0.05; reading it back as that decimal keeps
    # 1000 seats at 5% exactly 1050 instead of whatever binary rounding would make of it.
    return math.floor(total * (1 + Fraction(str(overage_allowance))))


def access_level(
    *, status: LicenseStatus, used: int, total: int, overage_allowance: float
) -> AccessLevel:
    """Return RESTRICTED when expired, inactive or beyond the overage allowance, else FULL."""
    _require_counts(used, total)
    ceiling = _overage_ceiling(total, overage_allowance)
    if status != LicenseStatus.ACTIVE or used > ceiling:
        return AccessLevel.RESTRICTED
    return AccessLevel.FULL


@dataclass(frozen=True)
class LicenseCheck:
    """The answer to "may this district activate N more students?"."""

    allowed: bool
    reason: LicenseCheckReason


def license_check(
    *,
    status: LicenseStatus,
    used: int,
    total: int,
    overage_allowance: float,
    additional_students: int,
) -> LicenseCheck:
    """Return whether N more active students are allowed, and why."""
    _require_counts(used, total)
    if additional_students < 0:
        raise ValueError(f"additional_students cannot be negative, not {additional_students}")
    ceiling = _overage_ceiling(total, overage_allowance)
    if status == LicenseStatus.INACTIVE:
        return LicenseCheck(allowed=False, reason=LicenseCheckReason.INACTIVE)
    if status == LicenseStatus.EXPIRED:
        return LicenseCheck(allowed=False, reason=LicenseCheckReason.EXPIRED)
    wanted = used + additional_students
    if wanted <= total:
        return LicenseCheck(allowed=True, reason=LicenseCheckReason.OK)
    if wanted <= ceiling:
        return LicenseCheck(allowed=True, reason=LicenseCheckReason.WITHIN_OVERAGE)
    return LicenseCheck(allowed=False, reason=LicenseCheckReason.OVER_LIMIT)


# --- Alert threshold -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdRange:
    """The recommended "students remaining" threshold for a district's size, inclusive."""

    minimum: int
    maximum: int


def recommended_threshold_range(student_count: int) -> ThresholdRange:
    """Return 25-50 below 500 students, 50-100 from 500 to 2000, and 100-200 above 2000."""
    if student_count < 0:
        raise ValueError(f"student count cannot be negative, not {student_count}")
    if student_count < 500:
        return ThresholdRange(minimum=25, maximum=50)
    if student_count <= 2000:
        return ThresholdRange(minimum=50, maximum=100)
    return ThresholdRange(minimum=100, maximum=200)


@dataclass(frozen=True)
class ThresholdProblem:
    """Why a threshold cannot be saved: a stable code and a sentence for the administrator."""

    code: ErrorCode
    message: str


def threshold_problems(value: int, *, total: int) -> list[ThresholdProblem]:
    """Return every reason the threshold cannot be saved, or [] when it is valid."""
    if total < 0:
        raise ValueError(f"total cannot be negative, not {total}")
    problems: list[ThresholdProblem] = []
    if value < 0:
        problems.append(
            ThresholdProblem(
                code=ErrorCode.THRESHOLD_NEGATIVE,
                message=f"The threshold cannot be negative (you entered {value}). "
                "Enter 0 or a higher number.",
            )
        )
    if value > total:
        seats = _plural(total, "licensed seat", "licensed seats")
        problems.append(
            ThresholdProblem(
                code=ErrorCode.THRESHOLD_ABOVE_TOTAL,
                message=f"The threshold cannot be more than your {seats}.",
            )
        )
    if value > MAX_THRESHOLD:
        problems.append(
            ThresholdProblem(
                code=ErrorCode.THRESHOLD_TOO_LARGE,
                message=f"The threshold cannot be more than {MAX_THRESHOLD:,} students "
                f"(you entered {value}).",
            )
        )
    return problems


def maximum_threshold(total: int) -> int:
    """The highest threshold a license of ``total`` seats accepts."""
    return max(0, min(total, MAX_THRESHOLD))


def threshold_lowered_message(old: int, new: int, *, total: int) -> str:
    """What the administrator is told when a smaller license lowered the threshold."""
    seats = _plural(total, "licensed seat", "licensed seats")
    return (
        f"The license now has {seats}, fewer than the alert threshold of {old}, so the "
        f"threshold was lowered to {new}. Set it again in the alert settings if you want "
        "another value."
    )


# --- Alerts --------------------------------------------------------------------------------------


def licenses_low_message(remaining: int) -> str:
    """Return the licenses-low alert text, e.g. "You have 45 licenses remaining. Consider ..."."""
    return (
        f"You have {_plural(remaining, 'license', 'licenses')} remaining. "
        "Consider purchasing additional licenses."
    )


@dataclass(frozen=True)
class LicenseFacts:
    """What is known about one district's license at a moment: the input to alerts_for."""

    used: int
    total: int
    threshold: int
    deactivated: bool
    created_on: date
    expires_on: date
    overage_allowance: float
    time_zone: str
    sync_failing_since: datetime | None = None  # when refreshing the license began failing
    rosters: tuple[RosterStatus, ...] = ()  # each synced roster source's status


@dataclass(frozen=True)
class AlertSpec:
    """One alert whose condition holds now: what it says, how urgent it is and where it shows."""

    kind: AlertKind
    severity: AlertSeverity
    message: str
    placements: tuple[AlertPlacement, ...]


def _limit_reached_message(total: int) -> str:
    """Return the text for having used every license."""
    if total == 0:
        return (
            "Your license includes no student licenses. "
            "Contact Manage1to1 Sales to purchase licenses."
        )
    used_all = "your 1 license" if total == 1 else f"all {total} licenses"
    return f"You have used {used_all}. Contact Manage1to1 Sales to purchase additional licenses."


def _over_limit_message(over: int, total: int) -> str:
    """Return the text for being over the licensed total."""
    return (
        f"You are {_plural(over, 'license', 'licenses')} over your limit of {total}. "
        "Purchase additional licenses promptly."
    )


def _renewal_due_alert(expires_on: date, days_left: int) -> AlertSpec:
    """Return the renewal reminder, more urgent as the expiry date nears."""
    if days_left <= 30:
        severity = AlertSeverity.CRITICAL
    elif days_left <= 60:
        severity = AlertSeverity.WARNING
    else:
        severity = AlertSeverity.INFO
    when = "today" if days_left == 0 else f"in {_plural(days_left, 'day', 'days')}"
    message = (
        f"Your license expires on {expires_on.isoformat()} ({when}). "
        "Start renewal conversations with Manage1to1 Sales."
    )
    placements = (
        _ALL_PLACEMENTS
        if severity is AlertSeverity.CRITICAL
        else (AlertPlacement.DASHBOARD, AlertPlacement.LICENSE_BANNER)
    )
    return AlertSpec(AlertKind.RENEWAL_DUE, severity, message, placements)


_SYNC_FAILING_PLACEMENTS = (AlertPlacement.LICENSE_BANNER, AlertPlacement.SYSTEM_INDICATOR)


def _aware(moment: datetime) -> datetime:
    """``moment`` in UTC; ValueError for a naive one."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("sync times must be timezone-aware")
    return moment.astimezone(UTC)


def _utc(moment: datetime) -> str:
    """A stored moment as alerts show it, "2026-11-27 10:00 UTC"."""
    return f"{_aware(moment):%Y-%m-%d %H:%M} UTC"


def _roster_alert_message(status: RosterStatus) -> str | None:
    """What SYNC_FAILING says at once about a roster whose counts cannot be shown as current:
    never synced, held, or failing without an earlier good sync; None for any other."""
    source = status.source
    if status.state is RosterState.NEVER_SYNCED:
        return (
            f"Student counts are not known yet: roster source '{source}' has not completed a "
            "sync. The license count leaves out its students until it does."
        )
    if status.state is RosterState.FAILED and not status.counts_known:
        since = f" since {_utc(status.since)}" if status.since else ""
        return (
            f"Student counts are not known: roster source '{source}' has never synced "
            f"successfully; its syncs have failed{since}. See Data Sources for the reason."
        )
    if status.state is RosterState.HELD:
        since = f" since {_utc(status.since)}" if status.since else ""
        then = (
            "the counts shown are from before it."
            if status.counts_known
            else "student counts are not known until it is applied."
        )
        return (
            f"The latest sync of roster source '{source}' is held for an administrator's "
            f"confirmation{since}: confirm it or fix the source (Data Sources); {then}"
        )
    return None


def sync_failing_alert(
    *,
    rosters: Iterable[RosterStatus] = (),
    license_failing_since: datetime | None = None,
    now: datetime,
    tolerance: timedelta = SYNC_FAILING_TOLERANCE,
) -> AlertSpec | None:
    """Return SYNC_FAILING, or None.

    Raised at once for a synced roster source that has never completed a sync, whose last sync
    failed with no earlier good one, or whose last sync is held: the counts shown leave its
    students out, or are not what the source says now. Raised once ``tolerance`` has passed for
    the license source failing, or for a roster source failing after a good sync (the numbers
    shown are the last good ones, and may be out of date)."""
    statuses = sorted(rosters, key=_pressing_first)
    for status in statuses:
        message = _roster_alert_message(status)
        if message is not None:
            return AlertSpec(
                AlertKind.SYNC_FAILING, AlertSeverity.WARNING, message, _SYNC_FAILING_PLACEMENTS
            )
    failing = [
        status.since
        for status in statuses
        if status.state is RosterState.FAILED and status.since is not None
    ]
    if license_failing_since is not None:
        failing.append(license_failing_since)
    if not failing:
        return None
    since = min(_aware(moment) for moment in failing)
    if now - since < tolerance:
        return None
    return AlertSpec(
        AlertKind.SYNC_FAILING,
        AlertSeverity.WARNING,
        f"License information could not be refreshed since {_utc(since)}; the numbers shown "
        "may be out of date.",
        _SYNC_FAILING_PLACEMENTS,
    )


def sync_failing_due(
    *,
    rosters: Iterable[RosterStatus] = (),
    license_failing_since: datetime | None = None,
    now: datetime,
    tolerance: timedelta = SYNC_FAILING_TOLERANCE,
) -> datetime | None:
    """Return the moment after ``now`` at which ``sync_failing_alert`` may start to answer
    differently with the passing of time alone (a source failing for ``tolerance``), or None when
    no such moment is ahead. The district's date is the only other clock the alerts follow."""
    failing = [
        status.since
        for status in rosters
        if status.state is RosterState.FAILED and status.since is not None
    ]
    if license_failing_since is not None:
        failing.append(license_failing_since)
    if not failing:
        return None
    due = min(_aware(moment) for moment in failing) + tolerance
    return due if due > now else None


def alerts_for(
    facts: LicenseFacts,
    *,
    now: datetime,
    sync_failing_tolerance: timedelta = SYNC_FAILING_TOLERANCE,
) -> list[AlertSpec]:
    """Return every alert whose condition holds now, most severe first, then in AlertKind order."""
    used, total = facts.used, facts.total
    remaining = remaining_licenses(used, total)
    days_left = days_until_expiration(
        expires_on=facts.expires_on, now=now, time_zone=facts.time_zone
    )
    status = license_status(
        deactivated=facts.deactivated,
        expires_on=facts.expires_on,
        now=now,
        time_zone=facts.time_zone,
    )
    alerts: list[AlertSpec] = []

    if remaining <= facts.threshold and used < total:
        alerts.append(
            AlertSpec(
                AlertKind.LICENSES_LOW,
                AlertSeverity.WARNING,
                licenses_low_message(remaining),
                _ALL_PLACEMENTS,
            )
        )
    if remaining == 0:
        alerts.append(
            AlertSpec(
                AlertKind.LICENSE_LIMIT_REACHED,
                AlertSeverity.CRITICAL,
                _limit_reached_message(total),
                _ALL_PLACEMENTS,
            )
        )
    if used > total:
        alerts.append(
            AlertSpec(
                AlertKind.OVER_LIMIT,
                AlertSeverity.CRITICAL,
                _over_limit_message(overage(used, total), total),
                _ALL_PLACEMENTS,
            )
        )
    if status is not LicenseStatus.EXPIRED and 0 <= days_left <= RENEWAL_NOTICE_DAYS:
        alerts.append(_renewal_due_alert(facts.expires_on, days_left))
    if status is LicenseStatus.EXPIRED:
        alerts.append(
            AlertSpec(
                AlertKind.EXPIRED,
                AlertSeverity.CRITICAL,
                f"Your license expired on {facts.expires_on.isoformat()}. "
                "Contact Manage1to1 Support immediately to renew.",
                _ALL_PLACEMENTS,
            )
        )
    if status is LicenseStatus.INACTIVE:
        alerts.append(
            AlertSpec(
                AlertKind.INACTIVE,
                AlertSeverity.CRITICAL,
                "Your license has been deactivated. Contact Manage1to1 Support immediately.",
                _ALL_PLACEMENTS,
            )
        )
    sync_failing = sync_failing_alert(
        rosters=facts.rosters,
        license_failing_since=facts.sync_failing_since,
        now=now,
        tolerance=sync_failing_tolerance,
    )
    if sync_failing is not None:
        alerts.append(sync_failing)

    return sorted(
        alerts, key=lambda alert: (_SEVERITY_RANK[alert.severity], _KIND_RANK[alert.kind])
    )


# --- Counting the roster -------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterEntry:
    """One record from one roster source, already normalized; person_key identifies the person."""

    person_key: str
    role: Role
    lifecycle: Lifecycle
    enabled: bool

    def __post_init__(self) -> None:
        # A record without an identity cannot be de-duplicated, and would silently merge with
        # every other such record into one "person".
        if not self.person_key.strip():
            raise ValueError("a roster entry needs a non-blank person_key")


@dataclass(frozen=True)
class RosterCounts:
    """The district's head count by the license counting rule."""

    active_students: int
    inactive_students: int
    staff: int
    duplicates_collapsed: int


@dataclass
class _Person:
    """What all of one person's records say, gathered while counting."""

    records: int = 0
    is_student: bool = False
    is_active_student: bool = False
    is_staff: bool = False


def counts_against_license(role: str, lifecycle: str, enabled: bool) -> bool:
    """Whether one roster record counts against the license: a student's, active and enabled.

    ``db.rules_sql.counts_against_license`` is the same rule in SQL (a test holds them equal)."""
    return role == Role.STUDENT and lifecycle == Lifecycle.ACTIVE and enabled is True


def count_roster(entries: Iterable[RosterEntry]) -> RosterCounts:
    """Return the distinct active students, inactive students and staff across all records."""
    people: dict[str, _Person] = {}
    for entry in entries:
        person = people.setdefault(entry.person_key, _Person())
        person.records += 1
        if entry.role == Role.STUDENT:
            person.is_student = True
            if counts_against_license(entry.role, entry.lifecycle, entry.enabled):
                person.is_active_student = True
        elif entry.role == Role.STAFF:
            person.is_staff = True

    active = [person for person in people.values() if person.is_active_student]
    return RosterCounts(
        active_students=len(active),
        inactive_students=sum(
            1 for person in people.values() if person.is_student and not person.is_active_student
        ),
        staff=sum(1 for person in people.values() if person.is_staff and not person.is_student),
        duplicates_collapsed=sum(person.records - 1 for person in active),
    )


# --- Roster status -------------------------------------------------------------------------------


class RosterState(StrEnum):
    """Whether a roster's students are in the counts, as its syncs went."""

    CURRENT = "CURRENT"  # its last sync was applied: the counts are the source's
    NEVER_SYNCED = "NEVER_SYNCED"  # no sync has completed: its students are not counted yet
    FAILED = "FAILED"  # its last sync failed: the counts are from the last good one, if any
    HELD = "HELD"  # its last sync waits for an administrator: the counts are from before it


class RunOutcome(StrEnum):
    """How a roster sync that finished ended."""

    APPLIED = "applied"
    HELD = "held"
    FAILED = "failed"
    # The source answered and had nothing new: the roster in force stays, and a failure before
    # it is over (a sync held before it still waits, though).
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class RosterSyncFacts:
    """How one roster source's syncs have gone, as stored: the input to ``roster_status``."""

    source: str
    last_outcome: RunOutcome | None = None  # of the latest sync that finished
    last_outcome_at: datetime | None = None
    last_applied_at: datetime | None = None  # when the roster in force was applied
    failing_since: datetime | None = None  # the first failure since then


@dataclass(frozen=True)
class RosterStatus:
    """A roster source's state, or a district's (its most pressing source's), for the tab.

    ``since``: when the last good sync was applied (CURRENT), when the syncs began failing
    (FAILED), when the sync was held (HELD); none while NEVER_SYNCED. ``counts_known`` is False
    while a source has never completed a sync: its students are missing from the counts.
    ``reason`` is a sentence of the rules', never the source's own error (which may name files
    or people, and is shown only to Manage Settings in dataSources)."""

    state: RosterState
    counts_known: bool
    source: str | None = None
    since: datetime | None = None
    reason: str | None = None


_STATE_RANK = {
    RosterState.FAILED: 0,
    RosterState.HELD: 1,
    RosterState.NEVER_SYNCED: 2,
    RosterState.CURRENT: 3,
}


def _pressing_first(status: RosterStatus) -> tuple[bool, int, str]:
    return (status.counts_known, _STATE_RANK[status.state], status.source or "")


def roster_status(facts: RosterSyncFacts) -> RosterStatus:
    """Return one roster source's status from how its syncs went: HELD or FAILED after its
    latest finished sync, NEVER_SYNCED before any was applied, else CURRENT."""
    known = facts.last_applied_at is not None
    source = facts.source
    if facts.last_outcome is RunOutcome.HELD:
        then = "the counts are from before it" if known else "its students are not counted"
        return RosterStatus(
            RosterState.HELD,
            known,
            source,
            facts.last_outcome_at,
            f"The latest sync of roster source '{source}' is held for an administrator's "
            f"confirmation; {then}.",
        )
    if facts.last_outcome is RunOutcome.FAILED:
        reason = (
            f"The last sync of roster source '{source}' failed; the counts are from its last "
            "good sync."
            if known
            else f"Roster source '{source}' has never synced successfully; its students are "
            "not counted."
        )
        since = facts.failing_since or facts.last_outcome_at
        return RosterStatus(RosterState.FAILED, known, source, since, reason)
    if not known:
        return RosterStatus(
            RosterState.NEVER_SYNCED,
            False,
            source,
            reason=f"Roster source '{source}' has not completed a sync yet.",
        )
    return RosterStatus(RosterState.CURRENT, True, source, facts.last_applied_at)


def district_roster_status(statuses: Iterable[RosterStatus]) -> RosterStatus:
    """Return the district's roster status from its synced sources' statuses.

    The most pressing source's status (a source whose students are not counted first, then
    FAILED, HELD, NEVER_SYNCED); when every source is CURRENT, the one synced longest ago. A
    district that syncs no source (its roster is kept in this database) is CURRENT, with no
    source or time: there is nothing to wait for."""
    listed = sorted(statuses, key=_pressing_first)
    if not listed:
        return RosterStatus(RosterState.CURRENT, True)
    pressing = listed[0]
    if pressing.state is RosterState.CURRENT:
        return min(listed, key=lambda status: status.since or datetime.max.replace(tzinfo=UTC))
    return replace(pressing, counts_known=all(status.counts_known for status in listed))
