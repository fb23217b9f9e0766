"""`licensing sync` and `licensing sync confirm`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlmodel import select

from app.cli.common import COMMAND_LINE, DistrictOption, district_id, fail, say, service
from db.models import District
from db.session import stored_id
from licensing.orchestration.service import LicensingService
from licensing.orchestration.sync import SyncOutcome

sync_cli = typer.Typer(
    help="Refresh licenses and roster sources now; `sync confirm` applies a held roster sync.",
    short_help="Refresh licenses and roster sources now.",
    invoke_without_command=True,
)


@sync_cli.callback()
def sync(
    context: typer.Context,
    district: Annotated[
        str | None, typer.Option("--district", "-d", metavar="SLUG", help="Only this district.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source", metavar="SOURCE", help="Only this roster source (no license refresh)."
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Ask each source for its whole roster, not only what changed."),
    ] = False,
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
                built.license_updater.refresh(district_id=target, actor=COMMAND_LINE)
            )
            if outcome.problem:
                failed = True
                say(f"{slug}: license not refreshed: {outcome.problem.message}")
                if outcome.detail:  # the operator's own terminal: where and why, in full
                    say(f"{slug}: detail: {outcome.detail}")
            else:
                say(f"{slug}: license {'updated' if outcome.updated else 'unchanged'}.")
        configured = built.settings.district(slug).roster_sources
        if source is not None and source not in configured:
            known = ", ".join(sorted(configured)) or "none"
            raise fail(f"{slug} has no roster source {source!r} (configured: {known}).")
        for name in [source] if source else sorted(configured):
            failed |= not _sync_source(built, target, slug, name, full=full)
    if failed:
        raise typer.Exit(1)


def _districts(built: LicensingService, slug: str | None) -> list[tuple[int, str]]:
    with built.database.read() as session:
        query = select(District).order_by(District.slug)
        if slug:
            query = query.where(District.slug == slug)
        targets = [(stored_id(row), row.slug) for row in session.exec(query).all()]
    if slug and not targets:
        raise fail(f"There is no district {slug!r}.")
    return targets


def _sync_source(
    built: LicensingService, district_id: int, slug: str, source: str, *, full: bool
) -> bool:
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
                actor=COMMAND_LINE,
                on_progress=lambda seen: progress.update(task, completed=seen),
                full=full,
            )
        )
    return _report_sync(slug, outcome)


def _report_sync(slug: str, outcome: SyncOutcome) -> bool:
    if outcome.status == "applied":
        excluded = ", ".join(f"{reason} {count}" for reason, count in outcome.excluded.items())
        how = "delta applied: " if outcome.mode == "delta" else ""
        say(
            f"{slug}: {outcome.source}: {how}{outcome.records:,} records, "
            f"{outcome.active_after:,} active students (excluded: {excluded})."
        )
        _report_intake(slug, outcome)
        return True
    if outcome.status == "unchanged":
        say(f"{slug}: {outcome.source}: unchanged: {outcome.note or 'nothing new'}")
        return True
    message = outcome.problem.message if outcome.problem else outcome.status
    word = outcome.status if outcome.status in ("held", "superseded") else "failed"
    say(f"{slug}: {outcome.source}: {word}: {message}")
    _report_intake(slug, outcome)
    return False


def _report_intake(slug: str, outcome: SyncOutcome) -> None:
    """What the source read past and could not classify, when anything."""
    if outcome.warnings or outcome.quarantined:
        say(
            f"{slug}: {outcome.source}: {outcome.warnings:,} warning(s), "
            f"{outcome.quarantined:,} row(s) quarantined (not counted); dataSources shows them, "
            "`licensing report quarantined` exports the quarantined rows."
        )


@sync_cli.command("confirm", short_help="Apply a held roster sync.")
def sync_confirm(
    district: DistrictOption,
    source: Annotated[
        str,
        typer.Option("--source", metavar="SOURCE", help="The roster source whose sync is held."),
    ],
    run_id: Annotated[
        int | None,
        typer.Option(
            "--run",
            metavar="RUN",
            help="The held sync run you reviewed (its number is in the message).",
        ),
    ] = None,
) -> None:
    """Apply a held roster change that would remove many active students at once.

    Refused when a newer sync of the source superseded it."""
    built = service()
    target = district_id(built, district)
    outcome = asyncio.run(
        built.roster_sync.confirm(
            district_id=target, source=source, actor=COMMAND_LINE, run_id=run_id
        )
    )
    if not _report_sync(district, outcome):
        raise typer.Exit(1)
