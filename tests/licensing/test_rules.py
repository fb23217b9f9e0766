"""The Licensing tab's rules, checked against every number in the product documentation."""

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from licensing.domain.rules import (
    DEFAULT_THRESHOLD,
    MAX_THRESHOLD,
    RENEWAL_NOTICE_DAYS,
    SYNC_FAILING_TOLERANCE,
    AccessLevel,
    AlertKind,
    AlertPlacement,
    AlertSeverity,
    AlertSpec,
    LicenseCheck,
    LicenseCheckReason,
    LicenseFacts,
    LicenseStatus,
    Lifecycle,
    Role,
    RosterCounts,
    RosterEntry,
    ThresholdRange,
    UsageLevel,
    access_level,
    alerts_for,
    count_roster,
    days_until_expiration,
    license_check,
    license_status,
    licenses_low_message,
    overage,
    recommended_threshold_range,
    remaining_licenses,
    threshold_problems,
    usage_display,
    usage_level,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FAR_EXPIRY = date(2027, 11, 30)  # a year out: no renewal reminder in the way
ALL_PLACEMENTS = (
    AlertPlacement.DASHBOARD,
    AlertPlacement.LICENSE_BANNER,
    AlertPlacement.SYSTEM_INDICATOR,
)


def make_facts(**overrides: object) -> LicenseFacts:
    """Return the product doc's district (1000 seats, threshold 50) with the given changes."""
    facts = LicenseFacts(
        used=487,
        total=1000,
        threshold=50,
        deactivated=False,
        created_on=date(2023, 7, 1),
        expires_on=FAR_EXPIRY,
        overage_allowance=0.0,
        time_zone="America/Chicago",
    )
    return replace(facts, **overrides)


def kinds(alerts: list[AlertSpec]) -> list[AlertKind]:
    return [alert.kind for alert in alerts]


def only(alerts: list[AlertSpec], kind: AlertKind) -> AlertSpec:
    [alert] = [alert for alert in alerts if alert.kind == kind]
    return alert


# --- Names and defaults --------------------------------------------------------------------------


def test_defaults_match_the_specification() -> None:
    assert DEFAULT_THRESHOLD == 50
    assert MAX_THRESHOLD == 1_000_000
    assert RENEWAL_NOTICE_DAYS == 90
    assert timedelta(hours=24) == SYNC_FAILING_TOLERANCE


@pytest.mark.parametrize(
    "enum",
    [UsageLevel, AccessLevel, AlertKind, AlertSeverity, AlertPlacement, LicenseCheckReason],
)
def test_api_enums_use_their_names_as_values(enum: type) -> None:
    assert [member.value for member in enum] == [member.name for member in enum]


def test_status_values() -> None:
    assert [status.value for status in LicenseStatus] == ["ACTIVE", "EXPIRED", "INACTIVE"]


def test_roster_vocabulary() -> None:
    assert [role.value for role in Role] == ["student", "staff"]
    assert [lifecycle.value for lifecycle in Lifecycle] == [
        "active",
        "pre-registered",
        "inactive",
        "transferred",
        "graduated",
        "withdrawn",
        "deleted",
    ]


def test_results_are_frozen() -> None:
    check = LicenseCheck(allowed=True, reason=LicenseCheckReason.OK)
    with pytest.raises(FrozenInstanceError):
        check.allowed = False  # type: ignore[misc]


# --- License Count -------------------------------------------------------------------------------


def test_487_of_1000_leaves_513_and_is_green() -> None:
    assert usage_display(487, 1000) == "487 / 1000"
    assert remaining_licenses(487, 1000) == 513
    assert overage(487, 1000) == 0
    assert usage_level(487, 1000, 50) is UsageLevel.GREEN
    assert alerts_for(make_facts(used=487), now=NOW) == []


def test_949_of_1000_with_threshold_50_is_green_without_alert() -> None:
    assert remaining_licenses(949, 1000) == 51
    assert usage_level(949, 1000, 50) is UsageLevel.GREEN
    assert AlertKind.LICENSES_LOW not in kinds(alerts_for(make_facts(used=949), now=NOW))


def test_950_of_1000_with_threshold_50_starts_the_alert() -> None:
    assert usage_level(950, 1000, 50) is UsageLevel.YELLOW
    alerts = alerts_for(make_facts(used=950), now=NOW)
    assert alerts == [
        AlertSpec(
            kind=AlertKind.LICENSES_LOW,
            severity=AlertSeverity.WARNING,
            message="You have 50 licenses remaining. Consider purchasing additional licenses.",
            placements=ALL_PLACEMENTS,
        )
    ]


def test_960_of_1000_with_threshold_50_is_yellow_with_40_remaining() -> None:
    assert usage_level(960, 1000, 50) is UsageLevel.YELLOW
    alert = only(alerts_for(make_facts(used=960), now=NOW), AlertKind.LICENSES_LOW)
    assert alert.message == (
        "You have 40 licenses remaining. Consider purchasing additional licenses."
    )


def test_the_doc_example_message() -> None:
    assert licenses_low_message(45) == (
        "You have 45 licenses remaining. Consider purchasing additional licenses."
    )


def test_one_license_remaining_is_singular() -> None:
    expected = "You have 1 license remaining. Consider purchasing additional licenses."
    assert licenses_low_message(1) == expected
    alert = only(alerts_for(make_facts(used=999), now=NOW), AlertKind.LICENSES_LOW)
    assert alert.message == expected


def test_1000_of_1000_is_red_with_limit_reached_and_no_licenses_low() -> None:
    assert remaining_licenses(1000, 1000) == 0
    assert usage_level(1000, 1000, 50) is UsageLevel.RED
    alerts = alerts_for(make_facts(used=1000), now=NOW)
    assert alerts == [
        AlertSpec(
            kind=AlertKind.LICENSE_LIMIT_REACHED,
            severity=AlertSeverity.CRITICAL,
            message="You have used all 1000 licenses. "
            "Contact Manage1to1 Sales to purchase additional licenses.",
            placements=ALL_PLACEMENTS,
        )
    ]


def test_1012_of_1000_is_12_over_the_limit() -> None:
    assert remaining_licenses(1012, 1000) == -12
    assert overage(1012, 1000) == 12
    assert usage_display(1012, 1000) == "1012 / 1000"
    assert usage_level(1012, 1000, 50) is UsageLevel.RED
    alerts = alerts_for(make_facts(used=1012), now=NOW)
    assert alerts == [
        AlertSpec(
            kind=AlertKind.OVER_LIMIT,
            severity=AlertSeverity.CRITICAL,
            message="You are 12 licenses over your limit of 1000. "
            "Purchase additional licenses promptly.",
            placements=ALL_PLACEMENTS,
        )
    ]


def test_one_license_over_is_singular() -> None:
    alert = only(alerts_for(make_facts(used=1001), now=NOW), AlertKind.OVER_LIMIT)
    assert alert.message == (
        "You are 1 license over your limit of 1000. Purchase additional licenses promptly."
    )


def test_a_single_seat_license_fully_used_reads_naturally() -> None:
    alert = only(
        alerts_for(make_facts(used=1, total=1, threshold=0), now=NOW),
        AlertKind.LICENSE_LIMIT_REACHED,
    )
    assert alert.message.startswith("You have used your 1 license.")


def test_an_empty_license_is_red_and_at_its_limit() -> None:
    assert remaining_licenses(0, 0) == 0
    assert usage_level(0, 0, 0) is UsageLevel.RED
    alerts = alerts_for(make_facts(used=0, total=0, threshold=0), now=NOW)
    assert kinds(alerts) == [AlertKind.LICENSE_LIMIT_REACHED]
    assert "Manage1to1 Sales" in alerts[0].message


def test_threshold_zero_never_shows_licenses_low() -> None:
    assert usage_level(999, 1000, 0) is UsageLevel.GREEN
    assert alerts_for(make_facts(used=999, threshold=0), now=NOW) == []


def test_threshold_above_total_keeps_the_count_yellow() -> None:
    # Possible after a renewal with fewer seats: the stored threshold then exceeds the total.
    assert usage_level(0, 30, 50) is UsageLevel.YELLOW
    assert kinds(alerts_for(make_facts(used=0, total=30), now=NOW)) == [AlertKind.LICENSES_LOW]


@pytest.mark.parametrize(("used", "total"), [(-1, 1000), (10, -1)])
def test_negative_counts_are_rejected(used: int, total: int) -> None:
    with pytest.raises(ValueError):
        remaining_licenses(used, total)
    with pytest.raises(ValueError):
        usage_level(used, total, 50)
    with pytest.raises(ValueError):
        usage_display(used, total)


# --- Status and expiry ---------------------------------------------------------------------------


def test_expiry_is_at_the_end_of_the_day_in_los_angeles() -> None:
    def status(now: datetime) -> LicenseStatus:
        return license_status(
            deactivated=False,
            expires_on=date(2026, 6, 30),
            now=now,
            time_zone="America/Los_Angeles",
        )

    # 23:59 on June 30 in Los Angeles (PDT, UTC-7) is already July 1 in UTC.
    assert status(datetime(2026, 7, 1, 6, 59, 59, tzinfo=UTC)) is LicenseStatus.ACTIVE
    assert status(datetime(2026, 7, 1, 7, 0, tzinfo=UTC)) is LicenseStatus.EXPIRED


def test_expiry_is_at_the_end_of_the_day_in_auckland() -> None:
    def status(now: datetime) -> LicenseStatus:
        return license_status(
            deactivated=False,
            expires_on=date(2026, 6, 30),
            now=now,
            time_zone="Pacific/Auckland",
        )

    # Auckland (NZST, UTC+12) reaches July 1 while it is still June 30 in UTC.
    assert status(datetime(2026, 6, 30, 11, 59, 59, tzinfo=UTC)) is LicenseStatus.ACTIVE
    assert status(datetime(2026, 6, 30, 12, 0, tzinfo=UTC)) is LicenseStatus.EXPIRED


def test_expiry_in_utc() -> None:
    def status(now: datetime) -> LicenseStatus:
        return license_status(
            deactivated=False, expires_on=date(2026, 6, 30), now=now, time_zone="UTC"
        )

    assert status(datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC)) is LicenseStatus.ACTIVE
    assert status(datetime(2026, 7, 1, 0, 0, tzinfo=UTC)) is LicenseStatus.EXPIRED


