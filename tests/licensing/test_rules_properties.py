"""Properties the Licensing tab's rules keep for any sensible input."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from licensing.domain.rules import (
    AccessLevel,
    AlertKind,
    LicenseFacts,
    LicenseStatus,
    Lifecycle,
    Role,
    RosterEntry,
    UsageLevel,
    access_level,
    alerts_for,
    count_roster,
    license_check,
    license_status,
    overage,
    remaining_licenses,
    usage_level,
)

# No example database (nothing left behind in the working tree) and no deadline (shared machines).
quietly = settings(database=None, deadline=None)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
USAGE_ALERTS = {AlertKind.LICENSES_LOW, AlertKind.LICENSE_LIMIT_REACHED, AlertKind.OVER_LIMIT}

counts = st.integers(min_value=0, max_value=5_000)
thresholds = st.integers(min_value=0, max_value=1_000)
allowances = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.13, 0.25, 0.57, 1.0])
not_active = st.sampled_from([LicenseStatus.EXPIRED, LicenseStatus.INACTIVE])
zones = st.sampled_from(
    ["UTC", "America/Chicago", "America/Los_Angeles", "Pacific/Auckland", "Pacific/Kiritimati"]
)
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
expiry_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 1, 1))
person_keys = st.text(alphabet="abcdef", min_size=1, max_size=3)
roster_entries = st.builds(
    RosterEntry,
    person_key=person_keys,
    role=st.sampled_from(Role),
    lifecycle=st.sampled_from(Lifecycle),
    enabled=st.booleans(),
)
staff_entries = st.builds(
    RosterEntry,
    person_key=person_keys,
    role=st.just(Role.STAFF),
    lifecycle=st.sampled_from(Lifecycle),
    enabled=st.booleans(),
)


@quietly
@given(used=counts, total=counts)
def test_remaining_plus_used_is_total(used: int, total: int) -> None:
    assert remaining_licenses(used, total) + used == total


@quietly
@given(used=counts, total=counts)
def test_overage_is_the_shortfall_of_remaining(used: int, total: int) -> None:
    assert overage(used, total) == max(0, -remaining_licenses(used, total))


@quietly
@given(used=counts, total=counts, threshold=thresholds)
def test_colour_and_alerts_agree(used: int, total: int, threshold: int) -> None:
    facts = LicenseFacts(
        used=used,
        total=total,
        threshold=threshold,
        deactivated=False,
        created_on=date(2024, 7, 1),
        expires_on=date(2028, 6, 30),
        overage_allowance=0.0,
        time_zone="UTC",
    )
    raised = {alert.kind for alert in alerts_for(facts, now=NOW)} & USAGE_ALERTS
    level = usage_level(used, total, threshold)

    red = bool(raised & {AlertKind.LICENSE_LIMIT_REACHED, AlertKind.OVER_LIMIT})
    assert (level is UsageLevel.RED) == red
    assert (level is UsageLevel.YELLOW) == (AlertKind.LICENSES_LOW in raised)
    assert (level is UsageLevel.GREEN) == (not raised)


@quietly
@given(
    entries=st.lists(roster_entries, max_size=30),
    extra_staff=st.lists(staff_entries, max_size=30),
    data=st.data(),
)
def test_staff_never_change_the_active_student_count(
    entries: list[RosterEntry], extra_staff: list[RosterEntry], data: st.DataObject
) -> None:
    mixed = data.draw(st.permutations(entries + extra_staff))
    assert count_roster(mixed).active_students == count_roster(entries).active_students


@quietly
@given(entries=st.lists(roster_entries, max_size=30), data=st.data())
def test_duplicating_records_never_changes_the_active_student_count(
    entries: list[RosterEntry], data: st.DataObject
) -> None:
    copies = data.draw(st.lists(st.sampled_from(entries), max_size=10)) if entries else []
    assert count_roster(entries + copies).active_students == count_roster(entries).active_students


@quietly
@given(status=not_active, used=counts, total=counts, allowance=allowances)
def test_access_is_restricted_unless_active(
    status: LicenseStatus, used: int, total: int, allowance: float
) -> None:
    assert (
        access_level(status=status, used=used, total=total, overage_allowance=allowance)
        is AccessLevel.RESTRICTED
    )


@quietly
@given(status=not_active, used=counts, total=counts, allowance=allowances, more=counts)
def test_license_check_never_allows_unless_active(
    status: LicenseStatus, used: int, total: int, allowance: float, more: int
) -> None:
    check = license_check(
        status=status,
        used=used,
        total=total,
        overage_allowance=allowance,
        additional_students=more,
    )
    assert not check.allowed
    assert check.reason.value == status.value


@quietly
@given(used=counts, total=counts, allowance=allowances)
def test_license_check_for_no_one_agrees_with_access_level(
    used: int, total: int, allowance: float
) -> None:
    check = license_check(
        status=LicenseStatus.ACTIVE,
        used=used,
        total=total,
        overage_allowance=allowance,
        additional_students=0,
    )
    level = access_level(
        status=LicenseStatus.ACTIVE, used=used, total=total, overage_allowance=allowance
    )
    assert check.allowed == (level is AccessLevel.FULL)


@quietly
@given(used=counts, total=counts, allowance=allowances, more=counts, extra=counts)
def test_asking_for_more_students_is_never_easier(
    used: int, total: int, allowance: float, more: int, extra: int
) -> None:
    def allowed(additional: int) -> bool:
        return license_check(
            status=LicenseStatus.ACTIVE,
            used=used,
            total=total,
            overage_allowance=allowance,
            additional_students=additional,
        ).allowed

    if allowed(more + extra):
        assert allowed(more)


@quietly
@given(
    expires_on=expiry_dates,
    zone=zones,
    deactivated=st.booleans(),
    earlier=instants,
    later_by=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)),
)
def test_status_never_goes_back_from_expired(
    expires_on: date, zone: str, deactivated: bool, earlier: datetime, later_by: timedelta
) -> None:
    def status(now: datetime) -> LicenseStatus:
        return license_status(
            deactivated=deactivated, expires_on=expires_on, now=now, time_zone=zone
        )

    if status(earlier) is LicenseStatus.EXPIRED:
        assert status(earlier + later_by) is LicenseStatus.EXPIRED
