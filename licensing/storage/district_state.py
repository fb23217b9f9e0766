"""One district's licensing state as the tab shows it, read in one session and computed by the
rules; and its stored alerts brought in line with that state (``reevaluate_alerts``), in the
transaction of the change that moved it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlmodel import Session

from db import queries
from db.models import District, License, LicenseSyncState
from db.session import lock_district
from licensing.domain import rules
from licensing.domain.states import LicenseSyncStatus
from licensing.settings import DistrictConfig, Settings
from licensing.storage.alert_state import (
    LICENSE_TOPIC,
    AlertRecord,
    open_alerts,
    reconcile_alerts,
    record_change,
)
from licensing.storage.roster import UsageCounts, usage_counts
from licensing.storage.roster_status import roster_sync_facts


@dataclass(frozen=True)
class DistrictSnapshot:
    """The stored rows the tab is computed from."""

    district: District
    license: License | None
    sync: LicenseSyncState | None
    usage: UsageCounts
    threshold: int
    open_alerts: list[AlertRecord]
    roster_syncs: Mapping[str, rules.RosterSyncFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertPolicy:
    """What a district's alerts and roster status depend on besides its stored rows: from the
    settings, for every district."""

    sync_failing_tolerance: timedelta = rules.SYNC_FAILING_TOLERANCE
    districts: Mapping[str, DistrictConfig] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(settings.sync_failing_tolerance, settings.districts)

    def synced_sources(self, slug: str) -> tuple[str, ...]:
        """The roster sources the scheduler syncs for a district (its configured ones). A
        district with none keeps its roster here (the local roster): nothing to wait for."""
        config = self.districts.get(slug)
        return tuple(sorted(config.roster_sources)) if config else ()

    def roster_statuses(self, snapshot: DistrictSnapshot) -> tuple[rules.RosterStatus, ...]:
        """The status of each roster source synced for the snapshot's district."""
        return tuple(
            rules.roster_status(snapshot.roster_syncs.get(name) or rules.RosterSyncFacts(name))
            for name in self.synced_sources(snapshot.district.slug)
        )

    def district_roster(self, snapshot: DistrictSnapshot) -> rules.RosterStatus:
        """The district's roster status: its most pressing synced source's."""
        return rules.district_roster_status(self.roster_statuses(snapshot))


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
    last_sync_status: LicenseSyncStatus | None
    last_sync_error: str | None
    stale: bool
    roster: rules.RosterStatus


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
        roster_syncs=roster_sync_facts(session, district_id=district_id),
    )


def facts_for(snapshot: DistrictSnapshot, policy: AlertPolicy) -> rules.LicenseFacts | None:
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
        sync_failing_since=snapshot.sync.failing_since if snapshot.sync else None,
        rosters=policy.roster_statuses(snapshot),
    )


def current_alerts(
    snapshot: DistrictSnapshot, *, now: datetime, policy: AlertPolicy
) -> list[rules.AlertSpec]:
    facts = facts_for(snapshot, policy)
    if facts is None:
        return []
    return rules.alerts_for(facts, now=now, sync_failing_tolerance=policy.sync_failing_tolerance)


def reevaluate_alerts(
    session: Session, *, district_id: int, now: datetime, policy: AlertPolicy
) -> list[AlertRecord]:
    """Bring stored alerts in line with the facts, in the transaction that changed them, and
    note the change for live subscribers."""
    lock_district(session, district_id)  # re-entrant: callers normally took it at their start
    snapshot = read_snapshot(session, district_id=district_id)
    current = current_alerts(snapshot, now=now, policy=policy)
    record_change(session, district_id=district_id, topic=LICENSE_TOPIC, now=now)
    return reconcile_alerts(session, district_id=district_id, current=current, now=now)


def license_view(
    snapshot: DistrictSnapshot, *, now: datetime, roster: rules.RosterStatus
) -> LicenseView | None:
    """The License Information section, or None when no license has been received yet.

    While a synced roster source has never completed a sync (``roster.counts_known`` is False)
    the count is shown as "? / 1000": the numbers are computed from the students known, but the
    tab must not present them as the district's."""
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
        display=rules.usage_display(used, total)
        if roster.counts_known
        else rules.unknown_usage_display(total),
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
        last_sync_status=LicenseSyncStatus(sync.last_status) if sync and sync.last_status else None,
        last_sync_error=sync.last_error if sync else None,
        # The last good license is still shown when a refresh fails; it is only marked stale.
        stale=bool(sync and sync.failing_since is not None),
        roster=roster,
    )


def threshold_settings_view(snapshot: DistrictSnapshot) -> ThresholdSettingsView:
    total = snapshot.license.total if snapshot.license else 0
    return ThresholdSettingsView(
        students_remaining_threshold=snapshot.threshold,
        recommended=rules.recommended_threshold_range(snapshot.usage.active_students),
        maximum=rules.maximum_threshold(total),
    )
