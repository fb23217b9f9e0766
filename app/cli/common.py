"""What every command group shares: loading the settings, building the service, messages and
exit statuses.

Messages go to standard error; standard output carries only what scripts capture (a new token,
a schema, an export).
"""

from __future__ import annotations

import logging
import logging.config
from typing import Annotated, Any

import typer
from sqlmodel import select

from app import observability
from app.runtime import build_service
from db import migrate
from db.models import District
from db.session import stored_id
from licensing.orchestration.config_check import configuration_file, source_problems
from licensing.orchestration.service import LicensingService
from licensing.settings import ConfigurationError, Settings, load_settings

# Who the audit log names for a change made here.
COMMAND_LINE = "command line"

# sysexits.h EX_TEMPFAIL: a temporary failure; running the command again later may succeed.
EXIT_TRY_AGAIN = 75

logger = logging.getLogger("licensing.server")

DistrictOption = Annotated[
    str, typer.Option("--district", "-d", metavar="SLUG", help="The district's slug.")
]


def say(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    say(f"Error: {message}")
    return typer.Exit(code)


def local_url(host: str, port: int) -> str:
    """The address to reach a server listening on ``host``: this machine's loopback when it
    listens on every interface, an IPv6 address in brackets."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def start_logging(config: Settings) -> dict[str, Any]:
    """Set up logging for a long-running command; returns the set-up, for uvicorn's workers."""
    log_config = observability.logging_config(log_format=config.log_format, level=config.log_level)
    logging.config.dictConfig(log_config)
    return log_config


def settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as error:
        raise fail(str(error), code=2) from None


def service(*, upgrade: bool = False) -> LicensingService:
    """The service; an empty database is set up on the way, an older one must be upgraded."""
    built = build_service(settings(), upgrade_schema=upgrade)
    # A source's options are checked now, at start-up, not at its first fetch.
    problems = source_problems(built.settings, built.plugins)
    if problems:
        built.database.dispose()
        listed = "\n".join(f"  {problem}" for problem in problems)
        raise fail(
            f"Invalid configuration ({configuration_file()}):\n{listed}\n"
            "Run `licensing config check` to see every problem.",
            code=2,
        )
    if not upgrade:
        current = migrate.current_revision(built.database)
        if current is None:
            migrate.upgrade(built.database)
        elif current != migrate.head_revision(built.database):
            raise fail(
                "The database schema is not up to date. Run `licensing db upgrade` (or `make run`)."
            )
    return built


def district_id(built: LicensingService, slug: str) -> int:
    with built.database.read() as session:
        district = session.exec(select(District).where(District.slug == slug)).first()
    if district is None:
        raise fail(
            f"There is no district {slug!r}. (The demo district is created by `licensing demo`.)"
        )
    return stored_id(district)