def test_the_offset_now_is_given_in_does_not_matter() -> None:
    instant = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    in_berlin = instant.astimezone(timezone(timedelta(hours=2)))
    for now in (instant, in_berlin):
        assert (
            license_status(
                deactivated=False,
                expires_on=date(2026, 6, 30),
                now=now,
                time_zone="America/Los_Angeles",
            )
            is LicenseStatus.EXPIRED
        )


def test_expiry_follows_daylight_saving_time() -> None:
    # Chicago is on CST (UTC-6) in December, CDT (UTC-5) in June.
    assert (
        license_status(
            deactivated=False,
            expires_on=date(2026, 12, 31),
            now=datetime(2027, 1, 1, 5, 59, tzinfo=UTC),
            time_zone="America/Chicago",
        )
        is LicenseStatus.ACTIVE
    )
    assert (
        license_status(
            deactivated=False,
            expires_on=date(2026, 6, 30),
            now=datetime(2026, 7, 1, 5, 0, tzinfo=UTC),
            time_zone="America/Chicago",
        )
        is LicenseStatus.EXPIRED
    )


def test_deactivated_is_inactive_even_when_also_expired() -> None:
    for expires_on in (date(2020, 1, 1), FAR_EXPIRY):
        assert (
            license_status(deactivated=True, expires_on=expires_on, now=NOW, time_zone="UTC")
            is LicenseStatus.INACTIVE
        )


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        license_status(
            deactivated=False,
            expires_on=FAR_EXPIRY,
            now=datetime(2026, 11, 28, 12, 0),
            time_zone="UTC",
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        days_until_expiration(
            expires_on=FAR_EXPIRY, now=datetime(2026, 11, 28, 12, 0), time_zone="UTC"
        )


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_unknown_time_zone_is_rejected(zone: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        license_status(deactivated=False, expires_on=FAR_EXPIRY, now=NOW, time_zone=zone)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 6, 29, 12, 0, tzinfo=UTC), 1),
        (datetime(2026, 6, 30, 0, 0, tzinfo=UTC), 0),
        (datetime(2026, 6, 30, 23, 59, tzinfo=UTC), 0),
        (datetime(2026, 7, 1, 0, 0, tzinfo=UTC), -1),
        (datetime(2026, 7, 10, 0, 0, tzinfo=UTC), -10),
        (datetime(2025, 6, 30, 0, 0, tzinfo=UTC), 365),
    ],
)
def test_days_until_expiration(now: datetime, expected: int) -> None:
    assert days_until_expiration(expires_on=date(2026, 6, 30), now=now, time_zone="UTC") == expected


