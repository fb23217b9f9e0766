"""usageHistory and forecast through the real app, and the daily snapshot they are built from."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import select

from db.models import UsageSnapshot
from licensing.storage.history import prune_snapshots, take_usage_snapshot, usage_history
from licensing.storage.roster_changes import apply_roster
from licensing.storage.tokens import Permission
from tests.utils.districts import create_district, students, token_for
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

TODAY = date(2026, 11, 28)  # the FakeClock's day: 2026-11-28 15:00 UTC

HISTORY = """
query History($days: Int!) {
  usageHistory(days: $days) { day activeStudents inactiveStudents staff devices total }
}
"""
FORECAST = """
query Forecast($lead: Int!) {
  forecast(leadTimeDays: $lead) {
    growthPerDay limitReachedOn startPurchasingOn thresholdForLeadTime historicalMaximum
    historicalMaximumOn alreadyAtLimit basedOnDays explanation
  }
}
"""


def insert_snapshots(service, district_id: int, counts: dict[date, int], total: int = 400) -> None:
    with service.database.write() as session:
        for day, active in counts.items():
            session.add(
                UsageSnapshot(
                    district_id=district_id,
                    day=day,
                    active_students=active,
                    inactive_students=7,
                    staff=3,
                    devices=active + 1,
                    total=total,
                    taken_at=datetime(day.year, day.month, day.day, 23, 0, tzinfo=UTC),
                )
            )


def growing_by_two(days: int, *, today_count: int) -> dict[date, int]:
    """The ``days`` days before TODAY, 2 students a day, reaching today_count today."""
    return {TODAY - timedelta(days=back): today_count - 2 * back for back in range(days, 0, -1)}


async def test_usage_history_returns_the_days_asked_for_oldest_first(
    client, make_district, service
):
    district = await make_district(seats=400, active=300)
    insert_snapshots(service, district.id, growing_by_two(120, today_count=300))

    data = await graphql_data(client, district.viewer_token, HISTORY, {"days": 30})

    days = data["usageHistory"]
    # 30 days ending today; today has no snapshot yet, so 29 rows: 10-30 .. 11-27.
    assert [row["day"] for row in days] == [
        (TODAY - timedelta(days=back)).isoformat() for back in range(29, 0, -1)
    ]
    assert days[-1] == {
        "day": "2026-11-27",
        "activeStudents": 298,
        "inactiveStudents": 7,
        "staff": 3,
        "devices": 299,
        "total": 400,
    }
    default = await graphql_data(client, district.viewer_token, "{ usageHistory { day } }")
    assert len(default["usageHistory"]) == 89  # 90 days by default, today not yet snapshotted


async def test_forecast_through_the_api_matches_a_hand_computation(client, make_district, service):
    # 300 active today (the live count), 2 more each day before: 298 yesterday, 296 ... .
    district = await make_district(seats=400, active=300)
    insert_snapshots(service, district.id, growing_by_two(60, today_count=300))

    data = await graphql_data(client, district.viewer_token, FORECAST, {"lead": 21})

    # The 28 days 11-01 .. 11-28 (today's live count included) lie on a line of slope 2.
    # (400 - 300) / 2 = 50 days: 2026-11-28 + 50 = 2027-01-17 (3 + 31 + 16); minus 21 days
    # = 2026-12-27; ceil(2 x 21) = 42.
    forecast = data["forecast"]
    assert {key: value for key, value in forecast.items() if key != "explanation"} == {
        "growthPerDay": 2.0,
        "limitReachedOn": "2027-01-17",
        "startPurchasingOn": "2026-12-27",
        "thresholdForLeadTime": 42,
        "historicalMaximum": 300,
        "historicalMaximumOn": "2026-11-28",
        "alreadyAtLimit": False,
        "basedOnDays": 28,
    }
    assert "start purchasing on 2026-12-27" in forecast["explanation"]
    # The current threshold (50, make_district's default) gives floor(50 / 2) = 25 days.
    assert "the current threshold of 50 gives about 25 days" in forecast["explanation"]

    # Two weeks of lead time: 2027-01-17 - 14 = 2027-01-03, ceil(2 x 14) = 28.
    shorter = (await graphql_data(client, district.viewer_token, FORECAST, {"lead": 14}))[
        "forecast"
    ]
    assert (shorter["startPurchasingOn"], shorter["thresholdForLeadTime"]) == ("2027-01-03", 28)
    default = await graphql_data(
        client, district.viewer_token, "{ forecast { startPurchasingOn } }"
    )
    assert default["forecast"]["startPurchasingOn"] == "2026-12-27"  # 21 days by default


async def test_forecast_at_the_limit_and_without_history(client, make_district, service):
    full = await make_district("full", seats=40, active=40)
    new = await make_district("new", seats=400, active=10)

    at_limit = (await graphql_data(client, full.viewer_token, FORECAST, {"lead": 21}))["forecast"]
    fresh = (await graphql_data(client, new.viewer_token, FORECAST, {"lead": 21}))["forecast"]

    assert at_limit["alreadyAtLimit"] is True
    assert at_limit["limitReachedOn"] is None
    assert "purchase additional licenses now" in at_limit["explanation"]
    # Only today's live count: no rate, no date, the maximum is today's.
    assert (fresh["growthPerDay"], fresh["basedOnDays"], fresh["limitReachedOn"]) == (0.0, 0, None)
    assert (fresh["historicalMaximum"], fresh["historicalMaximumOn"]) == (10, "2026-11-28")


UNCERTAINTY = """
query Uncertainty($days: Int!) {
  forecast {
    limitReachedOn limitReachedEarliest limitReachedLatest growthPerDayLow growthPerDayHigh
    projection(days: $days) { day low expected high }
  }
}
"""


async def test_forecast_uncertainty_and_projection_through_the_api(client, make_district, service):
    # 300 today, 2 a day before, but the odd days 3 lower: 295, 298, 293, 296, ... .
    district = await make_district(seats=400, active=300)
    counts = growing_by_two(60, today_count=300)
    insert_snapshots(
        service,
        district.id,
        {day: count - (3 if (TODAY - day).days % 2 else 0) for day, count in counts.items()},
    )

    forecast = (await graphql_data(client, district.viewer_token, UNCERTAINTY, {"days": 3}))[
        "forecast"
    ]

    earliest, expected, latest = (
        forecast["limitReachedEarliest"],
        forecast["limitReachedOn"],
        forecast["limitReachedLatest"],
    )
    assert earliest < expected < latest  # ISO dates compare as dates
    assert forecast["growthPerDayLow"] < 2 < forecast["growthPerDayHigh"]
    days = forecast["projection"]
    assert [day["day"] for day in days] == ["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
    assert days[0] == {"day": "2026-11-28", "low": 300.0, "expected": 300.0, "high": 300.0}
    for day in days[1:]:
        assert day["low"] < day["expected"] < day["high"]


async def test_a_manager_token_reads_both_too(client, make_district):
    district = await make_district(seats=400, active=300)

    data = await graphql_data(
        client, district.manager_token, "{ usageHistory(days: 7) { day } forecast { basedOnDays } }"
    )

    assert data == {"usageHistory": [], "forecast": {"basedOnDays": 0}}


@pytest.mark.parametrize(
    ("query", "variables", "message"),
    [
        (HISTORY, {"days": 0}, "days must be between 1 and 800, not 0."),
        (HISTORY, {"days": 801}, "days must be between 1 and 800, not 801."),
        (FORECAST, {"lead": 0}, "leadTimeDays must be between 1 and 365, not 0."),
        (FORECAST, {"lead": 366}, "leadTimeDays must be between 1 and 365, not 366."),
        (UNCERTAINTY, {"days": 0}, "days must be between 1 and 365, not 0."),
        (UNCERTAINTY, {"days": 366}, "days must be between 1 and 365, not 366."),
    ],
)
async def test_out_of_range_arguments_are_invalid(client, make_district, query, variables, message):
    district = await make_district()

    response = await graphql(client, district.viewer_token, query, variables)

    errors = response.json()["errors"]
    assert [(error["message"], error["extensions"]["code"]) for error in errors] == [
        (message, "INVALID_ARGUMENT")
    ]


async def test_forecast_without_a_license_says_so(client, service):
    district_id = create_district(service, slug="unlicensed", roster=students(5))
    token = token_for(service, district_id, Permission.VIEW_LICENSE)

    response = await graphql(client, token, FORECAST, {"lead": 21})

    # No limit to project: null, and licenseUnavailable says why; not an error.
    body = response.json()
    assert "errors" not in body
    assert body["data"] == {"forecast": None}


async def test_each_district_sees_only_its_own_history(client, make_district, service):
    mine = await make_district("mine", seats=400, active=300)
    theirs = await make_district("theirs", seats=400, active=100)
    insert_snapshots(service, theirs.id, growing_by_two(10, today_count=100))

    data = await graphql_data(client, mine.viewer_token, HISTORY, {"days": 30})

    assert data["usageHistory"] == []


# --- The daily snapshot --------------------------------------------------------------------------


def snapshot_rows(service, district_id: int) -> list[UsageSnapshot]:
    with service.database.read() as session:
        return list(
            session.exec(
                select(UsageSnapshot)
                .where(UsageSnapshot.district_id == district_id)
                .order_by(UsageSnapshot.day)
            ).all()
        )


async def test_a_snapshot_taken_twice_on_one_day_keeps_one_row_with_the_latest_counts(
    make_district, service, clock
):
    district = await make_district(seats=400, active=30, devices=4)

    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district.id, now=clock(), time_zone="UTC")
    with service.database.write() as session:
        apply_roster(
            session,
            district_id=district.id,
            source="local",
            records=students(30, prefix="riverside-") + students(5, start=31, prefix="riverside-"),
            replace=True,
            now=clock(),
        )
    clock.advance(hours=8)  # 23:00 UTC, still 2026-11-28
    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district.id, now=clock(), time_zone="UTC")

    rows = snapshot_rows(service, district.id)
    assert [(row.day, row.active_students, row.devices, row.total) for row in rows] == [
        (TODAY, 35, 4, 400)
    ]
    assert rows[0].taken_at.replace(tzinfo=UTC) == datetime(2026, 11, 28, 23, 0, tzinfo=UTC)

    clock.advance(hours=2)  # 01:00 UTC on 11-29: a new day
    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district.id, now=clock(), time_zone="UTC")
    assert [row.day for row in snapshot_rows(service, district.id)] == [
        TODAY,
        date(2026, 11, 29),
    ]


async def test_the_snapshot_day_is_the_districts_day(client, make_district, service):
    district = await make_district(seats=400, active=12, time_zone="America/Chicago")
    # 2026-11-29 03:00 UTC is still 2026-11-28 (21:00) in Chicago.
    now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)

    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district.id, now=now, time_zone="America/Chicago")

    assert [row.day for row in snapshot_rows(service, district.id)] == [TODAY]
    data = await graphql_data(client, district.viewer_token, HISTORY, {"days": 1})
    assert data["usageHistory"] == [
        {
            "day": "2026-11-28",
            "activeStudents": 12,
            "inactiveStudents": 0,
            "staff": 0,
            "devices": 0,
            "total": 400,
        }
    ]


async def test_a_snapshot_before_any_license_has_no_total(service, clock):
    district_id = create_district(service, slug="early", roster=students(3))

    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district_id, now=clock(), time_zone="UTC")
        history = usage_history(session, district_id=district_id, days=1, today=TODAY)

    assert [(day.active_students, day.total) for day in history] == [(3, None)]


async def test_pruning_keeps_at_least_two_school_years(make_district, service, clock):
    district = await make_district(seats=400, active=1)
    insert_snapshots(
        service, district.id, {TODAY - timedelta(days=back): 1 for back in range(1, 901)}
    )

    with service.database.write() as session:
        with pytest.raises(ValueError, match="two school years"):
            prune_snapshots(session, district_id=district.id, keep_days=365)
        # The newest is 11-27; 800 days back to and including it starts at 2024-09-19.
        assert prune_snapshots(session, district_id=district.id) == 100
    rows = snapshot_rows(service, district.id)
    assert (len(rows), rows[0].day, rows[-1].day) == (800, date(2024, 9, 19), date(2026, 11, 27))

    # Taking today's snapshot prunes too: now 801 days would remain, the oldest goes.
    with service.database.write() as session:
        take_usage_snapshot(session, district_id=district.id, now=clock(), time_zone="UTC")
    rows = snapshot_rows(service, district.id)
    assert (len(rows), rows[0].day, rows[-1].day) == (800, date(2024, 9, 20), TODAY)
