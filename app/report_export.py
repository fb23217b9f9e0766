"""The active-student report as a file: the CSV download and the `licensing report` command.

Both write the rows of ``licensing.storage.student_report.iter_active_students`` a batch at a time, so a roster
of any size is exported with flat memory: the download streams each batch to the client as it is
read, the command writes it to standard output or a file.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) are written with a leading single quote, so opening the file never runs
what a roster source put in a name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from anyio import to_thread
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from db.models import District
from db.session import Database, get_existing
from licensing.domain.error_codes import ErrorCode
from licensing.domain.rules import district_today
from licensing.storage import intake
from licensing.storage import student_report as report
from licensing.storage.student_report import (
    EXPORT_COLUMNS,
    ActiveStudentFilter,
    ActiveStudentRow,
    export_values,
    iter_active_students,
    iter_export_values,
)
from licensing.storage.tokens import Permission, Principal

if TYPE_CHECKING:
    from licensing.orchestration.service import LicensingService

Row = TypeVar("Row")

REPORT_PATH = "/reports/active-students.csv"
# Points a download draws from its token's budget (docs/limits.md): what a full 100-row page of
# the activeStudents connection costs, however many rows the district has.
REPORT_DOWNLOAD_COST = 100
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
MAX_TEXT_PARAMETER = 200
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
TEXT_PARAMETERS = ("source", "school", "grade", "search")
QUERY_PARAMETERS = (*TEXT_PARAMETERS, "graduationYear", "modifiedBefore")


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


# Formatting, shared by the download, the command and the benchmark.


def csv_header() -> str:
    return _csv_text([EXPORT_COLUMNS])


# A cell's start in CSV text (after a comma or a line break) followed by what makes a spreadsheet
# read it as a formula, or by a quote (a quoted cell may start with one inside). A comma or line
# break inside a quoted cell may match too: that only sends its batch the slow way.
MAYBE_FORMULA = re.compile(r'[,\n][=+\-@\t\r"]')
MAYBE_FORMULA_FIRST = (*FORMULA_TRIGGERS, '"')


def csv_lines(rows: list[list[Any]]) -> str:
    """Rows of export values (``export_values``) as CSV lines (CRLF-terminated, as RFC 4180
    and spreadsheets expect), a text that a spreadsheet would read as a formula written with a
    leading single quote."""
    text = _csv_text(rows)
    if not text.startswith(MAYBE_FORMULA_FIRST) and MAYBE_FORMULA.search(text) is None:
        # No cell of the batch starts like a formula (nearly every batch): written as it is.
        return text
    # Inlined rather than a function per cell: a call per cell costs a tenth of the export.
    return _csv_text(
        [
            "'" + value if value.__class__ is str and value.startswith(FORMULA_TRIGGERS) else value
            for value in values
        ]
        for values in rows
    )


def _csv_text(lines: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(lines)
    return buffer.getvalue()


def json_record(row: ActiveStudentRow) -> dict[str, Any]:
    """One row as a JSON object with the CSV's columns: the same values, but ``enabled`` a
    boolean, ``graduation_year`` a number, ``schools`` a list and empty fields null."""
    typed: dict[str, Any] = {
        "enabled": row.enabled,
        "graduation_year": row.graduation_year,
        "schools": list(row.schools),
    }
    return {
        column: typed.get(column, None if value == "" else value)
        for column, value in zip(EXPORT_COLUMNS, export_values(row), strict=True)
    }


def json_lines(rows: Iterable[ActiveStudentRow]) -> str:
    """The rows as JSON Lines: one object per line."""
    return "".join(json.dumps(json_record(row), ensure_ascii=False) + "\n" for row in rows)


def next_batch(rows: Iterator[Row]) -> list[Row]:
    """The next batch of rows (the size the report reads at once); empty when none are left."""
    return list(islice(rows, report.EXPORT_BATCH))


def export_chunks(
    database: Database,
    *,
    district_id: int,
    report_filter: ActiveStudentFilter,
    export_format: ExportFormat,
) -> Iterator[tuple[str, int]]:
    """The export as text chunks, with how many rows each one holds: the CSV header first
    (no header for JSON Lines), then one chunk per batch."""
    if export_format is ExportFormat.CSV:
        yield csv_header(), 0
        values = iter_export_values(database, district_id=district_id, report_filter=report_filter)
        try:
            while batch := next_batch(values):
                yield csv_lines(batch), len(batch)
        finally:
            values.close()
        return
    rows = iter_active_students(database, district_id=district_id, report_filter=report_filter)
    try:
        while students := next_batch(rows):
            yield json_lines(students), len(students)
    finally:
        rows.close()


def write_export(
    database: Database,
    out: TextIO,
    *,
    district_id: int,
    report_filter: ActiveStudentFilter,
    export_format: ExportFormat,
) -> int:
    """Write the whole export to ``out`` a batch at a time; the number of rows written."""
    written = 0
    for text, count in export_chunks(
        database, district_id=district_id, report_filter=report_filter, export_format=export_format
    ):
        out.write(text)
        written += count
    return written


def write_export_file(
    database: Database,
    path: Path,
    *,
    district_id: int,
    report_filter: ActiveStudentFilter,
    export_format: ExportFormat,
) -> int:
    """Write the export to ``path``: to a temporary file beside it first, so a failed export
    never leaves a partial file behind. The number of rows written."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as out:
            written = write_export(
                database,
                out,
                district_id=district_id,
                report_filter=report_filter,
                export_format=export_format,
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return written


# Parameters


class ReportParameterError(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def parse_day(text: str) -> date:
    """A date written YYYY-MM-DD, or ValueError."""
    if not DATE_PATTERN.fullmatch(text):
        raise ValueError(f"{text!r} is not a date like 2026-06-30.")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2026-06-30.") from None


def filter_from_query(params: QueryParams) -> ActiveStudentFilter:
    """The report filter the download's query parameters ask for; ReportParameterError naming
    the parameter for an unknown, repeated or malformed one. Empty values filter nothing."""
    values: dict[str, str] = {}
    for name in params:
        if name not in QUERY_PARAMETERS:
            known = ", ".join(QUERY_PARAMETERS)
            raise ReportParameterError(
                name, f"Unknown parameter {name!r}: the report takes {known}."
            )
        given = params.getlist(name)
        if len(given) > 1:
            raise ReportParameterError(name, f"Give the parameter {name!r} once.")
        if given[0] != "":
            values[name] = given[0]
    text: dict[str, str] = {}
    for name in TEXT_PARAMETERS:
        if name in values:
            if len(values[name]) > MAX_TEXT_PARAMETER:
                raise ReportParameterError(
                    name, f"The parameter {name!r} is longer than {MAX_TEXT_PARAMETER} characters."
                )
            text[name] = values[name]
    graduation_year = None
    if "graduationYear" in values:
        raw = values["graduationYear"]
        if not re.fullmatch(r"\d{1,4}", raw):
            raise ReportParameterError(
                "graduationYear", f"The parameter 'graduationYear' must be a year, not {raw!r}."
            )
        graduation_year = int(raw)
    modified_before = None
    if "modifiedBefore" in values:
        try:
            modified_before = parse_day(values["modifiedBefore"])
        except ValueError as error:
            raise ReportParameterError(
                "modifiedBefore", f"The parameter 'modifiedBefore': {error}"
            ) from None
    return ActiveStudentFilter(
        **text, graduation_year=graduation_year, modified_before=modified_before
    )


# The download


def download_filename(slug: str, day: date) -> str:
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", slug)
    return f"active-students-{safe}-{day.isoformat()}.csv"


def download_day(service: LicensingService, district_id: int) -> date:
    """Today in the district's time zone (the date the download's file name carries)."""
    with service.database.read() as session:
        time_zone = get_existing(session, District, district_id).time_zone
    return district_today(service.clock(), time_zone)


async def stream_csv(
    database: Database, *, district_id: int, report_filter: ActiveStudentFilter
) -> AsyncIterator[str]:
    """The CSV, a batch at a time: each batch is read in a worker thread, so the event loop
    never waits on the database and memory holds one batch however large the roster."""
    yield csv_header()
    values = iter_export_values(database, district_id=district_id, report_filter=report_filter)
    try:
        while batch := await to_thread.run_sync(next_batch, values):
            yield csv_lines(batch)
    finally:
        # The worker thread has finished (cancellation waits for it), so closing is safe.
        values.close()


async def authenticated(request: Request, service: LicensingService) -> Principal | Response:
    """The caller, signed in exactly as for /graphql (token or the tab's session cookie), the
    download's cost drawn from their token's budget."""
    from graph.auth import sign_in

    return await sign_in(request, service, cost=REPORT_DOWNLOAD_COST)


def active_students_csv(service: LicensingService) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint GET /reports/active-students.csv for ``service``."""
    # Imported here so the command line, which shares the formatting above, does not load
    # strawberry.
    from graph.responses import error_response

    async def endpoint(request: Request) -> Response:
        principal = await authenticated(request, service)
        if isinstance(principal, Response):
            return principal
        if not principal.may(Permission.MANAGE_SETTINGS):
            return error_response(
                403,
                ErrorCode.FORBIDDEN,
                "This token may not download the active-student report (it shows student "
                "names): it needs MANAGE_SETTINGS.",
            )
        try:
            report_filter = filter_from_query(request.query_params)
        except ReportParameterError as error:
            return error_response(400, ErrorCode.BAD_REQUEST, str(error))
        day = await to_thread.run_sync(download_day, service, principal.district_id)
        filename = download_filename(principal.district_slug, day)
        return StreamingResponse(
            stream_csv(
                service.database, district_id=principal.district_id, report_filter=report_filter
            ),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    return endpoint


# The quarantined rows of roster syncs (`licensing report quarantined`)

QUARANTINED_COLUMNS = ("source", "run", "file", "line", "reason", "source_id")


@dataclass(frozen=True)
class QuarantineExport:
    rows: int  # rows written
    quarantined: int  # rows the runs quarantined (more than written past the kept first ones)
    runs: list[intake.IntakeRun]


def write_quarantined(
    database: Database,
    out: TextIO,
    *,
    district_id: int,
    source: str | None,
    run_id: int | None,
    export_format: ExportFormat,
) -> QuarantineExport:
    """Write the kept quarantined rows of each source's latest finished sync (or of the run
    ``run_id``) to ``out``, a batch at a time; LookupError for a run the district has not."""
    with database.read() as session:
        runs = intake.intake_runs(session, district_id=district_id, source=source, run_id=run_id)
        by_id = {run.run_id: run for run in runs}
        if export_format is ExportFormat.CSV:
            out.write(_csv_text([QUARANTINED_COLUMNS]))
        written = 0
        batch: list[list[Any]] = []
        issues = intake.iter_issues(
            session, district_id=district_id, run_ids=list(by_id), kind=intake.QUARANTINED
        )
        for number, (found_run, issue) in enumerate(issues, start=1):
            values = [
                by_id[found_run].source,
                found_run,
                issue.file,
                issue.line,
                issue.message,
                issue.source_id,
            ]
            batch.append(values)
            if number % report.EXPORT_BATCH == 0:
                written += _write_quarantined_batch(out, batch, export_format)
                batch = []
        written += _write_quarantined_batch(out, batch, export_format)
    return QuarantineExport(written, sum(run.quarantined for run in runs), runs)


def _write_quarantined_batch(
    out: TextIO, batch: list[list[Any]], export_format: ExportFormat
) -> int:
    if export_format is ExportFormat.CSV:
        out.write(
            _csv_text(
                [
                    "'" + value
                    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)
                    else ("" if value is None else value)
                    for value in values
                ]
                for values in batch
            )
        )
    else:
        out.write(
            "".join(
                json.dumps(dict(zip(QUARANTINED_COLUMNS, values, strict=True)), ensure_ascii=False)
                + "\n"
                for values in batch
            )
        )
    return len(batch)