def test_days_until_expiration_counts_the_districts_calendar() -> None:
    now = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)  # still June 30 in Los Angeles
    expires_on = date(2026, 6, 30)
    assert days_until_expiration(expires_on=expires_on, now=now, time_zone="UTC") == -1
    assert (
        days_until_expiration(expires_on=expires_on, now=now, time_zone="America/Los_Angeles") == 0
    )


# --- Renewal, expiry, deactivation and sync alerts -----------------------------------------------


def renewal_alert(days_left: int) -> AlertSpec | None:
    """Return the RENEWAL_DUE alert (if any) for a license expiring days_left days after NOW."""
    facts = make_facts(expires_on=NOW.date() + timedelta(days=days_left), time_zone="UTC")
    alerts = [a for a in alerts_for(facts, now=NOW) if a.kind == AlertKind.RENEWAL_DUE]
    return alerts[0] if alerts else None


def test_no_renewal_reminder_91_days_out() -> None:
    assert renewal_alert(91) is None


@pytest.mark.parametrize(
    ("days_left", "severity"),
    [
        (90, AlertSeverity.INFO),
        (61, AlertSeverity.INFO),
        (60, AlertSeverity.WARNING),
        (31, AlertSeverity.WARNING),
        (30, AlertSeverity.CRITICAL),
        (1, AlertSeverity.CRITICAL),
        (0, AlertSeverity.CRITICAL),
    ],
)
def test_renewal_reminder_escalates(days_left: int, severity: AlertSeverity) -> None:
    alert = renewal_alert(days_left)
    assert alert is not None
    assert alert.severity is severity
    if severity is AlertSeverity.CRITICAL:
        assert alert.placements == ALL_PLACEMENTS
    else:
        assert alert.placements == (AlertPlacement.DASHBOARD, AlertPlacement.LICENSE_BANNER)


