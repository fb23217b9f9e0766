"""`licensing db`: the database schema and the consistency of its counts."""

from __future__ import annotations

import typer
from sqlmodel import select

from app.cli.common import say, service
from db import migrate
from db.models import District
from db.session import stored_id
from licensing.storage.roster import usage_mismatch

db_cli = typer.Typer(help="Database schema and consistency.", no_args_is_help=True)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema; existing rows are kept."""
    built = service(upgrade=True)
    say(f"Database at revision {migrate.current_revision(built.database)}.")


@db_cli.command("check", short_help="Recount every district's usage and compare.")
def db_check() -> None:
    """Recount every district's usage and compare with the maintained counts."""
    built = service()
    with built.database.read() as session:
        districts = session.exec(select(District)).all()
        problems = {
            district.slug: usage_mismatch(session, district_id=stored_id(district))
            for district in districts
        }
    bad = {slug: mismatch for slug, mismatch in problems.items() if mismatch}
    for slug, mismatch in bad.items():
        for name, (stored, recounted) in mismatch.items():
            say(f"{slug}: {name} is {stored} but a recount gives {recounted}")
    if bad:
        raise typer.Exit(1)
    say(f"Counts agree with a recount for {len(problems)} district(s).")
