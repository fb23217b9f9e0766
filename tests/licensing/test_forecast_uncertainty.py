"""The forecast's uncertainty: the band around the projection and the earliest and latest dates
for the limit, against a hand computation and as properties."""

from __future__ import annotations

import math
from datetime import date, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from licensing.domain.forecast import (
    DailyPoint,
    forecast,
    projection,
    uncertainty_of,
)

quietly = settings(database=None, deadline=None)
DAY0 = date(2026, 3, 2)


def counts_from(first: date, counts: list[int]) -> list[DailyPoint]:
    return [DailyPoint(first + timedelta(days=n), count) for n, count in enumerate(counts)]


def test_the_band_and_the_dates_match_a_hand_computation():
    # x = 0..3, y = 100, 103, 104, 107: mean x 1.5, Sxx = 2.25 + 0.25 + 0.25 + 2.25 = 5;
    # mean y 103.5, Sxy = 5.25 + 0.25 + 0.25 + 5.25 = 11, so the rate is 11 / 5 = 2.2 a day;
    # Syy = 12.25 + 0.25 + 0.25 + 12.25 = 25; residual squares 25 - 11^2 / 5 = 0.8;
    # s^2 = 0.8 / (4 - 2) = 0.4; se = sqrt(0.4 / 5) = sqrt(0.08); t (2 d.f., 90%) = 2.920.
    points = counts_from(DAY0, [100, 103, 104, 107])
    result = forecast(points, today=DAY0 + timedelta(days=3), total=130, threshold=10)

    assert result.growth_per_day == pytest.approx(2.2)
    assert result.uncertainty is not None
    assert result.uncertainty.scatter == pytest.approx(math.sqrt(0.4))
    assert result.uncertainty.rate_standard_error == pytest.approx(math.sqrt(0.08))
    assert result.uncertainty.critical_value == 2.920
    # Expected: 107 + 2.2 h reaches 130 after ceil(23 / 2.2) = ceil(10.45) = 11 days: 03-16.
    assert result.limit_reached_on == date(2026, 3, 16)
    # Margin h days ahead: 2.920 x sqrt(0.08 h^2 + 2 x 0.4).
    # High edge: h = 7: 122.4 + 2.920 x sqrt(4.72) = 128.74 < 130; h = 8: 124.6 + 2.920 x
    # sqrt(5.92) = 131.70 >= 130, so the earliest is 03-05 + 8 days = 03-13.
    assert result.limit_reached_earliest == date(2026, 3, 13)
    # Low edge: h = 16: 142.2 - 2.920 x sqrt(21.28) = 128.73 < 130; h = 17: 144.4 - 2.920 x
    # sqrt(23.92) = 130.12 >= 130, so the latest is 03-05 + 17 days = 03-22.
    assert result.limit_reached_latest == date(2026, 3, 22)
    assert "9 times in 10 the limit is reached between 2026-03-13 and 2026-03-22" in (
        result.explanation
    )

    band = projection(result, 10)
    assert [day.day for day in band] == [DAY0 + timedelta(days=3 + n) for n in range(11)]
    assert (band[0].low, band[0].expected, band[0].high) == (107, 107, 107)  # today is known
    margin = 2.920 * math.sqrt(0.08 * 100 + 0.8)  # 8.66
    assert band[10].expected == pytest.approx(129.0)
    assert band[10].low == pytest.approx(129.0 - margin)
    assert band[10].high == pytest.approx(129.0 + margin)


def test_counts_on_a_straight_line_have_no_spread():
    points = counts_from(DAY0, [500 + 2 * n for n in range(28)])
    result = forecast(points, today=DAY0 + timedelta(days=27), total=600, threshold=10)

    # 554 today, (600 - 554) / 2 = 23 days: every date is the same one.
    assert result.limit_reached_on == DAY0 + timedelta(days=27 + 23)
    assert result.limit_reached_earliest == result.limit_reached_latest == result.limit_reached_on
    assert all(day.low == day.expected == day.high for day in projection(result, 30))
    assert "unevenly" not in result.explanation


def test_without_growth_there_are_no_dates_but_the_band_is_drawn():
    points = counts_from(DAY0, [300, 302, 299, 301, 300, 298, 301, 300])
    result = forecast(points, today=DAY0 + timedelta(days=7), total=400, threshold=10)

    assert result.growth_per_day <= 0
    assert result.limit_reached_on is None
    assert (result.limit_reached_earliest, result.limit_reached_latest) == (None, None)
    band = projection(result, 30)
    assert len(band) == 31
    assert band[30].high > band[30].expected > band[30].low


