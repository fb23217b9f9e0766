"""`licensing district`: create and list districts."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from app.cli.common import fail, say, service
from db.models import District
from licensing.storage.districts import DistrictError, add_district

district_cli = typer.Typer(help="Create and list districts.", no_args_is_help=True)


@district_cli.command("create", short_help="Create a district.")
def district_create(
    slug: Annotated[str, typer.Argument(metavar="SLUG", hidden=True)],
    name: Annotated[
        str, typer.Option("--name", metavar="NAME", help="The district's official name.")
    ],
    legal_entity_name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Legal entity name, when different.")
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(
            metavar="ZONE", help="IANA time zone; licenses expire at the end of the day there."
        ),
    ] = None,
) -> None:
    """Create a district; then put its license file in place and run `licensing sync`.

    SLUG is the short name used in commands, e.g. riverside.
    """
    built = service()
    try:
        add_district(
            built.database,
            slug=slug,
            official_name=name,
            legal_entity_name=legal_entity_name,
            time_zone=time_zone or built.settings.default_time_zone,
            now=built.clock(),
        )
    except DistrictError as error:
        raise fail(str(error)) from None
    say(
        f"Created district {slug!r}. Its license file is read from "
        f"{built.settings.license_file_for(slug)}; then run `licensing sync --district {slug}`."
    )


@district_cli.command("list")
def district_list() -> None:
    """List districts: slug, time zone and official name."""
    built = service()
    with built.database.read() as session:
        for row in session.exec(select(District).order_by(District.slug)).all():
            typer.echo(f"{row.slug}\t{row.time_zone}\t{row.official_name}")
