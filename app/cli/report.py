"""`licensing report`: exports of who counts against the license."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer

from app.cli.common import DistrictOption, district_id, fail, say, service
from app.report_export import (
    ExportFormat,
    QuarantineExport,
    parse_day,
    write_export,
    write_export_file,
    write_quarantined,
)
from licensing.orchestration.service import LicensingService
from licensing.storage.intake import MAX_KEPT_QUARANTINED
from licensing.storage.student_report import ActiveStudentFilter

report_cli = typer.Typer(help="Reports on who counts against the license.", no_args_is_help=True)


@report_cli.command("active-students", short_help="Export the students who count.")
def report_active_students(
    district: DistrictOption,
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv: the dashboard's download, a header row then one row per student. "
            "json: JSON Lines, one object per line and student, keyed by the CSV's columns.",
        ),
    ] = ExportFormat.CSV,
    source: Annotated[
        str | None, typer.Option(metavar="SOURCE", help="Only students from this roster source.")
    ] = None,
    school: Annotated[
        str | None,
        typer.Option(metavar="SCHOOL", help="Only students in this school (primary or other)."),
    ] = None,
    grade: Annotated[
        str | None, typer.Option(metavar="GRADE", help="Only students in this grade.")
    ] = None,
    graduation_year: Annotated[
        int | None,
        typer.Option(min=0, max=9999, metavar="YEAR", help="Only students graduating this year."),
    ] = None,
    modified_before: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Only students last modified at their source before this day (YYYY-MM-DD).",
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT", help="Part of a name, username or id; letter case does not matter."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write to this file instead of standard output.",
        ),
    ] = None,
) -> None:
    """Export the students who count against the license: active, enabled students, with why
    each counts and where the record came from.

    Streams a batch at a time, so a roster of any size exports with flat memory. The export goes
    to standard output (or --output); messages go to standard error.

    See docs/active-student-report.md.
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


@report_cli.command("quarantined", short_help="Export the rows syncs quarantined.")
def report_quarantined(
    district: DistrictOption,
    export_format: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="csv: a header row, then one row per quarantined row (source, run, file, line, "
            "reason, source_id). json: JSON Lines, one object per line, keyed by those columns.",
        ),
    ] = ExportFormat.CSV,
    source: Annotated[
        str | None, typer.Option(metavar="SOURCE", help="Only this roster source.")
    ] = None,
    run_id: Annotated[
        int | None,
        typer.Option(
            "--run", metavar="RUN", help="This sync run (its number is in dataSources) instead."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Write to this file instead of standard output.",
        ),
    ] = None,
) -> None:
    """Export the rows roster syncs quarantined: rows that could not be classified (no id, no
    role), so are not counted, each with its file, line and reason. Those of each source's
    latest finished sync, as dataSources shows them.

    See docs/roster-sync.md.
    """
    built = service()
    target = district_id(built, district)
    try:
        if output is not None:
            partial = output.with_name(f".{output.name}.partial")
            try:
                with open(partial, "w", encoding="utf-8", newline="") as out:
                    done = _quarantined(built, out, target, source, run_id, export_format)
                os.replace(partial, output)
            except OSError as error:
                raise fail(f"Cannot write {output}: {error.strerror or error}.") from None
            finally:
                partial.unlink(missing_ok=True)
        else:
            done = _quarantined(built, sys.stdout, target, source, run_id, export_format)
            sys.stdout.flush()
    except LookupError as error:
        raise fail(str(error.args[0])) from None
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(1) from None
    runs = ", ".join(f"{run.source} run {run.run_id} ({run.status})" for run in done.runs)
    say(f"Exported {done.rows:,} quarantined row(s) from {runs or 'no sync yet'}.")
    if done.quarantined > done.rows:
        say(
            f"The syncs quarantined {done.quarantined:,} rows; the first "
            f"{MAX_KEPT_QUARANTINED:,} of each sync are kept."
        )


def _quarantined(
    built: LicensingService,
    out: TextIO,
    target: int,
    source: str | None,
    run_id: int | None,
    export_format: ExportFormat,
) -> QuarantineExport:
    return write_quarantined(
        built.database,
        out,
        district_id=target,
        source=source or None,
        run_id=run_id,
        export_format=export_format,
    )
