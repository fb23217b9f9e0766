"""`licensing roster`: import the local roster, deactivate and reactivate its students."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import COMMAND_LINE, DistrictOption, district_id, fail, say, service
from db.models import District
from db.session import get_existing
from licensing.problems import internal_error_text
from licensing.storage.districts import district_ref
from licensing.storage.roster import collect_records
from licensing.storage.tokens import Permission, Principal
from plugins.manager import source_options
from plugins.records import SourceError

roster_cli = typer.Typer(
    help="Import the local roster; deactivate and reactivate its students.", no_args_is_help=True
)


@roster_cli.command("import", short_help="Import students and staff from a CSV file.")
def roster_import(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", hidden=True),
    ],
    district: DistrictOption,
    replace: Annotated[
        bool,
        typer.Option(
            show_default=False,
            help="Make the file the source's whole roster (remove people not in it).",
        ),
    ] = False,
    source_name: Annotated[
        str,
        typer.Option("--source", metavar="SOURCE", help="The source that reads the file."),
    ] = "local",
) -> None:
    """Import students and staff from a file; nothing is imported if any row is bad.

    FILE is a CSV file with a header row (docs/plugins.md), read by the roster source.
    """
    built = service()
    target = district_id(built, district)
    try:
        source = built.plugins.roster_source(source_name)
    except LookupError as error:
        raise fail(str(error)) from None
    with built.database.read() as session:
        row = get_existing(session, District, target)
    try:
        records = asyncio.run(
            collect_records(
                source.fetch_students(
                    district=district_ref(row),
                    options=source_options(source, {"path": str(file)}),
                )
            )
        )
        outcome = built.apply_roster(
            target, source=source_name, records=records, replace=replace, kind=source_name
        )
    except SourceError as error:
        raise fail(str(error)) from None
    except Exception as error:  # a plugin's bug, or the database's: nothing was applied
        raise fail(
            f"The roster source {source_name!r} failed unexpectedly "
            f"({internal_error_text(error)}). Nothing was imported."
        ) from None
    if outcome.warnings or outcome.quarantined:
        say(
            f"{outcome.warnings:,} warning(s), {outcome.quarantined:,} row(s) quarantined (not "
            "counted); dataSources shows them, `licensing report quarantined` exports the rows."
        )
    if outcome.status != "applied":
        message = outcome.problem.message if outcome.problem else outcome.status
        raise fail(f"Nothing imported yet: {message}")
    say(
        f"Imported {outcome.records} record(s). Active students: "
        f"{outcome.used_before} -> {outcome.used_after}."
    )


def _set_students(district: str, ids: list[str], *, enabled: bool) -> None:
    built = service()
    target = district_id(built, district)
    principal = Principal(
        token_id=0,
        token_name=COMMAND_LINE,
        district_id=target,
        district_slug=district,
        permissions=frozenset(Permission),
    )
    update = asyncio.run(built.set_local_students_enabled(principal, ids, enabled=enabled))
    if update.problems:
        for problem in update.problems:
            say(f"Error: {problem.message}")
        raise typer.Exit(1)
    used = update.state.license.display if update.state.license else "no license yet"
    say(
        f"{'Reactivated' if enabled else 'Deactivated'} {update.changed} student(s). Licenses: {used}."
    )


@roster_cli.command("deactivate", short_help="Deactivate local-roster students.")
def roster_deactivate(
    ids: Annotated[list[str], typer.Argument(metavar="STUDENT_ID", hidden=True)],
    district: DistrictOption,
) -> None:
    """Deactivate local-roster students (all or none); they stop counting at once.

    Each STUDENT_ID is a local-roster student's id.
    """
    _set_students(district, ids, enabled=False)


@roster_cli.command("reactivate", short_help="Reactivate local-roster students.")
def roster_reactivate(
    ids: Annotated[list[str], typer.Argument(metavar="STUDENT_ID", hidden=True)],
    district: DistrictOption,
) -> None:
    """Reactivate local-roster students (all or none).

    Each STUDENT_ID is a local-roster student's id.
    """
    _set_students(district, ids, enabled=True)