def test_renewal_message() -> None:
    facts = make_facts(expires_on=date(2027, 6, 30), time_zone="UTC")
    now = datetime(2027, 5, 16, 9, 0, tzinfo=UTC)
    alert = only(alerts_for(facts, now=now), AlertKind.RENEWAL_DUE)
    assert alert.message == (
        "Your license expires on 2027-06-30 (in 45 days). "
        "Start renewal conversations with Manage1to1 Sales."
    )


def test_renewal_message_for_tomorrow_and_today() -> None:
    tomorrow = renewal_alert(1)
    today = renewal_alert(0)
    assert tomorrow is not None
    assert today is not None
    assert "(in 1 day)." in tomorrow.message
    assert f"expires on {NOW.date().isoformat()} (today)." in today.message


def test_expired_license_alert_replaces_the_renewal_reminder() -> None:
    facts = make_facts(expires_on=date(2026, 6, 30), time_zone="America/Los_Angeles")
    alerts = alerts_for(facts, now=datetime(2026, 7, 1, 7, 0, tzinfo=UTC))
    assert alerts == [
        AlertSpec(
            kind=AlertKind.EXPIRED,
            severity=AlertSeverity.CRITICAL,
            message="Your license expired on 2026-06-30. "
            "Contact Manage1to1 Support immediately to renew.",
            placements=ALL_PLACEMENTS,
        )
    ]


