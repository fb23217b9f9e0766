"""`licensing token`: create, list and revoke API tokens."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from app.cli.common import COMMAND_LINE, DistrictOption, district_id, fail, say, service
from db.models import District
from licensing.domain.token_expiry import (
    MAX_TOKEN_LIFETIME_DAYS,
    TokenExpiryError,
    expiry_after_day,
    expiry_after_days,
    has_expired,
)
from licensing.orchestration.service import LicensingService
from licensing.storage.row_ids import MAX_ROW_ID
from licensing.storage.tokens import Permission, issue_token, list_tokens, withdraw_token

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

token_cli = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@token_cli.command("create", short_help="Create a token and print it (shown only once).")
def token_create(
    district: DistrictOption,
    permission: Annotated[
        list[Permission],
        typer.Option(
            "--permission",
            "-p",
            case_sensitive=False,
            metavar="PERMISSION",
            help="MANAGE_SETTINGS or VIEW_LICENSE, in any letter case; repeatable.",
        ),
    ],
    name: Annotated[
        str, typer.Option(metavar="LABEL", help="A label to recognise the token by.")
    ] = "",
    expires_in: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_TOKEN_LIFETIME_DAYS,
            metavar="DAYS",
            help="Stop working this many days from now.",
        ),
    ] = None,
    expires_on: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Work through this day, YYYY-MM-DD, in the district's time zone.",
        ),
    ] = None,
) -> None:
    """Create a token and print it alone on standard output (it is shown only this once).

    With --expires-in or --expires-on (not both) it stops working at that moment; without,
    it works until revoked.
    """
    if expires_in is not None and expires_on is not None:
        raise fail("Give --expires-in or --expires-on, not both.", code=2)
    day = _day(expires_on) if expires_on is not None else None
    built = service()
    target = district_id(built, district)
    time_zone = _time_zone(built, target)
    now = built.clock()
    try:
        if expires_in is not None:
            expires_at = expiry_after_days(expires_in, now=now)
        elif day is not None:
            expires_at = expiry_after_day(day, time_zone=time_zone, now=now)
        else:
            expires_at = None
    except TokenExpiryError as error:
        option = "--expires-in" if expires_in is not None else "--expires-on"
        raise fail(f"{option}: {error}", code=2) from None
    label = name or f"{'+'.join(p.value for p in permission)} token"
    token_id, secret = issue_token(
        built.database,
        district_id=target,
        name=label,
        permissions=set(permission),
        actor=COMMAND_LINE,
        now=now,
        expires_at=expires_at,
    )
    say(f"Created token {token_id} for {district}. Store it now: it cannot be shown again.")
    if expires_at is None:
        say("It does not expire: it works until revoked.")
    else:
        say(f"It expires at {_moment(expires_at, time_zone)}.")
    typer.echo(secret)


@token_cli.command("list")
def token_list(district: DistrictOption) -> None:
    """List a district's tokens (their first characters only)."""
    built = service()
    target = district_id(built, district)
    time_zone = _time_zone(built, target)
    now = built.clock()
    with built.database.read() as session:
        tokens = list_tokens(session, district_id=target)
    for token in tokens:
        if token.revoked_at:
            state = f"revoked {token.revoked_at:%Y-%m-%d}"
        elif token.expires_at is not None and has_expired(token.expires_at, now=now):
            state = f"expired {token.expires_at.astimezone(ZoneInfo(time_zone)):%Y-%m-%d}"
        elif token.expires_at is not None:
            state = f"active until {_moment(token.expires_at, time_zone)}"
        else:
            state = "active"
        typer.echo(
            f"{token.id}\t{token.prefix}…\t{','.join(token.permissions)}\t{state}\t{token.name}"
        )


def _day(text: str) -> date:
    try:
        # Only YYYY-MM-DD: fromisoformat alone also takes 20270630 and week dates.
        if not DAY.fullmatch(text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise fail(f"--expires-on {text!r} is not a date like 2027-06-30.", code=2) from None


def _time_zone(built: LicensingService, target: int) -> str:
    with built.database.read() as session:
        district = session.get(District, target)
        return district.time_zone if district is not None else "UTC"


def _moment(moment: datetime, time_zone: str) -> str:
    """A moment as the district reads it, e.g. ``2027-07-01 00:00 CDT (America/Chicago)``."""
    local = moment.astimezone(ZoneInfo(time_zone))
    shown = f"{local:%Y-%m-%d %H:%M %Z}"
    return shown if local.tzname() == time_zone else f"{shown} ({time_zone})"


@token_cli.command("revoke")
def token_revoke(
    token_id: Annotated[
        int,
        # Described in the docstring: an argument's help row would show its Python type.
        typer.Argument(min=1, max=MAX_ROW_ID, metavar="TOKEN_ID", hidden=True),
    ],
    district: DistrictOption,
) -> None:
    """Revoke a token; it stops working at once.

    TOKEN_ID is the token's number, from `licensing token list`.
    """
    built = service()
    revoked = withdraw_token(
        built.database,
        district_id=district_id(built, district),
        token_id=token_id,
        actor=COMMAND_LINE,
        now=built.clock(),
    )
    if not revoked:
        raise fail(f"District {district!r} has no active token {token_id}.")
    say(f"Revoked token {token_id}.")
