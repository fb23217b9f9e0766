"""The ``licensing`` command line.

Run from the repository root with no options, it uses the same configuration and database as
``make run``. Messages go to standard error; standard output carries only what scripts capture
(a new token, a schema).
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlmodel import select

from app import demo as demo_district
from app import observability
from app.reports import ExportFormat, parse_day, write_export, write_export_file
from app.runtime import build_service
from db import migrate
from db.models import District
from db.outage import is_database_unavailable
from licensing import signing
from licensing.audit import record_event
from licensing.config_check import (
    ConfigProblem,
    configuration_file,
    settings_problems,
    source_problems,
)
from licensing.districts import DistrictError, create_district, district_ref
from licensing.plugin_host import load_plugins
from licensing.problems import internal_error_text
from licensing.report import ActiveStudentFilter
from licensing.roster import collect_records, usage_mismatch
from licensing.row_ids import MAX_ROW_ID
from licensing.scheduled_jobs import service_scheduler
from licensing.scheduler import runner_name
from licensing.service import LicensingService
from licensing.settings import ConfigurationError, Settings, load_settings
from licensing.sync import SyncOutcome
from licensing.tokens import Permission, Principal, create_token, list_tokens, revoke_token
from plugins.manager import source_options
from plugins.records import SourceError

cli = typer.Typer(
    help="Manage1to1 Licensing API: serve it, set up districts, tokens and rosters.",
    no_args_is_help=True,
    add_completion=False,
)
token_cli = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
roster_cli = typer.Typer(help="Import the local roster.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema and consistency.", no_args_is_help=True)
license_cli = typer.Typer(help="Issue signed license files.", no_args_is_help=True)
district_cli = typer.Typer(help="Create and list districts.", no_args_is_help=True)
config_cli = typer.Typer(help="Check the configuration.", no_args_is_help=True)
cli.add_typer(token_cli, name="token")
cli.add_typer(roster_cli, name="roster")
cli.add_typer(db_cli, name="db")
cli.add_typer(license_cli, name="license")
cli.add_typer(district_cli, name="district")
cli.add_typer(config_cli, name="config")

logger = logging.getLogger("licensing.server")

DistrictOption = Annotated[str, typer.Option("--district", "-d", help="The district's slug.")]


def say(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    say(f"Error: {message}")
    return typer.Exit(code)


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
    return district.id


@config_cli.command("check")
def config_check() -> None:
    """Check the configuration: the settings and every district's every source's options.

    Lists every problem at once (exit status 1), or says what was checked (exit status 0).
    """
    file = configuration_file()
    problems: list[ConfigProblem] = []
    try:
        checked = Settings()
    except ValidationError as error:
        problems = settings_problems(error)
    except Exception as error:  # a TOML syntax error, a missing file named by LICENSING_CONFIG
        problems = [ConfigProblem(f"cannot read the configuration: {error}")]
    else:
        try:
            problems = source_problems(checked, load_plugins(checked))
        except Exception as error:  # a plugin that fails to load is a configuration problem too
            problems = [ConfigProblem(f"the plugins cannot be loaded: {error}")]
    if problems:
        say(f"{file}: {len(problems)} problem(s):")
        for problem in problems:
            say(f"  {file}: {problem}")
        raise typer.Exit(1)
    sources = sum(len(district.roster_sources) + 1 for district in checked.districts.values())
    typer.echo(
        f"{file}: the configuration is valid ({len(checked.districts)} district(s), "
        f"{sources} source(s) checked)."
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Serve the dashboard and the GraphQL API (upgrading an empty database first)."""
    import uvicorn

    config = settings()
    log_config = start_logging(config)
    service(upgrade=True).database.dispose()
    host, port, workers = host or config.host, port or config.port, workers or config.workers
    with observability.shared_metrics_directory(workers) as metrics_directory:
        if metrics_directory is not None:
            logger.info("Metrics of every worker are kept in %s.", metrics_directory)
        logger.info(
            "Serving the Licensing API at http://%s:%s/graphql (dashboard at /).", host, port
        )
        uvicorn.run(
            "app.factory:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config,  # applied again in each worker process
            log_level=config.log_level.lower(),
            access_log=False,  # the app writes its own access line (licensing.access)
        )


