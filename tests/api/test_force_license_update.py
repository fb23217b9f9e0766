"""forceLicenseUpdate: the Force License Update button, through the real app."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import col, select

from db.models import AuditEvent
from licensing.orchestration import license_updates
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.storage import signing
from licensing.storage.changes import LICENSE_TOPICS
from licensing.storage.tokens import Principal, authenticate
from plugins.records import SignedLicense, SourceError
from tests.utils.districts import TEST_KEY_ID
from tests.utils.graphql import graphql, graphql_data

pytestmark = pytest.mark.anyio

FORCE_UPDATE = """
mutation {
  forceLicenseUpdate {
    updated throttled retryAfterSeconds
    license { status total used display level accessLevel stale lastSyncStatus lastSyncError
              expiresAt }
    errors { field code message }
  }
}
"""
LICENSE = """
{
  license { status total used display level accessLevel stale lastSyncStatus lastSyncError
            lastSyncedAt expiresAt }
  alerts { id kind severity resolvedAt }
}
"""
HISTORY = "{ alerts(includeResolved: true) { id kind resolvedAt } }"


async def force(client, token: str) -> dict:
    data = await graphql_data(client, token, FORCE_UPDATE)
    return data["forceLicenseUpdate"]


async def read_license(client, token: str) -> dict:
    return await graphql_data(client, token, LICENSE)


def principal_for(service, secret: str) -> Principal:
    with service.database.read() as session:
        principal = authenticate(session, secret=secret, now=service.clock())
    assert principal is not None
    return principal


def forced_events(service, district_id: int) -> list[AuditEvent]:
    with service.database.read() as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.district_id == district_id,
                    AuditEvent.action == "force_license_update",
                )
                .order_by(col(AuditEvent.id))
            ).all()
        )


def count_fetches(
    service, monkeypatch, *, delay: float = 0.05, until: asyncio.Event | None = None
) -> list[int]:
    """Wrap the license file source so every upstream fetch is counted (and takes a moment, or
    lasts ``until`` the event is set)."""
    source = service.plugins.license_source("license_file")
    real_fetch = source.fetch_license
    calls: list[int] = []

    async def counting_fetch(*, district):
        calls.append(1)
        await asyncio.sleep(delay)
        if until is not None:
            await asyncio.wait_for(until.wait(), timeout=60)
        return real_fetch(district=district)

    monkeypatch.setattr(source, "fetch_license", counting_fetch)
    return calls


# --- Buying more licenses ------------------------------------------------------------------------


async def test_buy_more_replace_file_force_update_see_new_total(client, make_district, issuer):
    """The demo: 960 of 1000, buy 100 more, replace the file, press the button, see 960 / 1100."""
    district = await make_district(seats=1000, active=960, threshold=50)
    before = await read_license(client, district.manager_token)
    assert before["license"]["display"] == "960 / 1000"
    assert [alert["kind"] for alert in before["alerts"]] == ["LICENSES_LOW"]
    low_alert_id = before["alerts"][0]["id"]

    issuer.write(district.slug, seats=1100)
    # Replacing the file alone changes nothing until the license is refreshed.
    assert (await read_license(client, district.manager_token))["license"]["total"] == 1000

    payload = await force(client, district.manager_token)

    assert payload["errors"] == []
    assert payload["updated"] is True
    assert payload["throttled"] is False
    assert payload["retryAfterSeconds"] is None
    assert payload["license"]["total"] == 1100
    assert payload["license"]["display"] == "960 / 1100"
    assert payload["license"]["level"] == "GREEN"
    assert payload["license"]["stale"] is False

    after = await read_license(client, district.manager_token)
    assert after["license"]["display"] == "960 / 1100"
    assert after["license"]["lastSyncStatus"] == "UPDATED"
    assert after["alerts"] == []
    history = (await graphql_data(client, district.manager_token, HISTORY))["alerts"]
    [resolved] = [alert for alert in history if alert["id"] == low_alert_id]
    assert resolved["kind"] == "LICENSES_LOW"
    assert resolved["resolvedAt"] is not None


async def test_forced_update_is_audited(client, make_district, issuer, service):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)

    await force(client, district.manager_token)

    [event] = forced_events(service, district.id)
    assert event.actor == principal_for(service, district.manager_token).actor
    assert event.outcome == "updated"
    assert json.loads(event.old_value)["total"] == 1000
    assert json.loads(event.new_value)["total"] == 1100


async def test_viewer_cannot_force_an_update(client, make_district, issuer):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)

    response = await graphql(client, district.viewer_token, FORCE_UPDATE)

    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await read_license(client, district.manager_token))["license"]["total"] == 1000


# --- Cooldown ------------------------------------------------------------------------------------


async def test_second_press_within_cooldown_is_throttled(client, make_district, issuer, clock):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    first = await force(client, district.manager_token)
    assert first["updated"] is True

    issuer.write(district.slug, seats=1200)
    second = await force(client, district.manager_token)

    assert second["throttled"] is True
    assert second["updated"] is False
    assert second["errors"] == []
    assert 1 <= second["retryAfterSeconds"] <= 60
    assert second["license"]["total"] == 1100
    assert (await read_license(client, district.manager_token))["license"]["total"] == 1100

    clock.advance(seconds=30)
    third = await force(client, district.manager_token)
    assert third["throttled"] is True
    assert 1 <= third["retryAfterSeconds"] <= 30
    assert third["license"]["total"] == 1100

    clock.advance(seconds=31)
    fourth = await force(client, district.manager_token)
    assert fourth["throttled"] is False
    assert fourth["updated"] is True
    assert fourth["license"]["total"] == 1200


async def test_press_after_cooldown_with_nothing_new_is_not_an_update(
    client, make_district, issuer, clock
):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    assert (await force(client, district.manager_token))["updated"] is True
    throttled = await force(client, district.manager_token)
    assert throttled["throttled"] is True

    clock.advance(seconds=61)
    again = await force(client, district.manager_token)

    assert again["throttled"] is False
    assert again["updated"] is False
    assert again["errors"] == []
    assert again["retryAfterSeconds"] is None
    assert again["license"]["display"] == "960 / 1100"
    assert again["license"]["lastSyncStatus"] == "UNCHANGED"


async def test_throttled_press_does_not_ask_the_source(
    client, make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    calls = count_fetches(service, monkeypatch, delay=0)

    await force(client, district.manager_token)
    await force(client, district.manager_token)
    await force(client, district.manager_token)

    assert len(calls) == 1
    outcomes = [event.outcome for event in forced_events(service, district.id)]
    assert outcomes == ["unchanged", "throttled", "throttled"]


async def test_cooldown_is_per_district(client, make_district, issuer):
    riverside = await make_district("riverside", seats=1000, active=10)
    hillcrest = await make_district("hillcrest", seats=1000, active=10)
    await force(client, riverside.manager_token)

    issuer.write(hillcrest.slug, seats=1500)
    payload = await force(client, hillcrest.manager_token)

    assert payload["throttled"] is False
    assert payload["license"]["total"] == 1500


# --- Concurrent presses --------------------------------------------------------------------------


async def test_1000_concurrent_presses_share_one_upstream_fetch(
    make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    calls = count_fetches(service, monkeypatch)
    principal = principal_for(service, district.manager_token)

    results = await asyncio.gather(*(service.force_license_update(principal) for _ in range(1000)))

    assert len(calls) == 1
    outcomes = {result.outcome for result in results}
    assert len(outcomes) == 1
    [outcome] = outcomes
    assert outcome.updated is True
    assert outcome.throttled is False
    assert outcome.problem is None
    assert {result.state.license.total for result in results} == {1100}
    assert [event.outcome for event in forced_events(service, district.id)] == ["updated"]


async def test_concurrent_presses_on_the_updater_share_one_fetch(
    make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    calls = count_fetches(service, monkeypatch)
    # Sharing is what is tested: on a loaded machine, 1,000 presses must not outlast the wait and
    # be answered "still in progress" instead.
    monkeypatch.setattr(service.settings, "force_update_wait_seconds", 600)

    outcomes = await asyncio.gather(
        *(
            service.license_updater.force_update(district_id=district.id, actor=f"press-{n}")
            for n in range(1000)
        )
    )

    assert len(calls) == 1
    assert len(set(outcomes)) == 1
    assert outcomes[0].updated is True
    assert outcomes[0].throttled is False


async def test_concurrent_presses_through_the_api_share_one_fetch(
    client, make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    presses = 20
    # The fetch lasts until every press has reached the updater: each request is signed in and
    # checked first, and on a loaded machine the last could otherwise arrive after the fetch
    # ended, to be throttled rightly (the next test) rather than share it.
    every_press_in = asyncio.Event()
    calls = count_fetches(service, monkeypatch, until=every_press_in)
    monkeypatch.setattr(service.settings, "force_update_wait_seconds", 600)  # as above
    reached: list[int] = []
    real_force_update = service.license_updater.force_update

    async def counted_force_update(**arguments):
        reached.append(1)
        if len(reached) == presses:
            every_press_in.set()
        return await real_force_update(**arguments)

    monkeypatch.setattr(service.license_updater, "force_update", counted_force_update)

    payloads = await asyncio.gather(
        *(force(client, district.manager_token) for _ in range(presses))
    )

    assert len(calls) == 1
    assert all(payload["throttled"] is False for payload in payloads)
    assert all(payload["updated"] is True for payload in payloads)
    assert {payload["license"]["total"] for payload in payloads} == {1100}


async def test_presses_after_a_shared_request_finished_are_throttled(
    make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960)
    calls = count_fetches(service, monkeypatch)
    principal = principal_for(service, district.manager_token)

    await asyncio.gather(*(service.force_license_update(principal) for _ in range(10)))
    later = await service.force_license_update(principal)

    assert len(calls) == 1
    assert later.outcome.throttled is True
    assert 1 <= later.outcome.retry_after_seconds <= 60


# --- Refused licenses ----------------------------------------------------------------------------


def flip_payload_byte(data: bytes) -> bytes:
    envelope = json.loads(data)
    text = envelope["payload"]
    index = len(text) // 2
    replacement = "B" if text[index] != "B" else "C"
    envelope["payload"] = text[:index] + replacement + text[index + 1 :]
    return json.dumps(envelope).encode("utf-8")


def flip_a_bit_of_the_payload(data: bytes) -> bytes:
    """A damaged file: one byte of the base64 payload flipped so it is no longer base64 ("a" -> "`")."""
    text = data.decode("ascii")
    start = text.index('"payload": "') + len('"payload": "')
    end = text.index('"', start)
    index = next(i for i in range(start, end) if text[i] in "aA")
    raw = bytearray(data)
    raw[index] ^= 0x01
    return bytes(raw)


def change_seats_without_signing(data: bytes) -> bytes:
    envelope = json.loads(data)
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["seats"] = 5000
    envelope["payload"] = base64.b64encode(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).decode("ascii")
    return json.dumps(envelope).encode("utf-8")


async def assert_kept_and_stale(client, token: str, payload: dict, code: str) -> None:
    assert [error["code"] for error in payload["errors"]] == [code]
    assert payload["errors"][0]["message"]
    assert payload["updated"] is False
    assert payload["throttled"] is False
    license = payload["license"]
    assert license["total"] == 1000
    assert license["display"] == "960 / 1000"
    assert license["status"] == "ACTIVE"
    assert license["stale"] is True
    assert license["lastSyncStatus"] == "FAILED"
    assert license["lastSyncError"]

    shown = (await read_license(client, token))["license"]
    assert shown["total"] == 1000
    assert shown["status"] == "ACTIVE"
    assert shown["accessLevel"] == "FULL"
    assert shown["stale"] is True
    assert shown["lastSyncStatus"] == "FAILED"
    assert shown["lastSyncError"]


@pytest.mark.parametrize(
    "tamper", [flip_payload_byte, flip_a_bit_of_the_payload, change_seats_without_signing]
)
async def test_tampered_license_is_refused_and_the_last_good_one_kept(
    client, make_district, issuer, service, tamper
):
    district = await make_district(seats=1000, active=960)
    path = service.settings.license_file_for(district.slug)
    path.write_bytes(tamper(issuer.write(district.slug, seats=1100)))

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(client, district.manager_token, payload, "BAD_SIGNATURE")
    [event] = forced_events(service, district.id)
    assert event.outcome == "failed"
    assert "BAD_SIGNATURE" in event.detail


async def test_license_signed_by_an_untrusted_key_is_refused(client, make_district, issuer):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100, key=Ed25519PrivateKey.generate())

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(client, district.manager_token, payload, "BAD_SIGNATURE")


async def test_license_for_another_district_is_refused(client, make_district, issuer):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100, district="other")

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(client, district.manager_token, payload, "WRONG_DISTRICT")


async def test_missing_license_file_keeps_the_last_good_license(client, make_district, service):
    district = await make_district(seats=1000, active=960)
    service.settings.license_file_for(district.slug).unlink()

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(
        client, district.manager_token, payload, "LICENSE_SOURCE_UNAVAILABLE"
    )


async def test_stale_clears_after_a_later_good_update(
    client, make_district, issuer, service, clock
):
    district = await make_district(seats=1000, active=960)
    service.settings.license_file_for(district.slug).unlink()
    failed = await force(client, district.manager_token)
    assert failed["license"]["stale"] is True

    issuer.write(district.slug, seats=1100)
    clock.advance(seconds=61)
    payload = await force(client, district.manager_token)

    assert payload["errors"] == []
    assert payload["updated"] is True
    shown = (await read_license(client, district.manager_token))["license"]
    assert shown["total"] == 1100
    assert shown["stale"] is False
    assert shown["lastSyncStatus"] == "UPDATED"
    assert shown["lastSyncError"] is None
    assert shown["lastSyncedAt"] is not None


async def test_older_license_is_not_applied(client, make_district, issuer, clock):
    district = await make_district(seats=1000, active=960)
    now = clock()
    clock.set(now - timedelta(days=30))
    issuer.write(district.slug, seats=1200)
    clock.set(now)

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(client, district.manager_token, payload, "OLDER_LICENSE")


# --- Deactivation --------------------------------------------------------------------------------


async def test_deactivated_license_makes_the_district_inactive_and_restricted(
    client, make_district, issuer
):
    district = await make_district(seats=1000, active=10)
    issuer.write(district.slug, seats=1000, deactivated=True)

    payload = await force(client, district.manager_token)

    assert payload["errors"] == []
    assert payload["updated"] is True
    assert payload["license"]["status"] == "INACTIVE"
    assert payload["license"]["accessLevel"] == "RESTRICTED"
    shown = await read_license(client, district.manager_token)
    assert shown["license"]["status"] == "INACTIVE"
    assert shown["license"]["accessLevel"] == "RESTRICTED"
    inactive = [alert for alert in shown["alerts"] if alert["kind"] == "INACTIVE"]
    assert len(inactive) == 1
    assert inactive[0]["severity"] == "CRITICAL"


# --- Signed, but with values that do not fit -----------------------------------------------------

TOO_MANY_SEATS = 10**20
LONG_NAME = "Riverside Unified " * 12  # 216 characters, more than a license can name


def sign_document(service, signing_key, slug: str, **changes: object) -> None:
    """Write a license file whose signed document has ``changes`` (or, as None, drops keys)."""
    terms = signing.LicenseTerms(
        license_id=f"M1T1-{slug.upper()}",
        district=slug,
        licensed_to="Test District",
        legal_entity_name=None,
        total=1100,
        created_on=date(2023, 8, 1),
        expires_on=date(2027, 6, 30),
        deactivated=False,
        overage_allowance=0.0,
        issued_at=service.clock(),
    )
    document = json.loads(signing.terms_payload(terms))
    document.update(changes)
    document = {key: value for key, value in document.items() if value is not None}
    payload = json.dumps(document).encode("utf-8")
    signed = SignedLicense(payload=payload, signature=signing_key.sign(payload), key_id=TEST_KEY_ID)
    service.settings.license_file_for(slug).write_bytes(signed.to_envelope())


@pytest.mark.parametrize(
    ("changes", "field", "bad_value"),
    [
        ({"seats": TOO_MANY_SEATS}, "seats", str(TOO_MANY_SEATS)),
        ({"seats": True}, "seats", None),
        ({"seats": -1}, "seats", None),
        ({"seats": "1100"}, "seats", None),
        ({"seats": 1100.5}, "seats", None),
        ({"licensed_to": LONG_NAME}, "licensed_to", LONG_NAME),
        ({"licensed_to": "Riverside\x00 USD"}, "licensed_to", None),
        ({"licensed_to": ""}, "licensed_to", None),
        ({"legal_entity_name": LONG_NAME}, "legal_entity_name", LONG_NAME),
        ({"license_id": "M1T1-" + "9" * 200}, "license_id", "9" * 200),
        ({"district": 12}, "district", None),
        ({"expires": "2027-02-30"}, "expires", "2027-02-30"),
        ({"created": None}, "created", None),
        ({"issued_at": "last Tuesday"}, "issued_at", "last Tuesday"),
        ({"overage_allowance": 2.5}, "overage_allowance", None),
        ({"overage_allowance": False}, "overage_allowance", None),
        ({"status": "paused"}, "status", "paused"),
    ],
)
async def test_a_signed_license_with_values_that_do_not_fit_is_a_recorded_refresh_failure(
    client, make_district, service, signing_key, changes, field, bad_value
):
    district = await make_district(seats=1000, active=960)
    sign_document(service, signing_key, district.slug, **changes)

    payload = await force(client, district.manager_token)

    await assert_kept_and_stale(client, district.manager_token, payload, "MALFORMED_LICENSE")
    message = payload["errors"][0]["message"]
    shown = (await read_license(client, district.manager_token))["license"]["lastSyncError"]
    [event] = forced_events(service, district.id)
    assert event.outcome == "failed"
    for text in (message, shown, event.detail):
        assert field in text  # the administrator is told which value is wrong
        assert "INSERT" not in text and "UPDATE" not in text and "[SQL" not in text
        if bad_value is not None:
            assert bad_value not in text  # the reason, not a dump of the document
    assert "MALFORMED_LICENSE" in event.detail


async def test_a_scheduled_refresh_of_a_license_with_too_many_seats_fails_cleanly(
    client, make_district, service, signing_key, clock
):
    district = await make_district(seats=1000, active=960)
    scheduler = service_scheduler(service, holder="runner")
    await scheduler.tick()
    sign_document(service, signing_key, district.slug, seats=TOO_MANY_SEATS)
    clock.advance(minutes=2)

    outcomes = {outcome.name: outcome for outcome in await scheduler.tick()}

    refresh = outcomes[f"license_refresh:{district.id}"]
    assert not refresh.ok
    data = await graphql_data(
        client,
        district.manager_token,
        "{ license { total stale lastSyncError } scheduledJobs { name lastError } }",
    )
    assert data["license"]["total"] == 1000
    assert data["license"]["stale"] is True
    [job] = [job for job in data["scheduledJobs"] if job["name"] == refresh.name]
    assert job["lastError"].startswith("MALFORMED_LICENSE")
    assert "seats" in job["lastError"]
    assert str(TOO_MANY_SEATS) not in job["lastError"]
    with service.database.read() as session:
        [event] = session.exec(
            select(AuditEvent).where(
                AuditEvent.district_id == district.id, AuditEvent.actor == "scheduler"
            )
        ).all()
    assert event.outcome == "failed"
    assert "seats" in event.detail


# --- A slow license source -----------------------------------------------------------------------

IN_PROGRESS_PRESS = """
mutation {
  forceLicenseUpdate {
    updated throttled inProgress retryAfterSeconds
    license { total display stale lastSyncStatus }
    errors { code message }
  }
}
"""
WAIT_SECONDS = 0.05  # how long a press waits for the source, in these tests


class SlowSource:
    """The license file source behind a gate: each fetch waits until the test opens it."""

    def __init__(self, service, monkeypatch, *, fails_with: Exception | None = None) -> None:
        source = service.plugins.license_source("license_file")
        self.real_fetch = source.fetch_license
        self.gate = asyncio.Event()
        self.asked = 0
        self.fails_with = fails_with
        monkeypatch.setattr(source, "fetch_license", self.fetch)
        monkeypatch.setattr(service.settings, "force_update_wait_seconds", WAIT_SECONDS)

    async def fetch(self, *, district):
        self.asked += 1
        await self.gate.wait()
        if self.fails_with is not None:
            raise self.fails_with
        return self.real_fetch(district=district)


async def press(client, token: str) -> dict:
    return (await graphql_data(client, token, IN_PROGRESS_PRESS))["forceLicenseUpdate"]


async def finish_in_background(service, district_id: int, slow: SlowSource) -> None:
    """Open the gate and wait, as a live subscriber does, for the update to be announced."""
    async with service.change_hub.follow(district_id, LICENSE_TOPICS) as changes:
        slow.gate.set()
        await asyncio.wait_for(changes.next_change(), timeout=10)


async def test_a_slow_source_is_answered_in_progress_and_finished_in_the_background(
    client, make_district, issuer, service, monkeypatch, clock
):
    district = await make_district(seats=1000, active=960)
    issuer.write(district.slug, seats=1100)
    slow = SlowSource(service, monkeypatch)

    first, second = await asyncio.gather(
        press(client, district.manager_token), press(client, district.manager_token)
    )

    for payload in (first, second):
        assert payload["inProgress"] is True
        assert payload["updated"] is False
        assert payload["throttled"] is False
        assert payload["errors"] == []
        assert payload["license"]["display"] == "960 / 1000"  # the license held until then
    # A press while the source is still being asked joins that request.
    again = await press(client, district.manager_token)
    assert again["inProgress"] is True
    assert slow.asked == 1

    await finish_in_background(service, district.id, slow)

    shown = (await read_license(client, district.manager_token))["license"]
    assert shown["display"] == "960 / 1100"
    assert shown["lastSyncStatus"] == "UPDATED"
    assert shown["stale"] is False
    assert [event.outcome for event in forced_events(service, district.id)] == ["updated"]
    # The cooldown started with the request: a press now is throttled, not asked again.
    later = await press(client, district.manager_token)
    assert later["throttled"] is True
    assert later["inProgress"] is False
    assert slow.asked == 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (SourceError("The license server is down."), "LICENSE_SOURCE_UNAVAILABLE"),
        (RuntimeError("a plugin bug"), "LICENSE_SOURCE_UNAVAILABLE"),
    ],
)
async def test_a_background_update_that_fails_is_recorded_like_any_refresh_failure(
    client, make_district, service, monkeypatch, failure, code
):
    district = await make_district(seats=1000, active=960)
    slow = SlowSource(service, monkeypatch, fails_with=failure)
    assert (await press(client, district.manager_token))["inProgress"] is True

    await finish_in_background(service, district.id, slow)

    shown = (await read_license(client, district.manager_token))["license"]
    assert shown["total"] == 1000
    assert shown["stale"] is True
    assert shown["lastSyncStatus"] == "FAILED"
    assert shown["lastSyncError"]
    [event] = forced_events(service, district.id)
    assert event.outcome == "failed"
    assert event.detail.startswith(code)


async def test_an_unexpected_error_while_storing_is_recorded_without_its_text(
    client, make_district, issuer, service, monkeypatch
):
    district = await make_district(seats=1000, active=960, threshold=50)
    issuer.write(district.slug, seats=10)

    def broken(*args, **kwargs):
        raise RuntimeError("INSERT INTO license_settings ... (secret parameters)")

    monkeypatch.setattr(license_updates, "lower_threshold_to_license", broken)

    payload = await press(client, district.manager_token)

    assert [error["code"] for error in payload["errors"]] == ["LICENSE_UPDATE_FAILED"]
    assert "INSERT" not in payload["errors"][0]["message"]
    shown = (await read_license(client, district.manager_token))["license"]
    assert shown["total"] == 1000
    assert shown["stale"] is True
    assert "INSERT" not in shown["lastSyncError"]
    [event] = forced_events(service, district.id)
    assert event.outcome == "failed"
    assert "INSERT" not in event.detail
