"""When an API token stops working: a number of days after it is created, or the end of a day in
the district's time zone, the way a license is valid through the end of its expiry date
(SPEC section 3). Pure functions: the caller passes "now".
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from licensing.domain.rules import district_day_start, district_today

# Ten years: long enough for any integration, short enough that a forgotten token still ends.
MAX_TOKEN_LIFETIME_DAYS = 3650


class TokenExpiryError(ValueError):
    """An expiry a token cannot have; the message says what to give instead."""


def expiry_after_days(days: int, *, now: datetime) -> datetime:
    """The moment a token created at ``now`` to last ``days`` days stops working."""
    if not 1 <= days <= MAX_TOKEN_LIFETIME_DAYS:
        raise TokenExpiryError(f"a token lasts 1 to {MAX_TOKEN_LIFETIME_DAYS} days, not {days}.")
    return now + timedelta(days=days)


def expiry_after_day(day: date, *, time_zone: str, now: datetime) -> datetime:
    """The moment a token that works through ``day`` (in the district's ``time_zone``) stops
    working: the start of the next day there. Today is allowed; a past day, or one more than
    ``MAX_TOKEN_LIFETIME_DAYS`` ahead, is refused."""
    today = district_today(now, time_zone)
    if day < today:
        raise TokenExpiryError(
            f"{day.isoformat()} is in the past (today is {today.isoformat()} in {time_zone}): "
            "give today or a later day."
        )
    if (day - today).days > MAX_TOKEN_LIFETIME_DAYS:
        raise TokenExpiryError(
            f"{day.isoformat()} is more than {MAX_TOKEN_LIFETIME_DAYS} days after today "
            f"({today.isoformat()} in {time_zone}): a token lasts at most "
            f"{MAX_TOKEN_LIFETIME_DAYS} days."
        )
    return district_day_start(day + timedelta(days=1), time_zone)


def has_expired(expires_at: datetime | None, *, now: datetime) -> bool:
    """Whether a token with this expiry (None: never) no longer works at ``now``."""
    return expires_at is not None and now >= expires_at
