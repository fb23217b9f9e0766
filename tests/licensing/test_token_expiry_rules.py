"""When a token stops working: N days after creation, or at the end of a day in the district's
time zone, as a license's expiry date (SPEC section 3)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from licensing.domain.token_expiry import (
    TokenExpiryError,
    expiry_after_day,
    expiry_after_days,
    has_expired,
)

# 15:00 UTC on 28 November 2026: already 29 November in Auckland, still the 28th in Chicago.
NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


def test_a_day_works_through_its_end_in_the_districts_zone():
    assert expiry_after_day(date(2027, 6, 30), time_zone="America/Chicago", now=NOW) == datetime(
        2027, 7, 1, 5, 0, tzinfo=UTC
    )
    assert expiry_after_day(date(2027, 1, 31), time_zone="America/Chicago", now=NOW) == datetime(
        2027, 2, 1, 6, 0, tzinfo=UTC
    )
    assert expiry_after_day(date(2027, 6, 30), time_zone="UTC", now=NOW) == datetime(
        2027, 7, 1, tzinfo=UTC
    )


def test_today_is_allowed_and_lasts_until_the_districts_midnight():
    assert expiry_after_day(date(2026, 11, 28), time_zone="America/Chicago", now=NOW) == (
        datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    )


def test_yesterday_in_the_districts_zone_is_refused_even_when_it_is_today_in_utc():
    # In Auckland it is already the 29th: the 28th is over there.
    with pytest.raises(TokenExpiryError, match=r"2026-11-28 is in the past \(today is 2026-11-29"):
        expiry_after_day(date(2026, 11, 28), time_zone="Pacific/Auckland", now=NOW)


def test_a_day_more_than_ten_years_ahead_is_refused():
    assert expiry_after_day(date(2036, 11, 25), time_zone="UTC", now=NOW)  # 3650 days
    with pytest.raises(TokenExpiryError, match="more than 3650 days"):
        expiry_after_day(date(2036, 11, 26), time_zone="UTC", now=NOW)
    with pytest.raises(TokenExpiryError):
        expiry_after_day(date.max, time_zone="UTC", now=NOW)


def test_days_count_from_the_moment_of_creation():
    assert expiry_after_days(1, now=NOW) == NOW + timedelta(days=1)
    assert expiry_after_days(3650, now=NOW) == NOW + timedelta(days=3650)
    for days in (0, -1, 3651):
        with pytest.raises(TokenExpiryError, match="1 to 3650 days"):
            expiry_after_days(days, now=NOW)


def test_a_token_has_expired_from_its_expiry_on():
    expiry = NOW + timedelta(hours=1)
    assert not has_expired(None, now=NOW + timedelta(days=10_000))
    assert not has_expired(expiry, now=expiry - timedelta(microseconds=1))
    assert has_expired(expiry, now=expiry)