def test_on_the_last_day_the_reminder_says_today_not_expired() -> None:
    facts = make_facts(expires_on=date(2026, 6, 30), time_zone="America/Los_Angeles")
    alerts = alerts_for(facts, now=datetime(2026, 7, 1, 6, 59, tzinfo=UTC))
    assert kinds(alerts) == [AlertKind.RENEWAL_DUE]
    assert "(today)" in alerts[0].message


def test_deactivated_license_alert() -> None:
    alerts = alerts_for(make_facts(deactivated=True), now=NOW)
    assert alerts == [
        AlertSpec(
            kind=AlertKind.INACTIVE,
            severity=AlertSeverity.CRITICAL,
            message="Your license has been deactivated. Contact Manage1to1 Support immediately.",
            placements=ALL_PLACEMENTS,
        )
    ]


def test_deactivated_license_near_expiry_also_gets_the_renewal_reminder() -> None:
    facts = make_facts(deactivated=True, expires_on=NOW.date() + timedelta(days=45))
    assert kinds(alerts_for(facts, now=NOW)) == [AlertKind.INACTIVE, AlertKind.RENEWAL_DUE]


def test_sync_failing_after_the_tolerance() -> None:
    since = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    facts = make_facts(sync_failing_since=since)
    assert alerts_for(facts, now=since + timedelta(hours=23, minutes=59)) == []
    assert alerts_for(facts, now=since + timedelta(hours=24)) == [
        AlertSpec(
            kind=AlertKind.SYNC_FAILING,
            severity=AlertSeverity.WARNING,
            message="License information could not be refreshed since 2026-11-27 10:00 UTC; "
            "the numbers shown may be out of date.",
            placements=(AlertPlacement.LICENSE_BANNER, AlertPlacement.SYSTEM_INDICATOR),
        )
    ]


def test_sync_failing_time_is_shown_in_utc() -> None:
    since = datetime(2026, 11, 27, 4, 0, tzinfo=timezone(timedelta(hours=-6)))
    alert = only(alerts_for(make_facts(sync_failing_since=since), now=NOW), AlertKind.SYNC_FAILING)
    assert "since 2026-11-27 10:00 UTC;" in alert.message


def test_sync_failing_tolerance_is_adjustable() -> None:
    facts = make_facts(sync_failing_since=NOW - timedelta(hours=2))
    assert alerts_for(facts, now=NOW) == []
    assert kinds(alerts_for(facts, now=NOW, sync_failing_tolerance=timedelta(hours=1))) == [
        AlertKind.SYNC_FAILING
    ]


def test_sync_failing_sits_beside_the_usage_alerts() -> None:
    facts = make_facts(used=960, sync_failing_since=NOW - timedelta(days=30))
    assert kinds(alerts_for(facts, now=NOW)) == [AlertKind.LICENSES_LOW, AlertKind.SYNC_FAILING]