@cli.command()
def worker() -> None:
    """Run the scheduler alone (refreshes, syncs, snapshots, notifications) until interrupted.

    Use it where `licensing serve` runs with `scheduler_enabled = false`; several workers may
    run at once: a lease in the database gives each job to one of them.
    """
    config = settings()
    start_logging(config)
    built = service(upgrade=True)
    if config.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(config.worker_metrics_port, addr=config.host)
        logger.info("Metrics at http://%s:%s/metrics.", config.host, config.worker_metrics_port)
    logger.info("Scheduler running as %s. Press Ctrl+C to stop.", runner_name())

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await service_scheduler(built).run_forever(stop)

    asyncio.run(run())
    built.database.dispose()


@cli.command()
def demo(
    sign_in_link: Annotated[
        bool | None,
        typer.Option(
            "--sign-in-link/--no-sign-in-link",
            help="Create a MANAGE_SETTINGS token and print a sign-in link for the Licensing tab. "
            "Default: when standard error is a terminal (as under `make run`).",
        ),
    ] = None,
) -> None:
    """Create the demo district (1000 seats, 960 active students) unless it exists."""
    built = service(upgrade=True)
    if demo_district.demo_exists(built):
        say(f"The demo district {demo_district.DEMO_SLUG!r} is already set up.")
    else:
        asyncio.run(demo_district.create_demo(built))
        say(
            f"Created the demo district {demo_district.DEMO_SLUG!r}: "
            f"{demo_district.DEMO_NAME}, 960 / 1000 licenses used, alert threshold 50."
        )
    if sign_in_link is None:
        sign_in_link = sys.stderr.isatty()
    if sign_in_link:
        print_sign_in_link(built)
    say(
        "Or sign in with a token:\n"
        "  TOKEN=$(.venv/bin/licensing token create --district demo --permission MANAGE_SETTINGS)\n"
        '  curl -s http://127.0.0.1:8000/graphql -H "Authorization: Bearer $TOKEN" \\\n'
        "    -H 'Content-Type: application/json' \\\n"
        '    -d \'{"query": "{ license { display level status } alerts { message } }"}\''
    )


def print_sign_in_link(built: LicensingService) -> None:
    """A fresh MANAGE_SETTINGS token for the demo, in a link's fragment (never sent to the server
    or its logs): the page exchanges it once for its session cookie and removes it from the
    address bar (docs/licensing-tab.md)."""
    config = built.settings
    with built.database.write() as session:
        demo_row = session.exec(
            select(District).where(District.slug == demo_district.DEMO_SLUG)
        ).one()
        token, secret = create_token(
            session,
            district=demo_row,
            name="demo sign-in link",
            permissions={Permission.MANAGE_SETTINGS},
            now=built.clock(),
        )
        record_event(
            session,
            district_id=demo_row.id,
            actor="command line",
            action="token_created",
            outcome="created",
            now=built.clock(),
            new={"id": token.id, "name": token.name, "permissions": token.permissions},
        )
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    say(
        "Open the Licensing tab with this one-time sign-in link (once `licensing serve` runs):\n"
        f"  http://{host}:{config.port}/#token={secret}\n"
    )


@district_cli.command("create")
def district_create(
    slug: Annotated[str, typer.Argument(help="Short name used in commands, e.g. riverside.")],
    name: Annotated[str, typer.Option("--name", help="The district's official name.")],
    legal_entity_name: Annotated[
        str | None, typer.Option(help="Legal entity name, when different.")
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(help="IANA time zone; licenses expire at the end of the day there."),
    ] = None,
) -> None:
    """Create a district; then put its license file in place and run `licensing sync`."""
    built = service()
    try:
        with built.database.write() as session:
            create_district(
                session,
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


@token_cli.command("create")
def token_create(
    district: DistrictOption,
    permission: Annotated[
        list[Permission],
        typer.Option("--permission", "-p", help="MANAGE_SETTINGS or VIEW_LICENSE; repeatable."),
    ],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "",
) -> None:
    """Create a token and print it alone on standard output (it is shown only this once)."""
    built = service()
    target = district_id(built, district)
    now = built.clock()
    with built.database.write() as session:
        district_row = session.get(District, target)
        label = name or f"{'+'.join(p.value for p in permission)} token"
        token, secret = create_token(
            session, district=district_row, name=label, permissions=set(permission), now=now
        )
        token_id = token.id
        record_event(
            session,
            district_id=target,
            actor="command line",
            action="token_created",
            outcome="created",
            now=now,
            new={"id": token_id, "name": label, "permissions": token.permissions},
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
        typer.Argument(min=1, max=MAX_ROW_ID, help="The token's number, from `token list`."),
    ],
    district: DistrictOption,
) -> None:
    """Revoke a token; it stops working at once."""
    built = service()
    with built.database.write() as session:
        target = district_id(built, district)
        revoked = revoke_token(session, district_id=target, token_id=token_id, now=built.clock())
        if revoked:
            record_event(
                session,
                district_id=target,
                actor="command line",
                action="token_revoked",
                outcome="revoked",
                now=built.clock(),
                old={"id": token_id},
            )
    if not revoked:
        raise fail(f"District {district!r} has no active token {token_id}.")
    say(f"Revoked token {token_id}.")