def test_too_few_counts_give_no_band_and_no_range():
    result = forecast(
        counts_from(DAY0, [100, 104]), today=DAY0 + timedelta(days=1), total=200, threshold=10
    )

    assert result.limit_reached_on is not None  # the rough rate still projects a date
    assert result.uncertainty is None
    assert (result.limit_reached_earliest, result.limit_reached_latest) == (None, None)
    assert projection(result, 90) == []
    assert projection(forecast([], today=DAY0, total=10, threshold=1), 90) == []


def test_growth_too_uneven_to_rule_out_a_stall_has_no_latest_date():
    # Six days, up 2 a day on average, but swinging by 40 from one day to the next.
    points = counts_from(DAY0, [1000 + 2 * n + (20 if n % 2 else -20) for n in range(6)])
    result = forecast(points, today=DAY0 + timedelta(days=5), total=1300, threshold=10)

    assert result.uncertainty is not None
    slowest, fastest = result.uncertainty.rate_range(result.growth_per_day)
    assert slowest <= 0 < fastest
    assert result.limit_reached_on is not None and result.limit_reached_earliest is not None
    assert result.limit_reached_earliest < result.limit_reached_on
    assert result.limit_reached_latest is None
    assert "no latest date can be given" in result.explanation


def test_projection_refuses_negative_days():
    result = forecast(counts_from(DAY0, [1, 2, 3]), today=DAY0, total=10, threshold=1)
    with pytest.raises(ValueError, match="days cannot be negative"):
        projection(result, -1)


# ---------------------------------------------------------------- properties

NOISE = st.lists(st.integers(-1, 1), min_size=28, max_size=28)


def noisy_line(start: int, rate: int, amplitude: int, pattern: list[int], n: int) -> list[int]:
    return [start + rate * day + amplitude * pattern[day] for day in range(n)]


@quietly
@given(
    st.lists(st.integers(0, 5000), min_size=3, max_size=28),
    st.integers(1, 6000),
    st.integers(1, 365),
)
def test_the_band_always_holds_the_expected_line(counts, total, days):
    last = DAY0 + timedelta(days=len(counts) - 1)
    result = forecast(counts_from(DAY0, counts), today=last, total=total, threshold=0)

    band = projection(result, days)
    # Breaks and jumps can leave fewer than 3 counts to measure on: then there is no band.
    assert len(band) == (0 if result.uncertainty is None else days + 1)
    for day in band:
        assert 0 <= day.low <= day.expected <= day.high
    # The band widens with the distance (the rate's error grows with it).
    widths = [day.high - day.low for day in band if day.low > 0]
    assert all(later >= earlier - 1e-6 for earlier, later in pairwise(widths))
    if result.limit_reached_on is not None and result.uncertainty is not None:
        assert result.limit_reached_earliest is not None
        assert result.limit_reached_earliest <= result.limit_reached_on
        if result.limit_reached_latest is not None:
            assert result.limit_reached_on <= result.limit_reached_latest


@quietly
@given(
    st.integers(500, 2000),
    st.integers(-3, 5),
    st.integers(1, 30),
    NOISE.filter(lambda pattern: len(set(pattern)) > 1),
    st.integers(2, 5),
)
def test_more_noise_widens_the_band(start, rate, amplitude, pattern, factor):
    calm = uncertainty_of(counts_from(DAY0, noisy_line(start, rate, amplitude, pattern, 28)))
    rough = uncertainty_of(
        counts_from(DAY0, noisy_line(start, rate, amplitude * factor, pattern, 28))
    )

    assert calm is not None and rough is not None
    for ahead in (1, 30, 365):
        assert rough.margin(ahead) == pytest.approx(factor * calm.margin(ahead))
        assert rough.margin(ahead) > calm.margin(ahead)


@quietly
@given(
    st.integers(500, 2000),
    st.integers(-3, 5),
    st.integers(1, 30),
    st.integers(5, 14),
)
def test_more_data_narrows_the_band(start, rate, amplitude, fewer):
    # The same day-to-day swing (up one day, down the next), measured over more days.
    pattern = [1 if day % 2 else -1 for day in range(28)]
    short = uncertainty_of(counts_from(DAY0, noisy_line(start, rate, amplitude, pattern, fewer)))
    long = uncertainty_of(counts_from(DAY0, noisy_line(start, rate, amplitude, pattern, 28)))

    assert short is not None and long is not None
    for ahead in (7, 90, 365):
        assert long.margin(ahead) < short.margin(ahead)