def test_naive_sync_failing_since_is_rejected() -> None:
    facts = make_facts(sync_failing_since=datetime(2026, 11, 1, 0, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        alerts_for(facts, now=NOW)


def test_alerts_are_ordered_most_severe_first_then_by_kind() -> None:
    facts = make_facts(
        used=1012,
        deactivated=True,
        expires_on=NOW.date() + timedelta(days=75),
        sync_failing_since=NOW - timedelta(days=2),
    )
    assert [(alert.severity, alert.kind) for alert in alerts_for(facts, now=NOW)] == [
        (AlertSeverity.CRITICAL, AlertKind.OVER_LIMIT),
        (AlertSeverity.CRITICAL, AlertKind.INACTIVE),
        (AlertSeverity.WARNING, AlertKind.SYNC_FAILING),
        (AlertSeverity.INFO, AlertKind.RENEWAL_DUE),
    ]


def test_licenses_low_and_a_critical_renewal_order() -> None:
    facts = make_facts(used=960, expires_on=NOW.date() + timedelta(days=10))
    assert kinds(alerts_for(facts, now=NOW)) == [AlertKind.RENEWAL_DUE, AlertKind.LICENSES_LOW]


# --- Access level and overage allowance ----------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (0, AccessLevel.FULL),
        (1000, AccessLevel.FULL),
        (1050, AccessLevel.FULL),
        (1051, AccessLevel.RESTRICTED),
    ],
)
def test_access_with_a_5_percent_overage_allowance(used: int, expected: AccessLevel) -> None:
    assert (
        access_level(status=LicenseStatus.ACTIVE, used=used, total=1000, overage_allowance=0.05)
        is expected
    )


def test_access_without_an_overage_allowance() -> None:
    def level(used: int) -> AccessLevel:
        return access_level(
            status=LicenseStatus.ACTIVE, used=used, total=1000, overage_allowance=0.0
        )

    assert level(1000) is AccessLevel.FULL
    assert level(1001) is AccessLevel.RESTRICTED


@pytest.mark.parametrize("status", [LicenseStatus.EXPIRED, LicenseStatus.INACTIVE])
@pytest.mark.parametrize("used", [0, 500, 1000])
def test_expired_or_inactive_is_always_restricted(status: LicenseStatus, used: int) -> None:
    assert (
        access_level(status=status, used=used, total=1000, overage_allowance=0.05)
        is AccessLevel.RESTRICTED
    )


def test_alerts_alone_never_restrict() -> None:
    # Red, at the limit, with every alert showing: still full access.
    assert (
        access_level(status=LicenseStatus.ACTIVE, used=1000, total=1000, overage_allowance=0.0)
        is AccessLevel.FULL
    )


@pytest.mark.parametrize(
    ("total", "allowance", "most_allowed"),
    [(100, 0.57, 157), (100, 0.13, 113), (1000, 0.001, 1001)],
)
def test_allowance_is_read_as_the_decimal_entered(
    total: int, allowance: float, most_allowed: int
) -> None:
    # In binary floating point 100 x 1.57 is 156.99999999999997, which would lose a seat.
    def level(used: int) -> AccessLevel:
        return access_level(
            status=LicenseStatus.ACTIVE, used=used, total=total, overage_allowance=allowance
        )

    assert level(most_allowed) is AccessLevel.FULL
    assert level(most_allowed + 1) is AccessLevel.RESTRICTED
    check = license_check(
        status=LicenseStatus.ACTIVE,
        used=total,
        total=total,
        overage_allowance=allowance,
        additional_students=most_allowed - total,
    )
    assert check == LicenseCheck(True, LicenseCheckReason.WITHIN_OVERAGE)


@pytest.mark.parametrize("allowance", [-0.01, float("nan"), float("inf")])
def test_a_nonsensical_allowance_is_rejected(allowance: float) -> None:
    with pytest.raises(ValueError, match="overage allowance"):
        access_level(status=LicenseStatus.ACTIVE, used=1, total=10, overage_allowance=allowance)


