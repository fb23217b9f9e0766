"""`licensing token create --expires-in / --expires-on` and how `token list` shows expiry: run as
an administrator runs them, against a database in tmp_path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from db.models import ApiToken, AuditEvent, District
from licensing.storage.tokens import Permission, authenticate, issue_token
from tests.utils.cli import run


@pytest.fixture
def riverside() -> None:
    run(
        "district", "create", "riverside", "--name", "Riverside Unified School District",
        "--time-zone", "America/Chicago",
    )  # fmt: skip


def create(*options: str, expect: int = 0):
    return run(
        "token", "create", "--district", "riverside", "--permission", "VIEW_LICENSE", *options,
        expect=expect,
    )  # fmt: skip


def stored_tokens(built) -> list[ApiToken]:
    with built.database.read() as session:
        return list(session.exec(select(ApiToken).order_by(ApiToken.id)).all())


def test_expires_in_days_stops_the_token_that_many_days_after_creation(riverside, built):
    result = create("--expires-in", "30")

    [token] = result.stdout.splitlines()
    assert result.stdout == token + "\n"  # still the token alone, for scripts
    [stored] = stored_tokens(built)
    assert stored.expires_at - stored.created_at == timedelta(days=30)
    local = stored.expires_at.astimezone(ZoneInfo("America/Chicago"))
    assert f"It expires at {local:%Y-%m-%d %H:%M %Z} (America/Chicago)." in result.stderr
    # It signs in until that moment, and not from it.
    with built.database.read() as session:
        before = authenticate(session, secret=token, now=stored.expires_at - timedelta(seconds=1))
        at = authenticate(session, secret=token, now=stored.expires_at)
    assert before is not None and before.expires_at == stored.expires_at
    assert at is None


def test_expires_on_works_through_the_end_of_that_day_in_the_districts_time_zone(riverside, built):
    result = create("--expires-on", "2030-06-30")

    [token] = result.stdout.splitlines()
    [stored] = stored_tokens(built)
    # Midnight at the end of June 30 in Chicago (CDT, UTC-5).
    assert stored.expires_at == datetime(2030, 7, 1, 5, 0, tzinfo=UTC)
    assert "It expires at 2030-07-01 00:00 CDT (America/Chicago)." in result.stderr
    with built.database.read() as session:
        assert authenticate(session, secret=token, now=datetime(2030, 7, 1, 4, 59, tzinfo=UTC))
        assert (
            authenticate(session, secret=token, now=datetime(2030, 7, 1, 5, 0, tzinfo=UTC)) is None
        )


def test_without_an_expiry_the_token_works_until_revoked(riverside, built):
    result = create()

    [stored] = stored_tokens(built)
    assert stored.expires_at is None
    assert "does not expire" in result.stderr


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--expires-in", "0"), "'--expires-in': Input should be greater than or equal to 1"),
        (("--expires-in", "3651"), "'--expires-in': Input should be less than or equal to 3650"),
        (("--expires-in", "-5"), "'--expires-in': Input should be greater than or equal to 1"),
        (("--expires-in", "a week"), "'--expires-in': Input should be a valid integer"),
        (("--expires-on", "2030-02-30"), "'2030-02-30' is not a date like 2027-06-30"),
        (("--expires-on", "30/06/2030"), "'30/06/2030' is not a date like 2027-06-30"),
        (("--expires-on", "20300630"), "'20300630' is not a date like 2027-06-30"),
        (("--expires-on", "2001-06-30"), "2001-06-30 is in the past (today is"),
        (("--expires-on", "2999-01-01"), "2999-01-01 is more than 3650 days after today"),
        (
            ("--expires-in", "30", "--expires-on", "2030-06-30"),
            "Give --expires-in or --expires-on, not both.",
        ),
    ],
)
def test_an_expiry_the_token_cannot_have_is_refused_and_nothing_is_created(
    riverside, built, options, said
):
    result = create(*options, expect=2)

    assert result.stdout == ""
    assert said in " ".join(result.stderr.replace("│", " ").split())
    assert "Traceback" not in result.stderr
    assert stored_tokens(built) == []


def test_a_day_in_the_past_names_the_districts_today(riverside):
    result = create("--expires-on", "2001-06-30", expect=2)

    assert "in America/Chicago): give today or a later day." in result.stderr


def test_token_list_shows_the_expiry_and_expired_tokens(riverside, built):
    create("--name", "lasting")
    create("--expires-on", "2030-06-30", "--name", "until summer 2030")
    with built.database.read() as session:
        district_id = session.exec(select(District.id).where(District.slug == "riverside")).one()
    # Created in 2020, expired on 2020-02-01 (Chicago): the clock of another day.
    issue_token(
        built.database,
        district_id=district_id,
        name="old pilot",
        permissions={Permission.VIEW_LICENSE},
        actor="command line",
        now=datetime(2020, 1, 1, tzinfo=UTC),
        expires_at=datetime(2020, 2, 1, 6, 0, tzinfo=UTC),
    )

    listing = run("token", "list", "--district", "riverside").stdout.splitlines()

    states = {line.split("\t")[4]: line.split("\t")[3] for line in listing}
    assert states == {
        "lasting": "active",
        "until summer 2030": "active until 2030-07-01 00:00 CDT (America/Chicago)",
        "old pilot": "expired 2020-02-01",
    }


def test_creating_an_expiring_token_is_audited_with_its_expiry(riverside, built):
    create("--expires-on", "2030-06-30")

    with built.database.read() as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "token_created")).all()
    assert json.loads(event.new_value)["expires_at"] == "2030-07-01T05:00:00+00:00"
