"""License expiry, renewal reminders and the license check, as the API reports them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

LOS_ANGELES = "America/Los_Angeles"
EXPIRES = date(2026, 6, 30)
RENEWED_EXPIRES = date(2027, 6, 30)
# 2026-06-30 ends in Los Angeles (UTC-7 in summer) at 2026-07-01T07:00Z.
LAST_MINUTE = datetime(2026, 7, 1, 6, 59, tzinfo=UTC)
MIDNIGHT_IN_LA = datetime(2026, 7, 1, 7, 0, tzinfo=UTC)

LICENSE = """
{
  license { status accessLevel expiresAt daysUntilExpiration total display stale }
  alerts { id kind severity message placements resolvedAt }
}
"""
HISTORY = "{ alerts(includeResolved: true) { id kind resolvedAt } }"
FORCE_UPDATE = """
mutation {
  forceLicenseUpdate {
    updated throttled
    license { status accessLevel expiresAt }
    errors { code message }
  }
}
"""
CHECK = """
query Check($n: Int!) { licenseCheck(additionalStudents: $n) { allowed reason } }
"""


async def read(client, token: str) -> dict:
    return await graphql_data(client, token, LICENSE)


def kinds(data: dict) -> list[str]:
    return [alert["kind"] for alert in data["alerts"]]


async def expiring_district(make_district, clock, **terms):
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    return await make_district(
        seats=1000, active=100, time_zone=LOS_ANGELES, expires_on=EXPIRES, **terms
    )


# --- License Expired -----------------------------------------------------------------------------


async def test_license_is_active_through_the_end_of_its_expiry_day_in_district_time(
    client, make_district, clock
):
    district = await expiring_district(make_district, clock)
    clock.set(LAST_MINUTE)

    data = await read(client, district.viewer_token)

    assert data["license"]["status"] == "ACTIVE"
    assert data["license"]["accessLevel"] == "FULL"
    assert data["license"]["expiresAt"] == "2026-06-30"
    assert data["license"]["daysUntilExpiration"] == 0
    assert "EXPIRED" not in kinds(data)


async def test_license_expires_at_district_midnight_without_a_sync(client, make_district, clock):
    district = await expiring_district(make_district, clock)
    clock.set(LAST_MINUTE)
    assert (await read(client, district.viewer_token))["license"]["status"] == "ACTIVE"

    clock.set(MIDNIGHT_IN_LA)
    data = await read(client, district.viewer_token)

    assert data["license"]["status"] == "EXPIRED"
    assert data["license"]["accessLevel"] == "RESTRICTED"
    assert data["license"]["daysUntilExpiration"] == -1
    assert data["license"]["stale"] is False
    expired = [alert for alert in data["alerts"] if alert["kind"] == "EXPIRED"]
    assert len(expired) == 1
    assert expired[0]["severity"] == "CRITICAL"
    assert "2026-06-30" in expired[0]["message"]
    assert set(expired[0]["placements"]) == {"DASHBOARD", "LICENSE_BANNER", "SYSTEM_INDICATOR"}
    assert "RENEWAL_DUE" not in kinds(data)


async def test_utc_district_expires_at_utc_midnight(client, make_district, clock):
    """The same expiry date in a UTC district ends seven hours earlier than in Los Angeles."""
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    district = await make_district(seats=1000, active=100, time_zone="UTC", expires_on=EXPIRES)

    clock.set(datetime(2026, 7, 1, 0, 0, tzinfo=UTC))

    assert (await read(client, district.viewer_token))["license"]["status"] == "EXPIRED"


async def test_force_update_with_the_same_expired_file_keeps_it_expired(
    client, make_district, clock
):
    district = await expiring_district(make_district, clock)
    clock.set(MIDNIGHT_IN_LA)

    payload = (await graphql_data(client, district.manager_token, FORCE_UPDATE))[
        "forceLicenseUpdate"
    ]

    assert payload["updated"] is False
    assert payload["throttled"] is False
    assert payload["errors"] == []
    assert payload["license"]["status"] == "EXPIRED"
    assert payload["license"]["accessLevel"] == "RESTRICTED"
    data = await read(client, district.manager_token)
    assert data["license"]["status"] == "EXPIRED"
    assert "EXPIRED" in kinds(data)


async def test_renewal_then_force_update_reactivates_and_resolves_the_alert(
    client, make_district, issuer, clock
):
    district = await expiring_district(make_district, clock)
    clock.set(MIDNIGHT_IN_LA)
    expired = await read(client, district.manager_token)
    [expired_alert] = [alert for alert in expired["alerts"] if alert["kind"] == "EXPIRED"]

    # Pressing the button does not renew anything by itself.
    pressed = (await graphql_data(client, district.manager_token, FORCE_UPDATE))[
        "forceLicenseUpdate"
    ]
    assert pressed["license"]["status"] == "EXPIRED"

    clock.advance(hours=2)
    issuer.write(district.slug, seats=1000, expires_on=RENEWED_EXPIRES)
    payload = (await graphql_data(client, district.manager_token, FORCE_UPDATE))[
        "forceLicenseUpdate"
    ]

    assert payload["errors"] == []
    assert payload["updated"] is True
    assert payload["license"]["status"] == "ACTIVE"
    assert payload["license"]["accessLevel"] == "FULL"
    assert payload["license"]["expiresAt"] == "2027-06-30"
    data = await read(client, district.manager_token)
    assert data["license"]["status"] == "ACTIVE"
    assert "EXPIRED" not in kinds(data)
    history = (await graphql_data(client, district.manager_token, HISTORY))["alerts"]
    [resolved] = [alert for alert in history if alert["id"] == expired_alert["id"]]
    assert resolved["kind"] == "EXPIRED"
    assert resolved["resolvedAt"] is not None


async def test_expired_license_cannot_be_refreshed_into_an_active_one_by_repeated_presses(
    client, make_district, clock
):
    district = await expiring_district(make_district, clock)
    clock.set(MIDNIGHT_IN_LA)

    for _ in range(3):
        payload = (await graphql_data(client, district.manager_token, FORCE_UPDATE))[
            "forceLicenseUpdate"
        ]
        assert payload["license"]["status"] == "EXPIRED"
        clock.advance(seconds=61)

    assert (await read(client, district.viewer_token))["license"]["status"] == "EXPIRED"


# --- Renewal reminder ----------------------------------------------------------------------------


async def test_renewal_due_appears_within_90_days_of_expiry(client, make_district, clock):
    clock.set(datetime(2027, 1, 1, 12, 0, tzinfo=UTC))
    district = await make_district(seats=1000, active=100, expires_on=RENEWED_EXPIRES)

    clock.set(datetime(2027, 3, 31, 12, 0, tzinfo=UTC))  # 91 days before 2027-06-30
    early = await read(client, district.viewer_token)
    assert early["license"]["daysUntilExpiration"] == 91
    assert "RENEWAL_DUE" not in kinds(early)

    clock.set(datetime(2027, 4, 1, 12, 0, tzinfo=UTC))  # 90 days before
    due = await read(client, district.viewer_token)
    assert due["license"]["daysUntilExpiration"] == 90
    assert due["license"]["status"] == "ACTIVE"
    [renewal] = [alert for alert in due["alerts"] if alert["kind"] == "RENEWAL_DUE"]
    assert "2027-06-30" in renewal["message"]
    assert "DASHBOARD" in renewal["placements"]

    clock.set(datetime(2027, 6, 30, 12, 0, tzinfo=UTC))  # the last day
    last_day = await read(client, district.viewer_token)
    assert last_day["license"]["status"] == "ACTIVE"
    assert "RENEWAL_DUE" in kinds(last_day)

    clock.set(datetime(2027, 7, 1, 0, 0, tzinfo=UTC))  # expired: the reminder gives way
    after = await read(client, district.viewer_token)
    assert "RENEWAL_DUE" not in kinds(after)
    assert "EXPIRED" in kinds(after)


async def test_renewal_due_grows_more_urgent_as_expiry_nears(client, make_district, clock):
    clock.set(datetime(2027, 1, 1, 12, 0, tzinfo=UTC))
    district = await make_district(seats=1000, active=100, expires_on=RENEWED_EXPIRES)

    severities = []
    for days_left in (80, 45, 10):
        clock.set(datetime(2027, 6, 30, 12, 0, tzinfo=UTC) - timedelta(days=days_left))
        data = await read(client, district.viewer_token)
        [renewal] = [alert for alert in data["alerts"] if alert["kind"] == "RENEWAL_DUE"]
        severities.append(renewal["severity"])

    assert severities == ["INFO", "WARNING", "CRITICAL"]


async def test_no_renewal_reminder_far_from_expiry(client, make_district):
    district = await make_district(seats=1000, active=100, expires_on=date(2027, 6, 30))

    data = await read(client, district.viewer_token)

    assert data["license"]["daysUntilExpiration"] > 90
    assert data["alerts"] == []


# --- License check -------------------------------------------------------------------------------


async def check(client, token: str, additional: int) -> dict:
    return (await graphql_data(client, token, CHECK, {"n": additional}))["licenseCheck"]


@pytest.mark.parametrize(
    ("additional", "expected"),
    [
        (0, {"allowed": True, "reason": "OK"}),
        (40, {"allowed": True, "reason": "OK"}),
        (41, {"allowed": True, "reason": "WITHIN_OVERAGE"}),
        (90, {"allowed": True, "reason": "WITHIN_OVERAGE"}),
        (91, {"allowed": False, "reason": "OVER_LIMIT"}),
    ],
)
async def test_license_check_with_a_5_percent_overage_allowance(
    client, make_district, additional, expected
):
    district = await make_district(seats=1000, active=960, overage_allowance=0.05)

    assert await check(client, district.viewer_token, additional) == expected


async def test_license_check_without_allowance_refuses_one_over(client, make_district):
    district = await make_district(seats=1000, active=960)

    assert await check(client, district.viewer_token, 40) == {"allowed": True, "reason": "OK"}
    assert await check(client, district.viewer_token, 41) == {
        "allowed": False,
        "reason": "OVER_LIMIT",
    }


async def test_license_check_defaults_to_one_more_student(client, make_district):
    district = await make_district(seats=1000, active=1000)

    data = await graphql_data(client, district.viewer_token, "{ licenseCheck { allowed reason } }")

    assert data["licenseCheck"] == {"allowed": False, "reason": "OVER_LIMIT"}


async def test_license_check_refuses_when_expired(client, make_district, clock):
    district = await expiring_district(make_district, clock)
    clock.set(LAST_MINUTE)
    assert await check(client, district.viewer_token, 1) == {"allowed": True, "reason": "OK"}

    clock.set(MIDNIGHT_IN_LA)

    assert await check(client, district.viewer_token, 1) == {
        "allowed": False,
        "reason": "EXPIRED",
    }


async def test_license_check_refuses_when_inactive(client, make_district):
    district = await make_district(seats=1000, active=10, deactivated=True)

    assert await check(client, district.viewer_token, 1) == {
        "allowed": False,
        "reason": "INACTIVE",
    }


async def test_license_check_rejects_a_negative_count_without_a_trace(client, make_district):
    district = await make_district(seats=1000, active=10)

    response = await graphql(client, district.viewer_token, CHECK, {"n": -1})

    assert response.status_code == 200
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_ADDITIONAL_STUDENTS"
    assert "Traceback" not in response.text