# --- License check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "used", "additional", "expected"),
    [
        (LicenseStatus.ACTIVE, 960, 1, LicenseCheck(True, LicenseCheckReason.OK)),
        (LicenseStatus.ACTIVE, 960, 40, LicenseCheck(True, LicenseCheckReason.OK)),
        (LicenseStatus.ACTIVE, 960, 41, LicenseCheck(True, LicenseCheckReason.WITHIN_OVERAGE)),
        (LicenseStatus.ACTIVE, 960, 90, LicenseCheck(True, LicenseCheckReason.WITHIN_OVERAGE)),
        (LicenseStatus.ACTIVE, 960, 91, LicenseCheck(False, LicenseCheckReason.OVER_LIMIT)),
        (LicenseStatus.ACTIVE, 1050, 0, LicenseCheck(True, LicenseCheckReason.WITHIN_OVERAGE)),
        (LicenseStatus.ACTIVE, 1051, 0, LicenseCheck(False, LicenseCheckReason.OVER_LIMIT)),
        (LicenseStatus.EXPIRED, 0, 1, LicenseCheck(False, LicenseCheckReason.EXPIRED)),
        (LicenseStatus.INACTIVE, 0, 1, LicenseCheck(False, LicenseCheckReason.INACTIVE)),
    ],
)
def test_license_check(
    status: LicenseStatus, used: int, additional: int, expected: LicenseCheck
) -> None:
    result = license_check(
        status=status,
        used=used,
        total=1000,
        overage_allowance=0.05,
        additional_students=additional,
    )
    assert result == expected


def test_license_check_without_allowance_has_no_overage() -> None:
    def check(additional: int) -> LicenseCheck:
        return license_check(
            status=LicenseStatus.ACTIVE,
            used=999,
            total=1000,
            overage_allowance=0.0,
            additional_students=additional,
        )

    assert check(1) == LicenseCheck(True, LicenseCheckReason.OK)
    assert check(2) == LicenseCheck(False, LicenseCheckReason.OVER_LIMIT)


def test_license_check_rejects_a_negative_number_of_students() -> None:
    with pytest.raises(ValueError, match="additional_students"):
        license_check(
            status=LicenseStatus.ACTIVE,
            used=0,
            total=1000,
            overage_allowance=0.0,
            additional_students=-1,
        )


# --- Alert threshold -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("student_count", "expected"),
    [
        (0, ThresholdRange(25, 50)),
        (499, ThresholdRange(25, 50)),
        (500, ThresholdRange(50, 100)),
        (2000, ThresholdRange(50, 100)),
        (2001, ThresholdRange(100, 200)),
        (250_000, ThresholdRange(100, 200)),
    ],
)
def test_recommended_threshold_range(student_count: int, expected: ThresholdRange) -> None:
    assert recommended_threshold_range(student_count) == expected


def test_recommended_threshold_range_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError):
        recommended_threshold_range(-1)


@pytest.mark.parametrize("value", [0, 50, 1000])
def test_valid_thresholds_have_no_problems(value: int) -> None:
    assert threshold_problems(value, total=1000) == []


def test_negative_threshold() -> None:
    [problem] = threshold_problems(-1, total=1000)
    assert problem.code == "THRESHOLD_NEGATIVE"
    assert problem.message == (
        "The threshold cannot be negative (you entered -1). Enter 0 or a higher number."
    )


def test_threshold_above_the_licensed_total() -> None:
    [problem] = threshold_problems(1001, total=1000)
    assert problem.code == "THRESHOLD_ABOVE_TOTAL"
    assert problem.message == "The threshold cannot be more than your 1000 licensed seats."


def test_threshold_above_a_single_seat_is_singular() -> None:
    [problem] = threshold_problems(2, total=1)
    assert problem.message == "The threshold cannot be more than your 1 licensed seat."


def test_huge_threshold_reports_every_problem() -> None:
    problems = threshold_problems(1_000_000_000, total=1000)
    assert [problem.code for problem in problems] == [
        "THRESHOLD_ABOVE_TOTAL",
        "THRESHOLD_TOO_LARGE",
    ]
    assert problems[1].message == (
        "The threshold cannot be more than 1,000,000 students (you entered 1000000000)."
    )


