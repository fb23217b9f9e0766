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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlmodel import select

from app import observability
from app.runtime import build_service
from db import migrate
from db.models import District
from db.outage import is_database_unavailable
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
    log_config = observability.logging_config(
        log_format=observability.resolved_log_format(config.log_format), level=config.log_level
    )
    logging.config.dictConfig(log_config)
    return log_config


def settings() -> Settings:
    try:
        config = load_settings()
    except ConfigurationError as error:
        raise fail(str(error), code=2) from None
    observability.start_command_line_logging(config.log_level)
    return config


def service(*, upgrade: bool = False) -> LicensingService:
    """The service; an empty database is set up on the way, an older one must be upgraded."""
    config = settings()
    try:
        built = _connected_service(config, upgrade=upgrade)
    except (ArgumentError, NoSuchModuleError):
        raise fail(
            "database_url is not a database URL this service can use; write it like "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE or sqlite:///PATH.",
            code=2,
        ) from None
    except ImportError as error:  # the dialect's driver is not installed
        raise fail(
            f"database_url needs the Python package {error.name!r}, which is not installed; "
            "use PostgreSQL (postgresql+psycopg://...) or SQLite (sqlite:///...).",
            code=2,
        ) from None
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        raise fail(
            f"Cannot connect to the database at {_shown_url(config.effective_database_url)}. "
            "Check database_url, and that the database is running."
        ) from None
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


def _connected_service(config: Settings, *, upgrade: bool) -> LicensingService:
    """The service, once its database has answered (so a wrong URL fails here, in one line)."""
    built = build_service(config, upgrade_schema=upgrade)
    try:
        with built.database.engine.connect():
            pass
    except Exception:
        built.database.dispose()
        raise
    return built


def _shown_url(url: str) -> str:
    """The database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)


def district_id(built: LicensingService, slug: str) -> int:
    with built.database.read() as session:
        district = session.exec(select(District).where(District.slug == slug)).first()
    if district is None:
        raise fail(
            f"There is no district {slug!r}. (The demo district is created by `licensing demo`.)"
        )
    return stored_id(district)
