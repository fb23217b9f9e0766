"""`licensing token`: create, list and revoke API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import COMMAND_LINE, DistrictOption, district_id, fail, say, service
from licensing.storage.row_ids import MAX_ROW_ID
from licensing.storage.tokens import Permission, issue_token, list_tokens, withdraw_token

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
) -> None:
    """Create a token and print it alone on standard output (it is shown only this once)."""
    built = service()
    target = district_id(built, district)
    label = name or f"{'+'.join(p.value for p in permission)} token"
    token_id, secret = issue_token(
        built.database,
        district_id=target,
        name=label,
        permissions=set(permission),
        actor=COMMAND_LINE,
        now=built.clock(),
    )
    say(f"Created token {token_id} for {district}. Store it now: it cannot be shown again.")
    typer.echo(secret)


@token_cli.command("list")
def token_list(district: DistrictOption) -> None:
    """List a district's tokens (their first characters only)."""
    built = service()
    with built.database.read() as session:
        tokens = list_tokens(session, district_id=district_id(built, district))
    for token in tokens:
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        typer.echo(
            f"{token.id}\t{token.prefix}…\t{','.join(token.permissions)}\t{state}\t{token.name}"
        )


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
