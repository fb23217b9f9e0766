"""The roster status rules: whether the counts hold every student, and when SYNC_FAILING is raised
at once rather than after the tolerance."""

from datetime import UTC, date, datetime, timedelta

from licensing.domain.rules import (
    AlertKind,
    AlertPlacement,
    AlertSeverity,
    AlertSpec,
    LicenseFacts,
    RosterState,
    RosterStatus,
    RosterSyncFacts,
    RunOutcome,
    alerts_for,
    district_roster_status,
    roster_status,
    sync_failing_alert,
    unknown_usage_display,
    usage_level,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
GOOD = NOW - timedelta(days=3)  # the last good sync
BANNER = (AlertPlacement.LICENSE_BANNER, AlertPlacement.SYSTEM_INDICATOR)


def never(source: str = "sis") -> RosterSyncFacts:
    return RosterSyncFacts(source)


def current(source: str = "sis", at: datetime = GOOD) -> RosterSyncFacts:
    return RosterSyncFacts(source, RunOutcome.APPLIED, at, last_applied_at=at)


def failed(source: str = "sis", *, since: datetime, good: datetime | None = GOOD):
    return RosterSyncFacts(
        source,
        RunOutcome.FAILED,
        NOW - timedelta(minutes=5),
        last_applied_at=good,
        failing_since=since,
    )


def held(source: str = "sis", at: datetime = NOW - timedelta(hours=1)) -> RosterSyncFacts:
    return RosterSyncFacts(
        source,
        RunOutcome.HELD,
        at,
        last_applied_at=GOOD,
    )


# --- One source's status ---------------------------------------------------------------------------


def test_a_source_that_never_completed_a_sync_is_never_synced_and_its_counts_unknown():
    assert roster_status(never()) == RosterStatus(
        RosterState.NEVER_SYNCED,
        counts_known=False,
        source="sis",
        reason="Roster source 'sis' has not completed a sync yet.",
    )


def test_a_source_whose_last_sync_applied_is_current_since_then():
    assert roster_status(current()) == RosterStatus(RosterState.CURRENT, True, "sis", GOOD)


def test_a_failed_first_sync_is_failed_with_counts_unknown():
    since = NOW - timedelta(hours=2)
    status = roster_status(failed(since=since, good=None))
    assert status == RosterStatus(
        RosterState.FAILED,
        False,
        "sis",
        since,
        "Roster source 'sis' has never synced successfully; its students are not counted.",
    )


def test_a_failure_after_a_good_sync_keeps_the_counts_known():
    status = roster_status(failed(since=NOW - timedelta(hours=2)))
    assert (status.state, status.counts_known) == (RosterState.FAILED, True)
    assert status.reason == (
        "The last sync of roster source 'sis' failed; the counts are from its last good sync."
    )


def test_a_held_sync_is_held_since_it_was_held():
    status = roster_status(held())
    assert status.state is RosterState.HELD
    assert status.since == NOW - timedelta(hours=1)
    assert status.reason == (
        "The latest sync of roster source 'sis' is held for an administrator's confirmation; "
        "the counts are from before it."
    )


# --- The district's status ------------------------------------------------------------------------


def test_a_district_syncing_no_source_is_current_with_nothing_to_wait_for():
    # The demo, and any district whose students are kept in this database.
    assert district_roster_status([]) == RosterStatus(RosterState.CURRENT, True)


def test_the_district_shows_its_most_pressing_source():
    statuses = [
        roster_status(current("clever")),
        roster_status(failed("rest", since=NOW - timedelta(hours=1))),
        roster_status(never("sis")),
    ]
    district = district_roster_status(statuses)
    # A source whose students are missing outweighs one whose last good roster still counts.
    assert (district.state, district.source, district.counts_known) == (
        RosterState.NEVER_SYNCED,
        "sis",
        False,
    )

    first_failed = roster_status(failed("export", since=NOW - timedelta(hours=1), good=None))
    district = district_roster_status([*statuses, first_failed])
    assert (district.state, district.source) == (RosterState.FAILED, "export")


def test_a_district_whose_sources_are_all_current_is_current_since_the_oldest_sync():
    older = NOW - timedelta(days=2)
    district = district_roster_status(
        [roster_status(current("clever", GOOD)), roster_status(current("sis", older))]
    )
    assert district == RosterStatus(RosterState.CURRENT, True, "clever", GOOD)


# --- SYNC_FAILING ---------------------------------------------------------------------------------


def alert(*facts: RosterSyncFacts, license_failing_since: datetime | None = None):
    return sync_failing_alert(
        rosters=[roster_status(item) for item in facts],
        license_failing_since=license_failing_since,
        now=NOW,
    )


def test_a_never_synced_roster_raises_sync_failing_at_once():
    assert alert(never()) == AlertSpec(
        AlertKind.SYNC_FAILING,
        AlertSeverity.WARNING,
        "Student counts are not known yet: roster source 'sis' has not completed a sync. The "
        "license count leaves out its students until it does.",
        BANNER,
    )


def test_a_failed_first_sync_raises_sync_failing_at_once():
    spec = alert(failed(since=NOW - timedelta(minutes=5), good=None))
    assert spec is not None
    assert spec.message == (
        "Student counts are not known: roster source 'sis' has never synced successfully; its "
        "syncs have failed since 2026-11-28 11:55 UTC. See Data Sources for the reason."
    )


def test_a_held_sync_raises_sync_failing_at_once():
    spec = alert(held(at=datetime(2026, 11, 28, 11, 0, tzinfo=UTC)))
    assert spec is not None
    assert spec.message == (
        "The latest sync of roster source 'sis' is held for an administrator's confirmation "
        "since 2026-11-28 11:00 UTC: confirm it or fix the source (Data Sources); the counts "
        "shown are from before it."
    )


def test_a_failure_after_a_good_sync_waits_for_the_tolerance():
    assert alert(failed(since=NOW - timedelta(hours=23, minutes=59))) is None
    spec = alert(failed(since=NOW - timedelta(hours=24)))
    assert spec is not None
    assert spec.message == (
        "License information could not be refreshed since 2026-11-27 12:00 UTC; the numbers "
        "shown may be out of date."
    )


def test_the_earliest_failure_of_the_license_and_the_rosters_is_named():
    spec = alert(
        failed(since=NOW - timedelta(hours=30)),
        license_failing_since=NOW - timedelta(hours=40),
    )
    assert spec is not None and "since 2026-11-26 20:00 UTC" in spec.message


def test_current_rosters_raise_nothing():
    assert alert(current("sis"), current("clever")) is None


def test_the_roster_alert_is_said_before_a_tolerated_failure():
    spec = alert(failed("clever", since=NOW - timedelta(days=2)), never("sis"))
    assert spec is not None and "roster source 'sis' has not completed a sync" in spec.message


def test_alerts_for_raises_sync_failing_for_an_unknown_roster_beside_the_count_alerts():
    facts = LicenseFacts(
        used=0,
        total=1000,
        threshold=50,
        deactivated=False,
        created_on=date(2023, 7, 1),
        expires_on=date(2027, 11, 30),
        overage_allowance=0.0,
        time_zone="America/Chicago",
        rosters=(roster_status(never()),),
    )
    assert [spec.kind for spec in alerts_for(facts, now=NOW)] == [AlertKind.SYNC_FAILING]


def test_an_unknown_count_is_displayed_as_a_question_mark_and_the_level_stays_computed():
    # The level follows the product doc's rule on the students known; the display and the
    # roster status make clear that they are not all the district's students.
    assert unknown_usage_display(1000) == "? / 1000"
    assert usage_level(0, 1000, 50).value == "GREEN"
