"""The forecast against hand computations on two school years of daily counts, and its properties.

The fixture, one count per calendar day:

- school year 1, 2024-08-20 to 2025-06-13: 1000 + 1 per day  (1000 ... 1297 on 2025-06-13)
- summer 1,      2025-06-14 to 2025-08-19: 1150 flat         (the seniors left: 147 fewer)
- school year 2, 2025-08-20 to 2026-06-12: 1250 + 2 per day  (1250 ... 1842 on 2026-06-12)
- summer 2,      2026-06-13 to 2026-06-15: 1650 flat

so the true growth is 1 student per day in year 1 and 2 per day in year 2. Every expected value
below is a literal, with the arithmetic that gives it in the comment next to it.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from licensing.domain.forecast import (
    DailyPoint,
    forecast,
    least_squares_slope,
    terms_of,
)

quietly = settings(database=None, deadline=None)


def daily(first: date, last: date, count_on) -> list[DailyPoint]:
    """One point per day from first to last; count_on(n) is the count n days after first."""
    return [
        DailyPoint(first + timedelta(days=n), count_on(n)) for n in range((last - first).days + 1)
    ]


TWO_SCHOOL_YEARS = (
    daily(date(2024, 8, 20), date(2025, 6, 13), lambda n: 1000 + n)
    + daily(date(2025, 6, 14), date(2025, 8, 19), lambda n: 1150)
    + daily(date(2025, 8, 20), date(2026, 6, 12), lambda n: 1250 + 2 * n)
    + daily(date(2026, 6, 13), date(2026, 6, 15), lambda n: 1650)
)


def test_the_fixture_is_what_the_docstring_says():
    counts = {point.day: point.active_students for point in TWO_SCHOOL_YEARS}
    assert len(counts) == len(TWO_SCHOOL_YEARS) == 665  # 2024-08-20 .. 2026-06-15
    assert counts[date(2025, 6, 13)] == 1297  # 1000 + 297 days
    assert counts[date(2026, 6, 12)] == 1842  # 1250 + 2 x 296 days


def test_mid_term_the_rate_is_the_slope_of_the_last_28_days():
    result = forecast(TWO_SCHOOL_YEARS, today=date(2026, 3, 16), total=1800, threshold=50)

    # Window: the 28 days 2026-02-17 .. 2026-03-16, all in year 2: slope exactly 2 per day.
    assert result.growth_per_day == 2
    assert (result.based_on_days, result.measured_from, result.measured_to) == (
        28,
        date(2026, 2, 17),
        date(2026, 3, 16),
    )
    # 2025-08-20 -> 2026-03-16 is 11+30+31+30+31+31+28+16 = 208 days: 1250 + 2 x 208 = 1666.
    assert result.current == 1666
    assert not result.in_break
    # 1800 - 1666 = 134 remaining; 134 / 2 = 67 days; 2026-03-16 + 67 days
    # = (15 days to 03-31) + 30 (04-30) + 22 = 2026-05-22. The fixture agrees:
    # 2025-08-20 + 275 days = 2026-05-22 and 1250 + 2 x 275 = 1800.
    assert result.limit_reached_on == date(2026, 5, 22)
    assert not result.already_at_limit
    # 21 days of lead time: 2026-05-22 - 21 days = 2026-05-01.
    assert result.start_purchasing_on == date(2026, 5, 1)
    # ceil(2 x 21) = 42 remaining gives 21 days; the current 50 gives floor(50 / 2) = 25 days.
    assert result.threshold_for_lead_time == 42
    assert result.threshold_lead_days == 25
    # The highest count so far is today's: year 2 is above year 1's 1297.
    assert (result.historical_maximum, result.historical_maximum_on) == (1666, date(2026, 3, 16))
    assert result.explanation == (
        "Active students grew by 2 per day, measured over 28 days of term "
        "(2026-02-17 to 2026-03-16). At that pace the 1,800 licenses are all used on "
        "2026-05-22. With 21 days of lead time, start purchasing on 2026-05-01. An alert "
        "threshold of 42 students remaining gives that lead time; the current threshold of 50 "
        "gives about 25 days. The highest count recorded is 1,666, on 2026-03-16."
    )


def test_in_the_summer_the_rate_is_the_last_terms_and_never_negative():
    result = forecast(TWO_SCHOOL_YEARS, today=date(2025, 7, 15), total=1800, threshold=50)

    # 2025-06-14: 1297 - 1150 = 147 > max(5% x 1297 = 64.85, 10): a break. The rate comes
    # from year 1's last 28 days, 2025-05-17 .. 2025-06-13: 1 per day (a raw 28-day slope over
    # 2025-06-18 .. 2025-07-15 would be 0, and one spanning the drop negative).
    assert result.in_break
    assert result.level_before_break == 1297
    assert result.growth_per_day == 1
    assert (result.measured_from, result.measured_to) == (date(2025, 5, 17), date(2025, 6, 13))
    # From today's 1150: 1800 - 1150 = 650 remaining at 1 per day = 650 days;
    # 2025-07-15 + 650 days = 2027-04-26 (2025-07-15 + 365 = 2026-07-15, + 285 = 2027-04-26).
    assert result.limit_reached_on == date(2027, 4, 26)
    assert result.start_purchasing_on == date(2027, 4, 5)  # - 21 days
    assert result.threshold_for_lead_time == 21  # ceil(1 x 21)
    assert (result.historical_maximum, result.historical_maximum_on) == (1297, date(2025, 6, 13))
    assert "Counts are in a break: 1,150 active, down from 1,297 before it." in (result.explanation)


def test_early_autumn_the_intake_jump_is_not_read_as_growth():
    result = forecast(TWO_SCHOOL_YEARS, today=date(2025, 9, 1), total=1800, threshold=50)

    # 2025-08-20: 1297 - 1250 = 47 <= 64.85: the break is over and year 2 begins. Its first 7
    # days (to 2025-08-26) settle; 2025-08-27 .. 2025-09-01 are 6 points, fewer than 14, so the
    # rate is still year 1's: 1 per day. (A raw slope over 2025-08-05 .. 2025-09-01 would see
    # 1150 -> 1274 and report about 6 per day.)
    assert not result.in_break
    assert result.growth_per_day == 1
    assert (result.measured_from, result.measured_to) == (date(2025, 5, 17), date(2025, 6, 13))
    assert result.current == 1274  # 1250 + 2 x 12 days
    # 1800 - 1274 = 526 days; 2025-09-01 + 526 = 2027-02-09 (+365 = 2026-09-01, +161).
    assert result.limit_reached_on == date(2027, 2, 9)
    assert result.historical_maximum == 1297


def test_once_the_new_term_has_settled_its_own_rate_is_used():
    day_before = forecast(TWO_SCHOOL_YEARS, today=date(2025, 9, 8), total=1800, threshold=50)
    result = forecast(TWO_SCHOOL_YEARS, today=date(2025, 9, 9), total=1800, threshold=50)

    # 2025-08-27 .. 2025-09-08 is 13 points: still year 1's rate.
    assert day_before.growth_per_day == 1
    # 2025-08-27 .. 2025-09-09 is 14 points: year 2's slope, 2 per day.
    assert result.growth_per_day == 2
    assert (result.based_on_days, result.measured_from) == (14, date(2025, 8, 27))
    # 1250 + 2 x 20 = 1290; (1800 - 1290) / 2 = 255 days; 2025-09-09 + 255 = 2026-05-22.
    assert result.current == 1290
    assert result.limit_reached_on == date(2026, 5, 22)
    assert result.start_purchasing_on == date(2026, 5, 1)
    assert result.threshold_for_lead_time == 42


def test_at_the_end_of_the_fixture_in_the_second_summer():
    result = forecast(
        TWO_SCHOOL_YEARS, today=date(2026, 6, 15), total=2000, threshold=50, lead_time_days=28
    )

    # 1842 - 1650 = 192 > 5% x 1842 = 92.1: a break; year 2's last 28 days,
    # 2026-05-16 .. 2026-06-12, give 2 per day.
    assert result.in_break
    assert result.growth_per_day == 2
    assert (result.measured_from, result.measured_to) == (date(2026, 5, 16), date(2026, 6, 12))
    # (2000 - 1650) / 2 = 175 days; 2026-06-15 + 175 = 2026-12-07 (15+31+31+30+31+30+7).
    assert result.limit_reached_on == date(2026, 12, 7)
    # 28 days of lead time: 2026-12-07 - 28 = 2026-11-09; threshold ceil(2 x 28) = 56.
    assert result.start_purchasing_on == date(2026, 11, 9)
    assert result.threshold_for_lead_time == 56
    assert (result.historical_maximum, result.historical_maximum_on) == (1842, date(2026, 6, 12))


def test_the_terms_of_the_fixture():
    terms, level_before_break = terms_of(TWO_SCHOOL_YEARS)

    assert [(term.start, term.end, term.settles) for term in terms] == [
        (date(2024, 8, 20), date(2025, 6, 13), False),
        (date(2025, 8, 20), date(2026, 6, 12), True),
    ]
    assert level_before_break == 1842


def test_least_squares_by_hand_on_a_new_districts_first_two_weeks():
    counts = [500, 502, 503, 503, 506, 507, 509, 509, 510, 513, 514, 514, 517, 519]
    points = daily(date(2026, 1, 5), date(2026, 1, 18), lambda n: counts[n])

    result = forecast(points, today=date(2026, 1, 18), total=600, threshold=50)

    # x = 0..13, weights 2x - 13 = -13, -11, ..., 13. Pairing day i with day 13 - i:
    # sum (2x - 13) y = 13 x (519-500) + 11 x (517-502) + 9 x (514-503) + 7 x (514-503)
    #                 + 5 x (513-506) + 3 x (510-507) + 1 x (509-509)
    #                 = 247 + 165 + 99 + 77 + 35 + 9 + 0 = 632
    # sum (2x - 13)^2 = 2 x (169 + 121 + 81 + 49 + 25 + 9 + 1) = 910
    # slope = 2 x 632 / 910 = 632/455 = 1.389 students per day.
    assert result.growth_per_day == Fraction(632, 455)
    assert result.based_on_days == 14  # the first term does not settle: nothing came before
    # (600 - 519) / (632/455) = 81 x 455 / 632 = 36855/632 = 58.3 -> 59 days:
    # 2026-01-18 + 59 days = 2026-03-18 (13 + 28 + 18).
    assert result.limit_reached_on == date(2026, 3, 18)
    assert result.start_purchasing_on == date(2026, 2, 25)  # - 21 days
    # ceil(632/455 x 21) = ceil(13272/455) = ceil(29.17) = 30;
    # the current 50 gives floor(50 x 455/632) = floor(35.99) = 35 days.
    assert result.threshold_for_lead_time == 30
    assert result.threshold_lead_days == 35
    assert "grew by 1.39 per day, measured over 14 days" in result.explanation


def test_a_drop_spread_over_days_belongs_wholly_to_the_break():
    points = [
        *daily(date(2025, 4, 1), date(2025, 6, 10), lambda n: 800 + 3 * n),  # 800 .. 1010
        DailyPoint(date(2025, 6, 11), 990),  # 20 below 1010: within the shift of 50.5
        DailyPoint(date(2025, 6, 12), 970),  # 40 below: still within
        DailyPoint(date(2025, 6, 13), 940),  # 70 below: the break begins
        *daily(date(2025, 6, 14), date(2025, 7, 20), lambda n: 940),
    ]

    result = forecast(points, today=date(2025, 7, 20), total=1200, threshold=50)

    # The term is cut back to 2025-06-10, its last day at 1010, so 990 and 970 do not pull the
    # slope down: the window is 2025-05-14 .. 2025-06-10, 3 per day.
    assert result.in_break
    assert result.growth_per_day == 3
    assert result.measured_to == date(2025, 6, 10)
    # (1200 - 940) / 3 = 86.7 -> 87 days; 2025-07-20 + 87 = 2025-10-15 (11 + 31 + 30 + 15).
    assert result.limit_reached_on == date(2025, 10, 15)
    assert result.threshold_for_lead_time == 63  # ceil(3 x 21)


def test_a_school_added_mid_term_is_a_jump_not_a_growth_rate():
    # 600 + 1 per day to 659 on 10-30; a school of 150 joins on 10-31 (809), then 3 per day.
    points = [
        *daily(date(2025, 9, 1), date(2025, 10, 30), lambda n: 600 + n),
        *daily(date(2025, 10, 31), date(2025, 11, 30), lambda n: 809 + 3 * n),
    ]

    early = forecast(points, today=date(2025, 11, 10), total=1000, threshold=50)
    settled = forecast(points, today=date(2025, 11, 20), total=1000, threshold=50)

    # 809 - 659 = 150 > max(5% x 659, 10): a jump starts a new term that settles until 11-06.
    # On 11-10 it has 4 settled points (11-07 .. 11-10): the rate is the old term's, 1 per day,
    # over 2025-10-03 .. 2025-10-30. (A raw slope over 10-14 .. 11-10 would be about 9 per day.)
    assert early.growth_per_day == 1
    assert early.measured_to == date(2025, 10, 30)
    # 809 + 3 x 10 = 839 today; (1000 - 839) / 1 = 161 days -> 2026-04-20.
    assert early.limit_reached_on == date(2026, 4, 20)
    # On 11-20 the new term has 14 settled points (11-07 .. 11-20): 3 per day.
    assert settled.growth_per_day == 3
    # 809 + 3 x 20 = 869; (1000 - 869) / 3 = 43.7 -> 44 days: 2025-11-20 + 44 = 2026-01-03.
    assert settled.limit_reached_on == date(2026, 1, 3)


def test_a_large_clean_up_keeps_the_rate_from_before_and_projects_from_the_new_count():
    # 1000 + 2 per day to 1110 on 03-01; on 03-02 200 stale accounts are disabled
    # (1110 + 2 - 200 = 912), then 2 per day again.
    points = [
        *daily(date(2026, 1, 5), date(2026, 3, 1), lambda n: 1000 + 2 * n),
        *daily(date(2026, 3, 2), date(2026, 3, 20), lambda n: 912 + 2 * n),
    ]

    result = forecast(points, today=date(2026, 3, 20), total=1000, threshold=50)

    # 1110 - 912 = 198 > 55.5: read as a break; the rate is the 2 per day from before.
    assert result.in_break
    assert result.growth_per_day == 2
    # Today: 912 + 2 x 18 = 948; (1000 - 948) / 2 = 26 days: 2026-04-15.
    assert result.current == 948
    assert result.limit_reached_on == date(2026, 4, 15)


def test_already_at_the_limit_has_no_projected_date_but_says_so():
    points = daily(date(2026, 1, 5), date(2026, 2, 15), lambda n: 900 + 3 * n)  # .. 1023

    result = forecast(points, today=date(2026, 2, 15), total=1000, threshold=50)

    assert result.already_at_limit
    assert result.limit_reached_on is None
    assert result.start_purchasing_on is None
    assert result.growth_per_day == 3
    assert "All 1,000 licenses are in use (1,023 active): purchase additional licenses now." in (
        result.explanation
    )


def test_not_growing_has_no_date_and_a_zero_threshold():
    points = daily(date(2026, 1, 5), date(2026, 2, 15), lambda n: 700 - (n % 2))

    result = forecast(points, today=date(2026, 2, 15), total=1000, threshold=50)

    assert result.growth_per_day <= 0
    assert result.limit_reached_on is None
    assert result.start_purchasing_on is None
    assert result.threshold_lead_days is None
    assert result.threshold_for_lead_time == 0
    assert "not growing" in result.explanation


def test_a_purchase_date_already_past_says_start_now():
    points = daily(date(2026, 1, 5), date(2026, 2, 15), lambda n: 800 + 4 * n)  # .. 964

    result = forecast(points, today=date(2026, 2, 15), total=1000, threshold=50)

    # (1000 - 964) / 4 = 9 days: 2026-02-24; minus 21 days = 2026-02-03, already past.
    assert result.limit_reached_on == date(2026, 2, 24)
    assert result.start_purchasing_on == date(2026, 2, 3)
    assert "purchasing should have started on 2026-02-03: start now" in result.explanation


def test_the_lead_time_threshold_is_clamped_to_the_total():
    points = daily(date(2026, 1, 5), date(2026, 2, 15), lambda n: 10 * n)  # 10 per day .. 410

    result = forecast(points, today=date(2026, 2, 15), total=500, threshold=0, lead_time_days=60)

    assert result.threshold_for_lead_time == 500  # ceil(10 x 60) = 600, clamped to 500


def test_points_after_today_are_ignored():
    result = forecast(TWO_SCHOOL_YEARS, today=date(2025, 3, 1), total=1800, threshold=50)

    assert result.current_on == date(2025, 3, 1)
    assert result.historical_maximum == 1193  # 1000 + 193 days (2024-08-20 -> 2025-03-01)


def test_no_history_yet():
    result = forecast([], today=date(2026, 3, 1), total=1000, threshold=50)

    assert (result.growth_per_day, result.based_on_days) == (0, 0)
    assert result.limit_reached_on is None
    assert result.historical_maximum_on is None
    assert result.explanation.startswith("There is no usage history yet")


def test_a_single_day_has_no_rate():
    result = forecast(
        [DailyPoint(date(2026, 3, 1), 400)], today=date(2026, 3, 1), total=1000, threshold=50
    )

    assert result.growth_per_day == 0
    assert result.historical_maximum == 400
    assert "not enough history" in result.explanation


def test_bad_input_is_refused():
    point = DailyPoint(date(2026, 3, 1), 1)
    with pytest.raises(ValueError, match="one point per day"):
        forecast([point, point], today=date(2026, 3, 1), total=10, threshold=1)
    with pytest.raises(ValueError, match="lead_time_days"):
        forecast([point], today=date(2026, 3, 1), total=10, threshold=1, lead_time_days=-1)
    with pytest.raises(ValueError, match="total"):
        forecast([point], today=date(2026, 3, 1), total=-1, threshold=1)
    with pytest.raises(ValueError, match="negative"):
        DailyPoint(date(2026, 3, 1), -1)
    with pytest.raises(ValueError, match="two points"):
        least_squares_slope([point])


# --- Properties ----------------------------------------------------------------------------------

START = date(2024, 8, 20)


@st.composite
def histories(draw: st.DrawFn) -> list[DailyPoint]:
    """Any daily counts, with gaps."""
    counts = draw(st.lists(st.integers(min_value=0, max_value=3_000), min_size=0, max_size=80))
    gaps = draw(
        st.lists(st.integers(min_value=1, max_value=4), min_size=len(counts), max_size=len(counts))
    )
    points, day = [], START
    for count, gap in zip(counts, gaps, strict=True):
        points.append(DailyPoint(day, count))
        day += timedelta(days=gap)
    return points


@quietly
@given(
    points=histories(),
    total=st.integers(min_value=0, max_value=4_000),
    threshold=st.integers(min_value=0, max_value=4_000),
    lead_time_days=st.integers(min_value=0, max_value=365),
)
def test_dates_and_threshold_always_hang_together(points, total, threshold, lead_time_days):
    today = points[-1].day if points else START
    result = forecast(
        points, today=today, total=total, threshold=threshold, lead_time_days=lead_time_days
    )

    assert 0 <= result.threshold_for_lead_time <= total
    if result.start_purchasing_on is not None:
        assert result.limit_reached_on is not None
        assert result.start_purchasing_on <= result.limit_reached_on
        assert (result.limit_reached_on - result.start_purchasing_on).days == lead_time_days
    if result.limit_reached_on is not None:
        assert result.growth_per_day > 0 and not result.already_at_limit
        assert result.limit_reached_on > today
        # On the projected day the line has reached the total, and not the day before.
        days = (result.limit_reached_on - today).days
        assert result.current + result.growth_per_day * days >= total
        assert result.current + result.growth_per_day * (days - 1) < total
    else:
        assert result.start_purchasing_on is None
        assert result.growth_per_day <= 0 or result.already_at_limit or not points
    assert result.already_at_limit == (result.current >= total)
    if points:
        assert result.historical_maximum == max(point.active_students for point in points)


@st.composite
def school_years(draw: st.DrawFn) -> tuple[list[DailyPoint], int]:
    """Terms that never shrink (at most max_growth a day), summers that drop by more than the
    shift and then never rise, and autumn intakes of any size; returns (points, max_growth)."""
    max_growth = draw(st.integers(min_value=0, max_value=6))
    count = draw(st.integers(min_value=50, max_value=3_000))
    points: list[DailyPoint] = []
    day = START

    def add(value: int) -> None:
        nonlocal day
        points.append(DailyPoint(day, value))
        day += timedelta(days=1)

    for _year in range(draw(st.integers(min_value=1, max_value=2))):
        for _ in range(draw(st.integers(min_value=20, max_value=200))):
            count += draw(st.integers(min_value=0, max_value=max_growth))
            add(count)
        # The summer drop: more than max(5% of the level, 10) students, in one day.
        least_drop = max(count // 20, 10) + 1
        if least_drop > count:
            break
        count -= draw(st.integers(min_value=least_drop, max_value=count))
        add(count)
        for _ in range(draw(st.integers(min_value=0, max_value=100))):
            count = max(count - draw(st.integers(min_value=0, max_value=3)), 0)
            add(count)
        count += draw(st.integers(min_value=0, max_value=2 * count + 100))  # the intake
        add(count)
    return points, max_growth


@quietly
@given(school_years(), st.data())
def test_summer_drops_and_autumn_jumps_never_distort_the_rate(years, data):
    points, max_growth = years
    today = data.draw(st.sampled_from([point.day for point in points]))

    result = forecast(points, today=today, total=10_000, threshold=50)

    # Never negative from a summer drop, never faster than the fastest day of term growth.
    assert 0 <= result.growth_per_day <= max_growth
