"""`licensing schema`: the GraphQL schema's SDL, the change check and the release of a schema."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import fail, say

# Relative to the repository root, where `make` and the command line run.
SCHEMA_FILE = Path("schema.graphql")
RELEASED_FILE = Path("docs/schema/released.graphql")
CHANGELOG_FILE = Path("docs/api-changes.md")


def schema(
    write: Annotated[
        Path | None,
        typer.Option(metavar="FILE", dir_okay=False, help="Write the SDL to this file."),
    ] = None,
    check_changes: Annotated[
        bool,
        typer.Option(
            "--check-changes",
            help="Compare the schema file with the released schema; fail on a breaking change "
            "the changelog does not name (docs/api-changes.md).",
        ),
    ] = False,
    release: Annotated[
        bool,
        typer.Option(
            "--release",
            help="Release the changelog's unreleased version: check, copy the schema file to the "
            "released schema, date the section and open the next one.",
        ),
    ] = False,
    release_date: Annotated[
        str | None,
        typer.Option(
            "--date",
            metavar="YYYY-MM-DD",
            help="The day the schema ships, YYYY-MM-DD: the release date, and the end of "
            "deprecation periods (default: today, UTC).",
        ),
    ] = None,
    schema_file: Annotated[
        Path,
        typer.Option(
            metavar="FILE",
            dir_okay=False,
            help="The current schema (with --check-changes, --release).",
        ),
    ] = SCHEMA_FILE,
    released_file: Annotated[
        Path,
        typer.Option(
            metavar="FILE", dir_okay=False, help="The last released schema, the baseline."
        ),
    ] = RELEASED_FILE,
    changelog: Annotated[
        Path,
        typer.Option(
            metavar="FILE", dir_okay=False, help="The policy and changelog the check reads."
        ),
    ] = CHANGELOG_FILE,
) -> None:
    """Print the GraphQL schema (SDL) or write it to a file; check it against the last release,
    or release it."""
    if check_changes or release:
        _check_or_release(
            release=release,
            release_date=release_date,
            schema_file=schema_file,
            released_file=released_file,
            changelog=changelog,
        )
        return

    from graph.schema import schema_sdl

    sdl = schema_sdl()
    if write is None:
        sys.stdout.write(sdl)
    else:
        try:
            write.write_text(sdl)
        except OSError as error:
            raise fail(f"Cannot write {write}: {error.strerror}.") from None
        say(f"Wrote {write}.")


def _check_or_release(
    *,
    release: bool,
    release_date: str | None,
    schema_file: Path,
    released_file: Path,
    changelog: Path,
) -> None:
    from graph import schema_changes

    try:
        on = date.fromisoformat(release_date) if release_date else datetime.now(UTC).date()
    except ValueError:
        raise fail(f"--date must read YYYY-MM-DD, not {release_date!r}.", code=2) from None
    current_sdl = _read(schema_file)
    changelog_text = _read(changelog)
    try:
        report = schema_changes.check_changes(
            current_sdl=current_sdl,
            released_sdl=_read(released_file),
            changelog=changelog_text,
            today=on,
        )
        # The report is what a person asked for: on standard output.
        sys.stdout.write(report.text())
        if not report.passed:
            raise typer.Exit(1)
        if not release:
            return
        released = schema_changes.release(
            current_sdl=current_sdl, changelog=changelog_text, released_on=on
        )
    except schema_changes.ChangePolicyError as error:
        raise fail(str(error)) from None
    released_file.write_text(released.released_schema)
    changelog.write_text(released.changelog)
    say(
        f"Released {released.version} ({on.isoformat()}): wrote {released_file}, dated its "
        f"changelog section and opened {released.next_version} in {changelog}. "
        f"Set version = {released.version!r} in pyproject.toml, commit and tag v{released.version}."
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"{path} does not exist.") from None
