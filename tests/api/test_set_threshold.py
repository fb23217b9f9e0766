"""setThreshold and licenseSettings: the "Number of Students Remaining to Show Alert" setting."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from db.models import AuditEvent
from licensing.storage.tokens import authenticate
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

SET_THRESHOLD = """
mutation Set($value: Int!) {
  setThreshold(studentsRemaining: $value) {
    licenseSettings { studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax }
    license { display remaining level }
    errors { field code message }
  }
}
"""
SETTINGS = """
{ licenseSettings { studentsRemainingThreshold recommendedThresholdMin recommendedThresholdMax } }
"""
STATE = """
{
  license { display remaining level }
  alerts { id kind message resolvedAt }
  licenseSettings { studentsRemainingThreshold }
}
"""
HISTORY = "{ alerts(includeResolved: true) { id kind message raisedAt resolvedAt } }"


async def set_threshold(client, token: str, value: int) -> dict:
    data = await graphql_data(client, token, SET_THRESHOLD, {"value": value})
    return data["setThreshold"]


async def current_threshold(client, token: str) -> int:
    data = await graphql_data(client, token, SETTINGS)
    return data["licenseSettings"]["studentsRemainingThreshold"]


def audit_events(service, district_id: int) -> list[AuditEvent]:
    with service.database.read() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.district_id == district_id, AuditEvent.action == "set_threshold")
                .order_by(col(AuditEvent.id))
            ).all()
        )


def actor_for(service, secret: str) -> str:
    with service.database.read() as session:
        principal = authenticate(session, secret=secret, now=service.clock())
    assert principal is not None
    return principal.actor


# --- Rejected values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_code"),
    [
        (-1, "THRESHOLD_NEGATIVE"),
        (1001, "THRESHOLD_ABOVE_TOTAL"),
        (1_000_000_000, "THRESHOLD_TOO_LARGE"),
    ],
)
async def test_invalid_threshold_is_answered_in_payload_errors(
    client, make_district, value, expected_code
):
    district = await make_district(seats=1000, active=960, threshold=50)

    response = await graphql(client, district.manager_token, SET_THRESHOLD, {"value": value})

    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    payload = body["data"]["setThreshold"]
    errors = payload["errors"]
    assert errors, payload
    for error in errors:
        assert error["field"] == "studentsRemaining"
        assert error["code"]
        assert error["message"]
        assert "Traceback" not in error["message"]
    assert expected_code in {error["code"] for error in errors}
    assert payload["licenseSettings"]["studentsRemainingThreshold"] == 50
    assert await current_threshold(client, district.manager_token) == 50


async def test_rejected_threshold_leaves_level_and_alerts_alone(client, make_district):
    district = await make_district(seats=1000, active=960, threshold=50)
    before = await graphql_data(client, district.manager_token, STATE)

    for value in (-1, 1001, 1_000_000_000):
        payload = await set_threshold(client, district.manager_token, value)
        assert payload["errors"]

    after = await graphql_data(client, district.manager_token, STATE)
    assert after == before
    assert after["license"]["level"] == "YELLOW"
    assert [alert["kind"] for alert in after["alerts"]] == ["LICENSES_LOW"]


async def test_negative_threshold_message_names_the_problem(client, make_district):
    district = await make_district(seats=1000, active=10)

    payload = await set_threshold(client, district.manager_token, -1)

    assert [error["code"] for error in payload["errors"]] == ["THRESHOLD_NEGATIVE"]
    assert "negative" in payload["errors"][0]["message"].lower()


async def test_threshold_above_total_message_names_the_total(client, make_district):
    district = await make_district(seats=1000, active=10)

    payload = await set_threshold(client, district.manager_token, 1001)

    assert [error["code"] for error in payload["errors"]] == ["THRESHOLD_ABOVE_TOTAL"]
    assert "1000" in payload["errors"][0]["message"].replace(",", "")


# --- Accepted values -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1000])
async def test_zero_and_the_total_are_accepted(client, make_district, value):
    district = await make_district(seats=1000, active=960, threshold=50)

    payload = await set_threshold(client, district.manager_token, value)

    assert payload["errors"] == []
    assert payload["licenseSettings"]["studentsRemainingThreshold"] == value
    assert await current_threshold(client, district.manager_token) == value


async def test_threshold_zero_turns_960_of_1000_green_and_the_total_turns_it_yellow(
    client, make_district
):
    district = await make_district(seats=1000, active=960, threshold=50)

    zero = await set_threshold(client, district.manager_token, 0)
    assert zero["license"]["level"] == "GREEN"
    assert (await graphql_data(client, district.manager_token, STATE))["alerts"] == []

    everything = await set_threshold(client, district.manager_token, 1000)
    assert everything["license"]["level"] == "YELLOW"
    state = await graphql_data(client, district.manager_token, STATE)
    assert [alert["kind"] for alert in state["alerts"]] == ["LICENSES_LOW"]


async def test_valid_change_moves_level_and_alerts_at_once(client, make_district):
    """960 of 1000: threshold 50 is yellow, 30 is green, and back to 50 raises a new alert."""
    district = await make_district(seats=1000, active=960, threshold=50)
    token = district.manager_token

    start = await graphql_data(client, token, STATE)
    assert start["license"]["level"] == "YELLOW"
    assert [alert["kind"] for alert in start["alerts"]] == ["LICENSES_LOW"]
    assert start["alerts"][0]["message"] == (
        "You have 40 licenses remaining. Consider purchasing additional licenses."
    )
    first_alert_id = start["alerts"][0]["id"]

    lowered = await set_threshold(client, token, 30)
    assert lowered["errors"] == []
    assert lowered["license"]["level"] == "GREEN"
    assert lowered["licenseSettings"]["studentsRemainingThreshold"] == 30

    after_lowering = await graphql_data(client, token, STATE)
    assert after_lowering["license"]["level"] == "GREEN"
    assert after_lowering["alerts"] == []
    history = (await graphql_data(client, token, HISTORY))["alerts"]
    resolved = [alert for alert in history if alert["id"] == first_alert_id]
    assert len(resolved) == 1
    assert resolved[0]["kind"] == "LICENSES_LOW"
    assert resolved[0]["resolvedAt"] is not None

    raised = await set_threshold(client, token, 50)
    assert raised["errors"] == []
    assert raised["license"]["level"] == "YELLOW"

    again = await graphql_data(client, token, STATE)
    assert [alert["kind"] for alert in again["alerts"]] == ["LICENSES_LOW"]
    assert again["alerts"][0]["resolvedAt"] is None
    assert again["alerts"][0]["id"] != first_alert_id

    history = (await graphql_data(client, token, HISTORY))["alerts"]
    low_alerts = {alert["id"]: alert for alert in history if alert["kind"] == "LICENSES_LOW"}
    assert set(low_alerts) == {first_alert_id, again["alerts"][0]["id"]}
    assert low_alerts[first_alert_id]["resolvedAt"] is not None
    assert low_alerts[again["alerts"][0]["id"]]["resolvedAt"] is None


async def test_raising_the_threshold_raises_the_alert_at_once(client, make_district):
    district = await make_district(seats=1000, active=900, threshold=50)
    assert (await graphql_data(client, district.manager_token, STATE))["alerts"] == []

    payload = await set_threshold(client, district.manager_token, 100)

    assert payload["license"]["level"] == "YELLOW"
    state = await graphql_data(client, district.manager_token, STATE)
    assert [alert["message"] for alert in state["alerts"]] == [
        "You have 100 licenses remaining. Consider purchasing additional licenses."
    ]


# --- Audit log -----------------------------------------------------------------------------------


async def test_every_call_is_audited_with_actor_old_new_and_outcome(client, make_district, service):
    district = await make_district(seats=1000, active=960, threshold=50)
    actor = actor_for(service, district.manager_token)

    await set_threshold(client, district.manager_token, 30)
    await set_threshold(client, district.manager_token, -1)
    await set_threshold(client, district.manager_token, 1001)
    await set_threshold(client, district.manager_token, 75)

    events = audit_events(service, district.id)
    assert [
        (event.actor, json.loads(event.old_value), json.loads(event.new_value), event.outcome)
        for event in events
    ] == [
        (actor, 50, 30, "changed"),
        (actor, 30, -1, "rejected"),
        (actor, 30, 1001, "rejected"),
        (actor, 30, 75, "changed"),
    ]
    assert all(event.occurred_at is not None for event in events)
    assert events[1].detail and "negative" in events[1].detail.lower()


async def test_audit_names_the_caller_not_another_token(client, make_district, service):
    first = await make_district("riverside", seats=1000, active=10)
    second = await make_district("hillcrest", seats=1000, active=10)

    await set_threshold(client, second.manager_token, 20)

    assert audit_events(service, first.id) == []
    [event] = audit_events(service, second.id)
    assert event.actor == actor_for(service, second.manager_token)
    assert event.actor != actor_for(service, second.viewer_token)


# --- Recommended range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "seats", "expected"),
    [
        (300, 1000, (25, 50)),
        (499, 1000, (25, 50)),
        (500, 1000, (50, 100)),
        (960, 1000, (50, 100)),
        (2000, 3000, (50, 100)),
        (2001, 3000, (100, 200)),
        (2500, 3000, (100, 200)),
    ],
)
async def test_recommended_range_follows_district_size(
    client, make_district, active, seats, expected
):
    district = await make_district(seats=seats, active=active)

    settings = (await graphql_data(client, district.manager_token, SETTINGS))["licenseSettings"]

    assert (
        settings["recommendedThresholdMin"],
        settings["recommendedThresholdMax"],
    ) == expected
    assert settings["studentsRemainingThreshold"] == 50


# --- A smaller license lowers a threshold it no longer allows ---------------------------------------

FORCE_UPDATE = """
mutation {
  forceLicenseUpdate { updated license { display } errors { code } notices { field code message } }
}
"""
THRESHOLD_SETTINGS = "{ licenseSettings { studentsRemainingThreshold maximumThreshold } }"


async def force_update(client, token: str) -> dict:
    return (await graphql_data(client, token, FORCE_UPDATE))["forceLicenseUpdate"]


async def test_a_license_smaller_than_the_threshold_lowers_it_and_says_so(
    client, make_district, issuer, service
):
    district = await make_district(seats=1000, active=90, threshold=200)
    issuer.write(district.slug, seats=150)

    forced = await force_update(client, district.manager_token)

    assert forced["errors"] == []
    assert forced["license"]["display"] == "90 / 150"
    [notice] = forced["notices"]
    assert notice["code"] == "THRESHOLD_LOWERED"
    assert notice["field"] == "studentsRemaining"
    assert "200" in notice["message"] and "150" in notice["message"]
    shown = (await graphql_data(client, district.manager_token, THRESHOLD_SETTINGS))[
        "licenseSettings"
    ]
    assert shown == {"studentsRemainingThreshold": 150, "maximumThreshold": 150}
    # The value the tab shows can be saved again.
    saved = await set_threshold(client, district.manager_token, shown["studentsRemainingThreshold"])
    assert saved["errors"] == []
    lowered, resaved = audit_events(service, district.id)
    assert (lowered.outcome, json.loads(lowered.old_value), json.loads(lowered.new_value)) == (
        "lowered",
        200,
        150,
    )
    assert lowered.actor.startswith("license update")
    assert actor_for(service, district.manager_token) in lowered.actor
    assert lowered.detail == notice["message"]
    assert resaved.outcome == "changed"


async def test_a_scheduled_refresh_lowers_the_threshold_too(
    client, make_district, issuer, service, clock
):
    from licensing.orchestration.scheduled_jobs import service_scheduler

    district = await make_district(seats=1000, active=10, threshold=100)
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()
    issuer.write(district.slug, seats=40)
    clock.advance(minutes=2)

    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}

    refreshed = outcomes[f"license_refresh:{district.id}"]
    assert refreshed.ok
    assert "lowered to 40" in refreshed.detail
    assert await current_threshold(client, district.manager_token) == 40
    [lowered] = audit_events(service, district.id)
    assert lowered.actor == "license update (scheduler)"


async def test_a_license_that_still_allows_the_threshold_leaves_it_alone(
    client, make_district, issuer, service
):
    district = await make_district(seats=1000, active=90, threshold=150)
    issuer.write(district.slug, seats=150)

    forced = await force_update(client, district.manager_token)

    assert forced["notices"] == []
    assert await current_threshold(client, district.manager_token) == 150
    assert audit_events(service, district.id) == []