def test_threshold_limit_of_one_million() -> None:
    assert threshold_problems(1_000_000, total=2_000_000) == []
    assert [p.code for p in threshold_problems(1_000_001, total=2_000_000)] == [
        "THRESHOLD_TOO_LARGE"
    ]


def test_threshold_on_an_empty_license() -> None:
    assert threshold_problems(0, total=0) == []
    assert [p.code for p in threshold_problems(1, total=0)] == ["THRESHOLD_ABOVE_TOTAL"]


# --- Counting the roster -------------------------------------------------------------------------


def student(key: str, lifecycle: Lifecycle = Lifecycle.ACTIVE, enabled: bool = True) -> RosterEntry:
    return RosterEntry(person_key=key, role=Role.STUDENT, lifecycle=lifecycle, enabled=enabled)


def staff(key: str) -> RosterEntry:
    return RosterEntry(person_key=key, role=Role.STAFF, lifecycle=Lifecycle.ACTIVE, enabled=True)


def test_empty_roster() -> None:
    assert count_roster([]) == RosterCounts(0, 0, 0, 0)


def test_active_students_count() -> None:
    assert count_roster([student("s1"), student("s2")]) == RosterCounts(
        active_students=2, inactive_students=0, staff=0, duplicates_collapsed=0
    )


def test_staff_never_count() -> None:
    counts = count_roster([student("s1"), staff("t1"), staff("t2")])
    assert counts.active_students == 1
    assert counts.staff == 2


@pytest.mark.parametrize(
    "lifecycle", [lifecycle for lifecycle in Lifecycle if lifecycle is not Lifecycle.ACTIVE]
)
def test_students_who_are_not_active_never_count(lifecycle: Lifecycle) -> None:
    counts = count_roster([student("s1"), student("s2", lifecycle)])
    assert counts.active_students == 1
    assert counts.inactive_students == 1


def test_disabled_students_never_count() -> None:
    counts = count_roster([student("s1"), student("s2", enabled=False)])
    assert counts.active_students == 1
    assert counts.inactive_students == 1


def test_a_student_in_two_schools_counts_once() -> None:
    counts = count_roster([student("s1"), student("s1"), student("s2")])
    assert counts == RosterCounts(
        active_students=2, inactive_students=0, staff=0, duplicates_collapsed=1
    )


def test_active_in_one_source_and_inactive_in_another_counts_as_active_once() -> None:
    for records in (
        [student("s1"), student("s1", Lifecycle.TRANSFERRED)],
        [student("s1", Lifecycle.GRADUATED), student("s1")],
        [student("s1", enabled=False), student("s1")],
    ):
        assert count_roster(records) == RosterCounts(
            active_students=1, inactive_students=0, staff=0, duplicates_collapsed=1
        )


def test_an_inactive_student_in_two_sources_is_one_inactive_student() -> None:
    counts = count_roster([student("s1", Lifecycle.GRADUATED), student("s1", Lifecycle.WITHDRAWN)])
    assert counts == RosterCounts(0, 1, 0, 0)


def test_a_person_who_is_student_and_staff_counts_as_a_student() -> None:
    counts = count_roster([student("s1"), staff("s1")])
    assert counts == RosterCounts(
        active_students=1, inactive_students=0, staff=0, duplicates_collapsed=1
    )


def test_staff_in_two_schools_is_one_staff_member() -> None:
    assert count_roster([staff("t1"), staff("t1")]).staff == 1


def test_count_roster_accepts_any_iterable() -> None:
    assert count_roster(student(f"s{n}") for n in range(5)).active_students == 5


@pytest.mark.parametrize("key", ["", "   "])
def test_a_record_without_a_person_key_is_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="person_key"):
        student(key)