@roster_cli.command("import")
def roster_import(
    file: Annotated[Path, typer.Argument(help="CSV file with a header row; see docs/plugins.md.")],
    district: DistrictOption,
    replace: Annotated[
        bool,
        typer.Option(help="Make the file the source's whole roster (remove people not in it)."),
    ] = False,
    source_name: Annotated[
        str, typer.Option("--source", help="The roster source that reads the file.")
    ] = "local",
) -> None:
    """Import students and staff from a file; nothing is imported if any row is bad."""
    built = service()
    target = district_id(built, district)
    try:
        source = built.plugins.roster_source(source_name)
    except LookupError as error:
        raise fail(str(error)) from None
    with built.database.read() as session:
        row = session.get(District, target)
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
        token_name="command line",
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


@roster_cli.command("deactivate")
def roster_deactivate(
    ids: Annotated[list[str], typer.Argument(help="Local-roster student ids.")],
    district: DistrictOption,
) -> None:
    """Deactivate local-roster students (all or none); they stop counting at once."""
    _set_students(district, ids, enabled=False)


@roster_cli.command("reactivate")
def roster_reactivate(
    ids: Annotated[list[str], typer.Argument(help="Local-roster student ids.")],
    district: DistrictOption,
) -> None:
    """Reactivate local-roster students (all or none)."""
    _set_students(district, ids, enabled=True)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema; existing rows are kept."""
    built = service(upgrade=True)
    say(f"Database at revision {migrate.current_revision(built.database)}.")


@db_cli.command("check")
def db_check() -> None:
    """Recount every district's usage and compare with the maintained counts."""
    built = service()
    with built.database.read() as session:
        districts = session.exec(select(District)).all()
        problems = {
            district.slug: usage_mismatch(session, district_id=district.id)
            for district in districts
        }
    bad = {slug: mismatch for slug, mismatch in problems.items() if mismatch}
    for slug, mismatch in bad.items():
        for name, (stored, recounted) in mismatch.items():
            say(f"{slug}: {name} is {stored} but a recount gives {recounted}")
    if bad:
        raise typer.Exit(1)
    say(f"Counts agree with a recount for {len(problems)} district(s).")


sync_cli = typer.Typer(
    help="Refresh licenses and roster sources now; `sync confirm` applies a held roster sync.",
    invoke_without_command=True,
)
cli.add_typer(sync_cli, name="sync")


@sync_cli.callback()
def sync(
    context: typer.Context,
    district: Annotated[
        str | None, typer.Option("--district", "-d", help="Only this district.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Only this roster source (no license refresh).")
    ] = None,
) -> None:
    """Refresh each district's license and sync its configured roster sources."""
    if context.invoked_subcommand is not None:
        return
    built = service()
    targets = _districts(built, district)
    failed = False
    for target, slug in targets:
        if source is None:
            outcome = asyncio.run(
                built.license_updater.refresh(district_id=target, actor="command line")
            )
            if outcome.problem:
                failed = True
                say(f"{slug}: license not refreshed: {outcome.problem.message}")
            else:
                say(f"{slug}: license {'updated' if outcome.updated else 'unchanged'}.")
        configured = built.settings.district(slug).roster_sources
        if source is not None and source not in configured:
            known = ", ".join(sorted(configured)) or "none"
            raise fail(f"{slug} has no roster source {source!r} (configured: {known}).")
        for name in [source] if source else sorted(configured):
            failed |= not _sync_source(built, target, slug, name)
    if failed:
        raise typer.Exit(1)


def _districts(built: LicensingService, slug: str | None) -> list[tuple[int, str]]:
    with built.database.read() as session:
        query = select(District).order_by(District.slug)
        if slug:
            query = query.where(District.slug == slug)
        targets = [(row.id, row.slug) for row in session.exec(query).all()]
    if slug and not targets:
        raise fail(f"There is no district {slug!r}.")
    return targets


