"""The local roster: people kept in this service's own database, imported from a CSV file.

``licensing roster import FILE.csv`` reads the file through this source. The file has a header
row; only ``id`` is required:

    id,role,status,enabled,given_name,family_name,username,grade,school,graduation_year,last_modified,person_key

A person listed on several rows with the same ``id`` (a student in two schools) is one record with
several schools. Every bad row is reported with its line and column, and then nothing is imported.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from manage1to1_plugins import (
    DistrictRef,
    PathOption,
    PluginHost,
    RecordChecks,
    RosterFileError,
    RosterSource,
    RowProblem,
    SourceError,
    SourceOptions,
    StudentRecord,
    hookimpl,
)
from manage1to1_plugins.fields import timestamp

COLUMNS = (
    "id",
    "role",
    "status",
    "enabled",
    "given_name",
    "family_name",
    "username",
    "grade",
    "school",
    "graduation_year",
    "last_modified",
    "person_key",
)
BOOLEAN_WORDS = {"true": True, "false": False}
# The column each stored field is read from, where the names differ.
STORED_FROM = {"source_id": "id", "raw_status": "status", "schools": "school"}


class LocalRosterOptions(SourceOptions):
    """``roster import FILE`` passes the file as ``path``."""

    path: PathOption = None


class LocalRosterSource:
    name = "local"
    description = "Students and staff kept in this service's database, imported from CSV."
    options_model: ClassVar[type[SourceOptions]] = LocalRosterOptions
    columns = COLUMNS

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def fetch_students(
        self, *, district: DistrictRef, options: LocalRosterOptions
    ) -> list[StudentRecord]:
        path = LocalRosterOptions.parse(options).path
        if not path:
            raise SourceError("The local roster reads a CSV file: give its path.")
        return read_roster_csv(Path(path), checks=self.host.records)


def read_roster_csv(path: Path, *, checks: RecordChecks) -> list[StudentRecord]:
    """Every record in the file, or RosterFileError listing each bad row; ``checks`` are the
    host's (``host.records``)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(str(path), handle, checks)
    except FileNotFoundError:
        raise SourceError(f"No such file: {path}") from None
    except IsADirectoryError:
        raise SourceError(f"{path} is a folder; give the roster's CSV file.") from None
    except PermissionError:
        raise SourceError(f"Cannot read {path}: permission denied.") from None
    except UnicodeDecodeError:
        raise RosterFileError(
            str(path), [RowProblem(1, None, "the file is not UTF-8 text")]
        ) from None
    except csv.Error as error:
        raise RosterFileError(str(path), [RowProblem(0, None, f"not valid CSV: {error}")]) from None


def _parse(path: str, handle: Any, checks: RecordChecks) -> list[StudentRecord]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in (reader.fieldnames or [])]
    problems: list[RowProblem] = []
    if "id" not in header:
        raise RosterFileError(path, [RowProblem(1, "id", "the header has no id column")])
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        known = ", ".join(COLUMNS)
        raise RosterFileError(
            path,
            [
                RowProblem(1, name, f"unknown column (expected some of: {known})")
                for name in unknown
            ],
        )
    reader.fieldnames = header
    records: dict[str, tuple[int, StudentRecord]] = {}
    for line, row in _rows(reader):
        if None in row:
            problems.append(RowProblem(line, None, "more fields than the header has"))
            continue
        record, row_problems = _record(line, row, checks)
        problems.extend(row_problems)
        if record is None:
            continue
        earlier = records.get(record.source_id)
        if earlier is None:
            records[record.source_id] = (line, record)
            continue
        merged = _merge_schools(earlier[1], record)
        if merged is None:
            problems.append(
                RowProblem(
                    line,
                    "id",
                    f"id {record.source_id!r} is also on line {earlier[0]} with different "
                    "details; only the school may differ between rows of one person",
                )
            )
        else:
            records[record.source_id] = (earlier[0], merged)
    if problems:
        raise RosterFileError(path, problems)
    return [record for _line, record in records.values()]


def _rows(reader: csv.DictReader) -> Iterator[tuple[int, dict[str, Any]]]:
    for row in reader:
        yield reader.line_num, row


def _record(
    line: int, row: dict[str, Any], checks: RecordChecks
) -> tuple[StudentRecord | None, list[RowProblem]]:
    def text(column: str) -> str | None:
        value = (row.get(column) or "").strip()
        return value or None

    problems: list[RowProblem] = []
    source_id = text("id")
    if source_id is None:
        problems.append(RowProblem(line, "id", "the id is empty"))
    enabled_text = text("enabled")
    enabled = True
    if enabled_text is not None:
        if enabled_text.lower() not in BOOLEAN_WORDS:
            problems.append(RowProblem(line, "enabled", f"{enabled_text!r} is not true or false"))
        else:
            enabled = BOOLEAN_WORDS[enabled_text.lower()]
    graduation_year = None
    if (year_text := text("graduation_year")) is not None:
        if not (year_text.isdigit() and len(year_text) == 4):
            problems.append(
                RowProblem(line, "graduation_year", f"{year_text!r} is not a four-digit year")
            )
        else:
            graduation_year = int(year_text)
    # The host's own words for roles and statuses, checked here so a bad one names its line.
    for column, check in (("role", checks.role_problem), ("status", checks.status_problem)):
        if (word := text(column)) is not None and (problem := check(word)) is not None:
            problems.append(RowProblem(line, column, problem))
    last_modified = None
    if (modified_text := text("last_modified")) is not None:
        last_modified = timestamp(modified_text)
        if last_modified is None:
            problems.append(
                RowProblem(line, "last_modified", f"{modified_text!r} is not an ISO 8601 date")
            )
    if problems or source_id is None:
        return None, problems
    school = text("school")
    record = StudentRecord(
        source_id=source_id,
        role=text("role") or "student",
        status=text("status") or "active",
        enabled=enabled,
        person_key=text("person_key"),
        given_name=text("given_name"),
        family_name=text("family_name"),
        username=text("username"),
        grade=text("grade"),
        schools=(school,) if school else (),
        graduation_year=graduation_year,
        last_modified=last_modified,
    )
    # Values the roster cannot hold (too long, a NUL character), named by this file's columns.
    unfit = [
        RowProblem(line, STORED_FROM.get(item.field, item.field), item.message)
        for item in checks.unfit_fields(record)
    ]
    return (None, unfit) if unfit else (record, [])


def _merge_schools(first: StudentRecord, second: StudentRecord) -> StudentRecord | None:
    """One person on two rows: the same record with both schools, or None when they disagree."""
    from dataclasses import replace

    if replace(first, schools=()) != replace(second, schools=()):
        return None
    schools = tuple(dict.fromkeys([*first.schools, *second.schools]))
    return replace(first, schools=schools)


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [LocalRosterSource(host)]
