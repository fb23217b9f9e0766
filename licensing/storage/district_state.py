"""One district's licensing state as the tab shows it, read in one session and computed by the
rules; and its stored alerts brought in line with that state (``reevaluate_alerts``), in the
transaction of the change that moved it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session

from db import queries
from db.models import District, License, LicenseSyncState
from db.session import lock_district
from licensing.domain import rules
from licensing.storage.alert_state import (
    LICENSE_TOPIC,
    AlertRecord,
    open_alerts,
    reconcile_alerts,
    record_change,
)
from licensing.storage.roster import UsageCounts, usage_counts


@dataclass(frozen=True)
class DistrictSnapshot:
    """The stored rows the tab is computed from."""

    district: District
    license: License | None
    sync: LicenseSyncState | None
    usage: UsageCounts
    threshold: int
    open_alerts: list[AlertRecord]
    roster_failing_since: datetime | None = None


@dataclass(frozen=True)
class LicenseView:
    status: rules.LicenseStatus
    licensed_to: str
    legal_entity_name: str | None
    used: int
    total: int
    remaining: int
    overage: int
    display: str
    level: rules.UsageLevel
    access_level: rules.AccessLevel
    overage_allowance: float
    created_on: date
    expires_on: date
    days_until_expiration: int
    source: str
    last_synced_at: datetime | None
    last_sync_status: str | None
    last_sync_error: str | None
    stale: bool


@dataclass(frozen=True)
class ThresholdSettingsView:
    students_remaining_threshold: int
    recommended: rules.ThresholdRange
    maximum: int


def read_snapshot(session: Session, *, district_id: int) -> DistrictSnapshot:
    rows = queries.district_rows(session, district_id=district_id)
    if rows is None:
        raise LookupError(f"district {district_id} does not exist")
    return DistrictSnapshot(
        district=rows.district,
        license=rows.license,
        sync=rows.sync,
        usage=usage_counts(rows.usage),
        threshold=rows.settings.students_remaining_threshold
        if rows.settings
        else rules.DEFAULT_THRESHOLD,
        open_alerts=open_alerts(session, district_id=district_id),
        roster_failing_since=rows.roster_failing_since,
    )


def facts_for(snapshot: DistrictSnapshot) -> rules.LicenseFacts | None:
    license_row = snapshot.license
    if license_row is None:
        return None
    return rules.LicenseFacts(
        used=snapshot.usage.active_students,
        total=license_row.total,
        threshold=snapshot.threshold,
        deactivated=license_row.deactivated,
        created_on=license_row.created_on,
        expires_on=license_row.expires_on,
        overage_allowance=license_row.overage_allowance,
        time_zone=snapshot.district.time_zone,
        sync_failing_since=_earliest(
            snapshot.sync.failing_since if snapshot.sync else None, snapshot.roster_failing_since
        ),
    )


def current_alerts(
    snapshot: DistrictSnapshot, *, now: datetime, sync_failing_tolerance: timedelta
) -> list[rules.AlertSpec]:
    facts = facts_for(snapshot)
    if facts is None:
        return []
    return rules.alerts_for(facts, now=now, sync_failing_tolerance=sync_failing_tolerance)


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def reevaluate_alerts(
    session: Session, *, district_id: int, now: datetime, sync_failing_tolerance: timedelta
) -> list[AlertRecord]:
    """Bring stored alerts in line with the facts, in the transaction that changed them, and
    note the change for live subscribers."""
    lock_district(session, district_id)  # re-entrant: callers normally took it at their start
    snapshot = read_snapshot(session, district_id=district_id)
    current = current_alerts(snapshot, now=now, sync_failing_tolerance=sync_failing_tolerance)
    record_change(session, district_id=district_id, topic=LICENSE_TOPIC, now=now)
    return reconcile_alerts(session, district_id=district_id, current=current, now=now)


def license_view(snapshot: DistrictSnapshot, *, now: datetime) -> LicenseView | None:
    """The License Information section, or None when no license has been received yet."""
    license_row = snapshot.license
    if license_row is None:
        return None
    used, total = snapshot.usage.active_students, license_row.total
    time_zone = snapshot.district.time_zone
    status = rules.license_status(
        deactivated=license_row.deactivated,
        expires_on=license_row.expires_on,
        now=now,
        time_zone=time_zone,
    )
    sync = snapshot.sync
    return LicenseView(
        status=status,
        licensed_to=license_row.licensed_to,
        legal_entity_name=license_row.legal_entity_name,
        used=used,
        total=total,
        remaining=rules.remaining_licenses(used, total),
        overage=rules.overage(used, total),
        display=rules.usage_display(used, total),
        level=rules.usage_level(used, total, snapshot.threshold),
        access_level=rules.access_level(
            status=status,
            used=used,
            total=total,
            overage_allowance=license_row.overage_allowance,
        ),
        overage_allowance=license_row.overage_allowance,
        created_on=license_row.created_on,
        expires_on=license_row.expires_on,
        days_until_expiration=rules.days_until_expiration(
            expires_on=license_row.expires_on, now=now, time_zone=time_zone
        ),
        source=license_row.source,
        last_synced_at=sync.last_success_at if sync else None,
        last_sync_status=sync.last_status if sync else None,
        last_sync_error=sync.last_error if sync else None,
        # The last good license is still shown when a refresh fails; it is only marked stale.
        stale=bool(sync and sync.failing_since is not None),
    )


def threshold_settings_view(snapshot: DistrictSnapshot) -> ThresholdSettingsView:
    total = snapshot.license.total if snapshot.license else 0
    return ThresholdSettingsView(
        students_remaining_threshold=snapshot.threshold,
        recommended=rules.recommended_threshold_range(snapshot.usage.active_students),
        maximum=rules.maximum_threshold(total),
    )