def _sync_source(built: LicensingService, district_id: int, slug: str, source: str) -> bool:
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(f"{slug}: syncing {source}", total=None)
        outcome = asyncio.run(
            built.roster_sync.sync(
                district_id=district_id,
                source=source,
                actor="command line",
                on_progress=lambda seen: progress.update(task, completed=seen),
            )
        )
    return _report_sync(slug, outcome)


def _report_sync(slug: str, outcome: SyncOutcome) -> bool:
    if outcome.status == "applied":
        excluded = ", ".join(f"{reason} {count}" for reason, count in outcome.excluded.items())
        say(
            f"{slug}: {outcome.source}: {outcome.records:,} records, "
            f"{outcome.active_after:,} active students (excluded: {excluded})."
        )
        return True
    message = outcome.problem.message if outcome.problem else outcome.status
    word = outcome.status if outcome.status in ("held", "superseded") else "failed"
    say(f"{slug}: {outcome.source}: {word}: {message}")
    return False


@sync_cli.command("confirm")
def sync_confirm(
    district: DistrictOption,
    source: Annotated[str, typer.Option("--source", help="The roster source whose sync is held.")],
    run_id: Annotated[
        int | None,
        typer.Option(
            "--run", help="The held sync run you reviewed (its number is in the message)."
        ),
    ] = None,
) -> None:
    """Apply a held roster change that would remove many active students at once.

    Refused when a newer sync of the source superseded it."""
    built = service()
    target = district_id(built, district)
    outcome = asyncio.run(
        built.roster_sync.confirm(
            district_id=target, source=source, actor="command line", run_id=run_id
        )
    )
    if not _report_sync(district, outcome):
        raise typer.Exit(1)


@license_cli.command("issue")
def license_issue(
    district: DistrictOption,
    seats: Annotated[int, typer.Option(min=0, help="Licensed seats.")],
    expires: Annotated[
        str | None, typer.Option(help="Last valid day, YYYY-MM-DD (default: keep the current).")
    ] = None,
    deactivated: Annotated[bool, typer.Option(help="Issue a deactivated license.")] = False,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PEM); default: the demo key.")
    ] = None,
) -> None:
    """Sign a license and write it where the district's license file is read.

    The demo's key stands in for the licensing service's: after issuing, press Force License
    Update to see the new license.
    """
    built = service()
    target = district_id(built, district)
    key_path = key or demo_district.demo_paths(built.settings).signing_key
    if not key_path.exists():
        raise fail(f"No signing key at {key_path}.")
    state = built.read_district_state(target)
    snapshot = state.snapshot
    held = snapshot.license
    try:
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError:
        raise fail(f"--expires {expires!r} is not a date like 2027-06-30.") from None
    if held is None and expires_on is None:
        raise fail("This district has no license yet: give --expires.")
    terms = signing.LicenseTerms(
        license_id=held.license_id if held else f"M1T1-{district.upper()}-0001",
        district=district,
        licensed_to=held.licensed_to if held else snapshot.district.official_name,
        legal_entity_name=held.legal_entity_name if held else snapshot.district.legal_entity_name,
        total=seats,
        created_on=held.created_on if held else built.clock().date(),
        expires_on=expires_on or held.expires_on,
        deactivated=deactivated,
        overage_allowance=held.overage_allowance if held else 0.0,
        issued_at=built.clock(),
    )
    path = demo_district.issue_license_file(
        built.settings,
        private_key=signing.load_signing_key(key_path),
        district_slug=district,
        terms=terms,
        key_id=key_path.stem if key else demo_district.DEMO_KEY_ID,
    )
    say(
        f"Wrote a signed license for {seats} seats to {path}. Press Force License Update to apply it."
    )


@cli.command()
def schema(
    write: Annotated[Path | None, typer.Option(help="Write the SDL to this file.")] = None,
) -> None:
    """Print the GraphQL schema (SDL), or write it to a file."""
    from graph.schema import schema_sdl

    sdl = schema_sdl()
    if write is None:
        sys.stdout.write(sdl)
    else:
        write.write_text(sdl)
        say(f"Wrote {write}.")


report_cli = typer.Typer(help="Reports on who counts against the license.", no_args_is_help=True)
cli.add_typer(report_cli, name="report")


