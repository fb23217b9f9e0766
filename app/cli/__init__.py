"""The ``licensing`` command line: one module per command group, wired together here.

Run from the repository root with no options, it uses the same configuration and database as
``make run``. Messages go to standard error; standard output carries only what scripts capture
(a new token, a schema).
"""

from __future__ import annotations

import sys

import typer

from app.cli import demo, schema, serve
from app.cli.common import EXIT_TRY_AGAIN, say
from app.cli.config import config_cli
from app.cli.db import db_cli
from app.cli.dev import dev_cli
from app.cli.district import district_cli
from app.cli.license import license_cli
from app.cli.queries import queries_cli
from app.cli.report import report_cli
from app.cli.roster import roster_cli
from app.cli.sync import sync_cli
from app.cli.token import token_cli
from db.outage import is_database_unavailable
from licensing.problems import internal_error_text

cli = typer.Typer(
    help="Manage1to1 Licensing API: serve it, set up districts, tokens and rosters.",
    no_args_is_help=True,
    add_completion=False,
    # Click's plain help: paragraphs re-wrapped to the terminal, no type column (`<bool>`),
    # and a usage mistake is one `Error:` line rather than a box.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# In the order `licensing --help` lists them; a short help where the first sentence would be cut.
cli.command(short_help="Serve the dashboard and the GraphQL API.")(serve.serve)
cli.command(short_help="Run the scheduler alone, without serving.")(serve.worker)
cli.command(short_help="Create the demo district.")(demo.demo)
cli.command(short_help="Print, write, check or release the GraphQL schema.")(schema.schema)
cli.add_typer(token_cli, name="token")
cli.add_typer(roster_cli, name="roster")
cli.add_typer(db_cli, name="db")
cli.add_typer(license_cli, name="license")
cli.add_typer(district_cli, name="district")
cli.add_typer(config_cli, name="config")
cli.add_typer(sync_cli, name="sync")
cli.add_typer(report_cli, name="report")
cli.add_typer(queries_cli, name="queries")
cli.add_typer(dev_cli, name="dev")

__all__ = ["cli", "main"]


def main() -> None:
    try:
        cli()
    except Exception as error:
        # A database restarting is not a bug of the command: say so in one line, not a traceback.
        if is_database_unavailable(error):
            say(
                "Error: the database is unavailable; the command stopped (a sync applies all or "
                "nothing). Run it again once the database is back."
            )
            sys.exit(EXIT_TRY_AGAIN)
        # Typer would print the exception's text, and a database error's holds SQL and rows.
        say(
            f"Error: the command failed unexpectedly ({internal_error_text(error)}). "
            "With LICENSING_LOG_LEVEL=DEBUG the command shows the details."
        )
        sys.exit(1)