@report_cli.command("active-students")
def report_active_students(
    district: DistrictOption,
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="csv: the dashboard's download, a header row then one row per student. "
            "json: JSON Lines, one object per line and student, keyed by the CSV's columns.",
        ),
    ] = ExportFormat.CSV,
    source: Annotated[
        str | None, typer.Option(help="Only students from this roster source.")
    ] = None,
    school: Annotated[
        str | None, typer.Option(help="Only students in this school (primary or other).")
    ] = None,
    grade: Annotated[str | None, typer.Option(help="Only students in this grade.")] = None,
    graduation_year: Annotated[
        int | None, typer.Option(min=0, max=9999, help="Only students graduating this year.")
    ] = None,
    modified_before: Annotated[
        str | None,
        typer.Option(
            help="Only students last modified at their source before this day (YYYY-MM-DD)."
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(help="Part of a name, username or id; letter case does not matter."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output."),
    ] = None,
) -> None:
    """Export the students who count against the license: active, enabled students, with why
    each counts and where the record came from (docs/active-student-report.md).

    Streams a batch at a time, so a roster of any size exports with flat memory. The export goes
    to standard output (or --output); messages go to standard error.
    """
    try:
        before = parse_day(modified_before) if modified_before else None
    except ValueError as error:
        raise fail(f"--modified-before: {error}", code=2) from None
    built = service()
    target = district_id(built, district)
    report_filter = ActiveStudentFilter(
        source=source or None,
        school=school or None,
        grade=grade or None,
        graduation_year=graduation_year,
        modified_before=before,
        search=search or None,
    )
    if output is not None:
        try:
            count = write_export_file(
                built.database,
                output,
                district_id=target,
                report_filter=report_filter,
                export_format=export_format,
            )
        except OSError as error:
            raise fail(f"Cannot write {output}: {error.strerror or error}.") from None
        say(f"Wrote {count:,} active student(s) to {output}.")
        return
    try:
        count = write_export(
            built.database,
            sys.stdout,
            district_id=target,
            report_filter=report_filter,
            export_format=export_format,
        )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, a pager) stopped early: no traceback, and none at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    say(f"Exported {count:,} active student(s).")


dev_cli = typer.Typer(help="Tools for developing against this service.", no_args_is_help=True)
cli.add_typer(dev_cli, name="dev")


@dev_cli.command("license-server")
def dev_license_server(
    host: Annotated[
        str, typer.Option(help="Loopback interface only: 127.0.0.1, localhost or ::1.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    key: Annotated[
        Path | None, typer.Option(help="Ed25519 private key (PEM); default: the demo key.")
    ] = None,
    licenses: Annotated[
        Path | None,
        typer.Option(help="Folder of <slug>.license files; default: <data_dir>/licenses."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="The API key to accept; default: a new random one.")
    ] = None,
) -> None:
    """Serve the licensing-server contract on loopback, for development (docs/licensing-server.md).

    Serves the terms of each <slug>.license file in the folder, signed anew on every request.
    """
    import secrets

    import uvicorn

    from app.dev_license_server import create_license_server
    from plugins.fields import is_loopback

    if not is_loopback(host):
        raise fail(
            f"--host {host!r} refused: the development licensing server listens on loopback "
            "only (127.0.0.1, localhost or ::1).",
            code=2,
        )
    config = settings()
    key_path = key or demo_district.demo_paths(config).signing_key
    if not key_path.exists():
        raise fail(f"No signing key at {key_path}. Run `licensing demo` first, or pass --key.")
    try:
        private_key = signing.load_signing_key(key_path)
    except ValueError as error:
        raise fail(str(error)) from None
    folder = (licenses or config.data_dir / "licenses").resolve()
    accepted = api_key or secrets.token_urlsafe(32)
    app = create_license_server(
        signing_key=private_key,
        licenses=folder,
        api_keys={accepted: "*"},
        key_id=key_path.stem if key else demo_district.DEMO_KEY_ID,
    )
    url = f"http://{'[::1]' if host == '::1' else host}:{port}"
    say(
        f"Development licensing server at {url}, serving {folder}/<slug>.license, signed with "
        f"{key_path}. Point a district at it in licensing.toml:\n\n"
        "  [districts.demo]\n"
        '  license_source = "licensing_server"\n'
        f'  license_options = {{ url = "{url}", api_key = "{accepted}" }}\n'
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


# sysexits.h EX_TEMPFAIL: a temporary failure; running the command again later may succeed.
EXIT_TRY_AGAIN = 75


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
        say(f"Error: the command failed unexpectedly ({internal_error_text(error)}).")
        sys.exit(1)
