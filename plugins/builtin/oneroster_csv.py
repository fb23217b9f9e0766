"""OneRoster CSV bundles: students and staff from an IMS OneRoster 1.1 or 1.2 CSV export.

A bundle is a ``.zip`` file or a folder holding ``manifest.csv`` and ``users.csv`` (and, for
OneRoster 1.2, ``roles.csv``); other files (``orgs.csv``, ``enrollments.csv`` ...) are not read.
The source reads it as a stream: ``fetch_students`` checks the manifest and the headers at once,
then returns a generator that reads ``users.csv`` one row at a time and yields one
``StudentRecord`` per user, so memory does not grow with the roster. Only a 1.2 bundle keeps
something per user: its ``roles.csv`` is read first into a compact dictionary (one small tuple per
user), because a user's role and organisations live there.

Intake (docs/roster-sync.md, "What a bundle may get wrong"): strict where it changes the count,
forgiving everywhere else. The rules shared with the other sources are in
``manage1to1_plugins.intake``.

- Files are UTF-8 with or without a byte-order mark, lines end in LF or CRLF. A file in UTF-16,
  UTF-32 or Windows-1252 is read, with a warning naming its encoding; bytes that are no text
  are an error.
- Column names match regardless of letter case and surrounding spaces, in any order. Unknown
  columns (a vendor's ``ext_vendor_x``, a misspelt ``grdes``) are ignored with a warning, which
  names the standard column a misspelt one looks like; ``metadata.*`` extension columns are
  ignored silently. A missing column the count depends on (``COUNTED_COLUMNS``: the id, status,
  ``enabledUser``, the role and the person keys) is an error; any other missing column leaves
  its field blank.
- ``enabledUser`` is true/false, 1/0 or yes/no in any letter case; any other value (a blank
  included) is a bad row. ``status`` blank is ``active`` in a bulk file; a word other than
  ``active`` or ``tobedeleted`` is a bad row.
- Role words of either OneRoster version keep their meaning (``principal`` in a 1.1 file is
  staff); ``ext:`` roles are passed on as they are, and the host counts nobody by one, so a
  user whose only roles are extensions is a non-student. An unknown other word is a bad row.
- Dates the source cannot read (``dateLastModified``, ``endDate``) are left blank, with a
  warning: counting does not use them. So are an unknown ``roleType`` (taken as secondary) and a
  blank ``orgSourcedId`` of a role.
- A row that cannot be classified (no ``sourcedId``, no role at all, or fields that do not line
  up with the header) is yielded as a ``QuarantinedRow``: not counted, listed with its file, line
  and reason. The host holds the sync when too many are.
- ``enrollments.csv`` (1.1, when the manifest lists it as ``bulk``): the last ``endDate`` of the
  user's student enrollments becomes ``enrollment_end`` (none while one is open-ended). Only
  ``userSourcedId``, ``role``, ``status`` and ``endDate`` are read, and forgivingly: enrollment
  dates never change the count, so a file or row that cannot be read leaves them unknown.

Mapping: ``sourcedId`` -> ``source_id``; the person key (how the same person is recognised in
other sources) is 1.2's ``userMasterIdentifier``, else ``identifier`` (the district's student
number), else the ``sourcedId``; ``status`` blank -> ``active`` and ``tobedeleted`` is passed on
(the host reads it as deleted), ``raw_status`` keeping the text exactly as in the file;
``orgSourcedIds`` -> schools, the first being the primary one; the first of ``grades`` -> grade;
``dateLastModified`` -> ``last_modified`` (UTC). In 1.2, ``roles.csv`` gives a user's role and
organisations: ``roleType`` ``primary`` marks the primary one, and a student role wins over any
other (the host counts such a person as a student anyway); the last ``endDate`` of the user's
roles of that kind becomes ``enrollment_end`` (none while one of them is open-ended). Role words are passed on in their standard spelling (``guardian``,
``parent`` and ``relative`` are people the host neither stores nor counts).

Every bad row is collected (line, column, what is wrong) and raised as ``RosterFileError`` naming
the file, once the file is read or as soon as there are more than 1000. The host applies nothing
from a sync that raised, so records already yielded are discarded.

A **delta** bundle (``file.users`` ``delta`` in the manifest) lists only what changed since the
last export. With ``allow_delta = true`` it is returned as a ``RosterDelta``: each user row
replaces the stored record of its ``sourcedId`` (or adds it), a row whose ``status`` is
``tobedeleted`` removes the record (a ``RemovedRecord``; in a 1.2 delta such a row needs no
role in ``roles.csv``), and everyone it does not mention stays as they are. In a bulk bundle
``tobedeleted`` still means a record kept but never counted. Without ``allow_delta`` a delta
bundle is refused, so a district that expects whole rosters never applies changes by mistake.

Options (``[districts.<slug>.roster_sources.<name>.options]``):

- ``path`` (required): the bundle, a ``.zip`` file or a folder;
- ``allow_delta``: apply delta bundles as changes, false by default.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar

from manage1to1_plugins import (
    DistrictRef,
    IntakeWarning,
    PathOption,
    PluginHost,
    QuarantinedRow,
    RecordChecks,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
    RosterSource,
    RowProblem,
    SourceError,
    SourceOptions,
    StudentRecord,
    hookimpl,
)
from manage1to1_plugins.fields import day as _date
from manage1to1_plugins.fields import timestamp as _timestamp
from manage1to1_plugins.intake import (
    BOOLEAN_CHOICES,
    BOOLEAN_WORDS,
    ONEROSTER_ROLES,
    SNIFF_BYTES,
    Encoding,
    UnreadableText,
    column_key,
    detect_encoding,
    is_extension_role,
    match_columns,
    oneroster_role_choices,
    starts_valid_utf8,
)

MANIFEST = "manifest.csv"
USERS = "users.csv"
ROLES = "roles.csv"
MANIFEST_COLUMNS = ("propertyName", "value")
MANIFEST_VERSION = "1.0"
VERSIONS = ("1.1", "1.2")
MODES = ("bulk", "delta", "absent")

USERS_V1P1 = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "orgSourcedIds",
    "role",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
)
USERS_V1P2 = (
    "sourcedId",
    "status",
    "dateLastModified",
    "enabledUser",
    "username",
    "userIds",
    "givenName",
    "familyName",
    "middleName",
    "identifier",
    "email",
    "sms",
    "phone",
    "agentSourcedIds",
    "grades",
    "password",
    "userMasterIdentifier",
    "resourceSourcedIds",
    "preferredGivenName",
    "preferredMiddleName",
    "preferredFamilyName",
    "primaryOrgSourcedId",
    "pronouns",
)
ROLES_V1P2 = (
    "sourcedId",
    "status",
    "dateLastModified",
    "userSourcedId",
    "roleType",
    "role",
    "beginDate",
    "endDate",
    "orgSourcedId",
    "userProfileSourcedId",
)
USER_COLUMNS = {"1.1": USERS_V1P1, "1.2": USERS_V1P2}
# The columns whose values decide who counts, or who is the same person: a file without one of
# them cannot be counted exactly, so it is refused (a file missing any other column is read, the
# column's field left blank).
COUNTED_COLUMNS = {
    (USERS, "1.1"): ("sourcedId", "status", "enabledUser", "role", "identifier"),
    (USERS, "1.2"): ("sourcedId", "status", "enabledUser", "identifier", "userMasterIdentifier"),
    (ROLES, "1.2"): ("userSourcedId", "status", "role"),
}
# The other columns read; the rest of the standard columns are allowed and not read.
READ_COLUMNS = {
    (USERS, "1.1"): (
        "dateLastModified",
        "orgSourcedIds",
        "username",
        "givenName",
        "familyName",
        "grades",
    ),
    (USERS, "1.2"): (
        "dateLastModified",
        "username",
        "givenName",
        "familyName",
        "grades",
        "primaryOrgSourcedId",
    ),
    (ROLES, "1.2"): ("roleType", "orgSourcedId", "endDate"),
}
EXTENSION_PREFIX = "metadata."

ROLE_TYPES = ("primary", "secondary")
STATUS_WORDS = ("active", "tobedeleted")
MAX_PROBLEMS = 1000
LATIN_1 = Encoding("latin-1", "ISO-8859-1 (Latin-1)")


class OneRosterCsvOptions(SourceOptions):
    """``path``: the bundle (a .zip file or a folder); ``allow_delta``: accept a delta bundle."""

    path: PathOption = None
    allow_delta: bool = False


class OneRosterCsvSource:
    name = "oneroster_csv"
    description = "Students and staff from an IMS OneRoster 1.1 or 1.2 CSV bundle (zip or folder)."
    options_model: ClassVar[type[SourceOptions]] = OneRosterCsvOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def fetch_students(
        self, *, district: DistrictRef, options: OneRosterCsvOptions
    ) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow] | RosterDelta:
        config = OneRosterCsvOptions.parse(options)
        if not config.path:
            raise SourceError(
                "The OneRoster CSV source reads a bundle: give its path (a .zip file or a folder)."
            )
        return read_bundle(config.path, checks=self.host.records, allow_delta=config.allow_delta)


def read_bundle(
    path: Path, *, checks: RecordChecks, allow_delta: bool = False, shown_as: str | None = None
) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow] | RosterDelta:
    """Check the bundle's manifest and headers now, then a generator of its users' records,
    with the intake's warnings and quarantined rows among them (a ``RosterDelta`` of them for a
    delta bundle).

    Raises SourceError (a missing file, a damaged zip, a manifest it cannot use) or
    RosterFileError (a bad header) before anything is read; the generator raises RosterFileError
    for bad rows. ``shown_as`` is how messages name the bundle when ``path`` is not for
    administrators' eyes (a private copy of a downloaded file); the path by default.

    The one reader of OneRoster CSV bundles: the drop-folder source (``oneroster_drop``) reads
    the files it picks up with it too.
    """
    bundle = Bundle.open(path, shown_as=shown_as)
    plan = _plan(bundle, allow_delta=allow_delta)
    if plan.users_mode == "delta":
        return RosterDelta(_changes(_records(bundle, plan, checks)))
    return _records(bundle, plan, checks)


def _changes(
    records: Iterator[StudentRecord | IntakeWarning | QuarantinedRow],
) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow | RemovedRecord]:
    """A delta file's records as changes: ``tobedeleted`` removes the record (the intake's
    warnings and quarantined rows pass through)."""
    for record in records:
        if isinstance(record, StudentRecord) and record.status == "tobedeleted":
            yield RemovedRecord(record.source_id)
        else:
            yield record


# The column of users.csv each stored field is read from, to report a value the host cannot
# store where it is (the person key's column is found per row).
_STORED_FROM_BOTH = {
    "source_id": "sourcedId",
    "raw_status": "status",
    "given_name": "givenName",
    "family_name": "familyName",
    "username": "username",
    "grade": "grades",
}
STORED_FROM = {
    "1.1": {**_STORED_FROM_BOTH, "school": "orgSourcedIds", "schools": "orgSourcedIds"},
    "1.2": {
        **_STORED_FROM_BOTH,
        "school": "primaryOrgSourcedId",
        "schools": f"orgSourcedId ({ROLES}, all of the user's roles together)",
    },
}


# --- The bundle: a folder or a zip file, read as text streams ---------------------------------


@dataclass(frozen=True)
class Bundle:
    path: Path | str  # the bundle as messages name it (a URL is a str: a Path would alter it)
    members: dict[str, str]  # file name -> where it is (a zip member name, or a file path)
    is_zip: bool
    # Each file's encoding, found from its first bytes when it is first opened.
    encodings: dict[str, Encoding] = field(default_factory=dict)
    file: Path | None = None  # where a zip is read from

    @classmethod
    def open(cls, path: Path, *, shown_as: str | None = None) -> Bundle:
        shown = path if shown_as is None else shown_as
        if path.is_dir():
            members = {
                entry.name: str(entry) for entry in path.iterdir() if entry.name.endswith(".csv")
            }
            return cls(path=shown, members=members, is_zip=False)
        if not path.exists():
            raise SourceError(f"No OneRoster bundle at {shown}: no such file or folder.")
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise SourceError(
                f"{shown} is not a readable zip file ({error}); a OneRoster bundle is a .zip "
                "file or a folder of CSV files."
            ) from None
        except OSError as error:
            raise SourceError(f"Cannot read {shown}: {error.strerror or error}.") from None
        return cls(path=shown, members=_zip_members(names), is_zip=True, file=path)

    def where(self, name: str) -> str:
        """How messages name one of the bundle's files."""
        return f"{self.path}/{name}"

    def has(self, name: str) -> bool:
        return name in self.members

    @contextmanager
    def raw(self, name: str) -> Iterator[IO[bytes]]:
        """The file's bytes, streamed, never read whole."""
        if name not in self.members:
            raise SourceError(f"The OneRoster bundle {self.path} has no {name}.")
        try:
            if self.is_zip:
                with (
                    zipfile.ZipFile(self.file or Path(self.path)) as archive,
                    archive.open(self.members[name]) as raw,
                ):
                    yield raw
            else:
                with open(self.members[name], "rb") as raw:
                    yield raw
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise SourceError(
                f"{self.where(name)} is damaged and cannot be read ({error}); the previous "
                "roster is kept."
            ) from None
        except OSError as error:
            raise SourceError(
                f"Cannot read {self.where(name)}: {error.strerror or error}."
            ) from None

    def encoding(self, name: str) -> Encoding:
        """The file's encoding, from its first bytes (SourceError when they are no text)."""
        found = self.encodings.get(name)
        if found is None:
            with self.raw(name) as raw:
                sample = raw.read(SNIFF_BYTES)
            try:
                found = detect_encoding(sample)
            except UnreadableText as error:
                raise SourceError(
                    f"{self.where(name)} cannot be read as text: {error}. Export the roster as "
                    "CSV files in UTF-8."
                ) from None
            self.encodings[name] = found
        return found

    @contextmanager
    def text(self, name: str, encoding: Encoding | None = None) -> Iterator[io.TextIOBase]:
        """The file as text, streamed: in ``encoding``, else in the one its first bytes show."""
        chosen = encoding or self.encoding(name)
        with (
            self.raw(name) as raw,
            io.TextIOWrapper(raw, encoding=chosen.codec, newline="") as text,
        ):
            yield text

    def starts_as_utf8(self, name: str) -> bool:
        """Whether the file's first non-ASCII byte begins UTF-8 text (read only when a later
        byte turned out not to be UTF-8: the text before it was then not plain ASCII)."""
        with self.raw(name) as raw:
            while chunk := raw.read(SNIFF_BYTES):
                if not chunk.isascii():
                    return starts_valid_utf8(chunk + raw.read(4))
        return True


def _zip_members(names: list[str]) -> dict[str, str]:
    """The bundle's files: at the zip's root, or in its single top-level folder."""
    at_root = {name: name for name in names if "/" not in name.rstrip("/")}
    if MANIFEST in at_root or USERS in at_root:
        return at_root
    tops = {PurePosixPath(name).parts[0] for name in names if "/" in name}
    if len(tops) == 1:
        top = tops.pop()
        return {
            PurePosixPath(name).name: name
            for name in names
            if len(PurePosixPath(name).parts) == 2 and PurePosixPath(name).parts[0] == top
        }
    return at_root


# --- The manifest and headers, checked before any record is read -------------------------------


@dataclass(frozen=True)
class Columns:
    """How one file's rows are read: each standard column read, by name, to its position (a
    column the file lacks points at the blank field added to each row when ``padded``)."""

    indexes: dict[str, int]
    width: int
    padded: bool


@dataclass(frozen=True)
class Plan:
    version: str
    users_mode: str
    roles_mode: str | None
    users_columns: Columns
    roles_columns: Columns | None
    # Warnings about the headers, yielded before any record.
    warnings: list[IntakeWarning] = field(default_factory=list)


def _plan(bundle: Bundle, *, allow_delta: bool) -> Plan:
    manifest = _read_manifest(bundle)
    where = bundle.where(MANIFEST)
    manifest_version = manifest.get("manifest.version")
    if manifest_version != MANIFEST_VERSION:
        raise SourceError(
            f"{where}: manifest.version is {manifest_version!r}; OneRoster 1.1 and 1.2 "
            f"bundles have {MANIFEST_VERSION!r}."
        )
    version = manifest.get("oneroster.version")
    if version is not None and version not in VERSIONS:
        raise SourceError(f"{where}: oneroster.version {version!r} is not supported (1.1 or 1.2).")
    users_mode = _mode(manifest, "file.users", where)
    if users_mode == "absent":
        raise SourceError(
            f"{where} says file.users is absent: the bundle carries no users, so it cannot "
            "be a roster."
        )
    _check_delta(users_mode, "file.users", where, allow_delta)
    if not bundle.has(USERS):
        raise SourceError(
            f"The OneRoster bundle {bundle.path} has no {USERS}, although {MANIFEST} lists it "
            f"as {users_mode}."
        )
    header = _header(bundle, USERS)
    if version is None:
        keys = {column_key(column) for column in header}
        version = "1.2" if "role" not in keys and "usermasteridentifier" in keys else "1.1"
    warnings: list[IntakeWarning] = []
    users_columns = _columns(bundle, USERS, header, version, warnings)
    if version == "1.1":
        return Plan(version, users_mode, None, users_columns, None, warnings)
    roles_mode = _mode(manifest, "file.roles", where)
    if roles_mode == "absent":
        raise SourceError(
            f"{where} says file.roles is absent; a OneRoster 1.2 bundle gives each user's role "
            f"and organisations in {ROLES}."
        )
    _check_delta(roles_mode, "file.roles", where, allow_delta)
    if not bundle.has(ROLES):
        raise SourceError(
            f"The OneRoster 1.2 bundle {bundle.path} has no {ROLES}, although {MANIFEST} lists "
            f"it as {roles_mode}."
        )
    roles_columns = _columns(bundle, ROLES, _header(bundle, ROLES), version, warnings)
    return Plan(version, users_mode, roles_mode, users_columns, roles_columns, warnings)


def _read_manifest(bundle: Bundle) -> dict[str, str]:
    """The manifest's properties, their names in lower case (``file.users`` ...)."""
    if not bundle.has(MANIFEST):
        raise SourceError(
            f"The OneRoster bundle {bundle.path} has no {MANIFEST}; every OneRoster CSV bundle "
            "starts with one."
        )
    where = bundle.where(MANIFEST)
    properties: dict[str, str] = {}
    with bundle.text(MANIFEST) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None or tuple(map(column_key, header[:2])) != tuple(
                map(column_key, MANIFEST_COLUMNS)
            ):
                raise SourceError(
                    f"{where}: the header is {','.join(header or [])!r}; a manifest's is "
                    f"{','.join(MANIFEST_COLUMNS)!r}."
                )
            for row in reader:
                if len(row) >= 2 and row[0].strip():
                    properties[column_key(row[0])] = row[1].strip()
        except (csv.Error, UnicodeDecodeError) as error:
            raise SourceError(
                f"{where} is not a readable CSV file (line {reader.line_num}: {error})."
            ) from None
    return properties


def _mode(manifest: dict[str, str], name: str, where: str) -> str:
    mode = manifest.get(name)
    if mode is None:
        raise SourceError(f"{where} has no {name} property (bulk, delta or absent).")
    if mode.lower() not in MODES:
        raise SourceError(f"{where}: {name} is {mode!r}, not bulk, delta or absent.")
    return mode.lower()


def _check_delta(mode: str, name: str, where: str, allow_delta: bool) -> None:
    if mode == "delta" and not allow_delta:
        raise SourceError(
            f"{where}: {name} is delta, a file of changes only, and this source takes whole "
            "rosters: export a bulk bundle, or set allow_delta = true to apply delta bundles "
            "as changes to the roster."
        )


def _header(bundle: Bundle, name: str) -> list[str]:
    with bundle.text(name) as handle:
        try:
            header = next(csv.reader(handle), None)
        except (csv.Error, UnicodeDecodeError) as error:
            raise RosterFileError(
                bundle.where(name), [RowProblem(1, None, f"the header cannot be read: {error}")]
            ) from None
    if not header or not any(column.strip() for column in header):
        raise RosterFileError(bundle.where(name), [RowProblem(1, None, "the file is empty")])
    return header


def _columns(
    bundle: Bundle, name: str, header: list[str], version: str, warnings: list[IntakeWarning]
) -> Columns:
    """How the file's rows are read, its header's warnings added to ``warnings``; or
    RosterFileError naming each counted column that is missing or repeated."""
    standard = USER_COLUMNS[version] if name == USERS else ROLES_V1P2
    counted = COUNTED_COLUMNS[name, version]
    read = READ_COLUMNS[name, version]
    match = match_columns(header, standard, extension_prefix=EXTENSION_PREFIX)
    looks_like = {suggestion: written for written, suggestion in match.unknown if suggestion}
    problems: list[RowProblem] = []
    for column in counted:
        if column in match.repeated:
            problems.append(
                RowProblem(1, column, "the column appears twice: which one counts is unclear")
            )
        elif column not in match.indexes:
            hint = f"; is {looks_like[column]!r} it, misspelt?" if column in looks_like else ""
            problems.append(
                RowProblem(
                    1,
                    column,
                    f"missing column: {name} of OneRoster {version} has it, and the count "
                    f"depends on it{hint}",
                )
            )
    if problems:
        raise RosterFileError(bundle.where(name), problems)
    for written, suggestion in match.unknown:
        if suggestion:
            message = (
                f"{written!r} is not a column of {name} (OneRoster {version}) and is ignored: "
                f"did you mean {suggestion!r}?"
            )
            if suggestion in read:
                message += f" Without it, {suggestion} is left blank."
        else:
            message = f"{written!r} is not a column of {name} (OneRoster {version}) and is ignored."
        warnings.append(IntakeWarning(message, name, 1, written.strip() or None))
    for column in match.repeated:
        warnings.append(
            IntakeWarning(
                f"{column} appears twice in the header; the first one is read.", name, 1, column
            )
        )
    for column in read:
        if column not in match.indexes and column not in looks_like:
            warnings.append(
                IntakeWarning(
                    f"{name} has no {column} column: {column} is left blank.", name, 1, column
                )
            )
    width = len(header)
    indexes = {column: match.indexes.get(column, width) for column in (*counted, *read)}
    return Columns(indexes=indexes, width=width, padded=any(i == width for i in indexes.values()))


# --- Rows --------------------------------------------------------------------------------------


class _Problems:
    """Bad rows of one file: kept, and raised together (or at once past MAX_PROBLEMS)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[RowProblem] = []

    def add(self, line: int, column: str | None, message: str) -> None:
        self.problems.append(RowProblem(line, column, message))
        if len(self.problems) > MAX_PROBLEMS:
            raise RosterFileError(self.where, self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise RosterFileError(self.where, self.problems)


class _Intake:
    """What reading one file found besides its records and bad rows: quarantined rows and
    warnings, waiting in ``pending`` to be yielded among the records. A warning repeated on many
    rows (an unreadable date, say) is one warning: its first line, and on how many rows."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.pending: list[IntakeWarning | QuarantinedRow] = []
        self.repeated: dict[str, list[Any]] = {}  # kind -> [line, column, message, rows]

    def quarantine(self, line: int, reason: str, source_id: str | None = None) -> None:
        self.pending.append(QuarantinedRow(reason, self.file, line, source_id or None))

    def note(self, message: str, line: int | None = None, column: str | None = None) -> None:
        self.pending.append(IntakeWarning(message, self.file, line, column))

    def warn(self, kind: str, line: int, column: str | None, message: str) -> None:
        found = self.repeated.get(kind)
        if found is None:
            self.repeated[kind] = [line, column, message, 1]
        else:
            found[3] += 1

    def drain(self) -> list[IntakeWarning | QuarantinedRow]:
        """What is pending, handed over once (the list itself stays, bound by readers)."""
        items = list(self.pending)
        self.pending.clear()
        return items

    def finish(self) -> list[IntakeWarning | QuarantinedRow]:
        """Everything left: what is pending, then each repeated warning once."""
        items = self.drain()
        for line, column, message, rows in self.repeated.values():
            if rows > 1:
                message += f" ({rows} rows like this; the first is shown.)"
            items.append(IntakeWarning(message, self.file, line, column, rows))
        self.repeated.clear()
        return items


def _rows(
    bundle: Bundle, name: str, columns: Columns, problems: _Problems, intake: _Intake
) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) for every data row, the header skipped, a blank field added when the
    plan reads a column the file lacks. Rows whose fields do not line up with the header are
    quarantined (a row that only ends in empty fields is read). A file found not to be UTF-8
    part-way is read on in Windows-1252 when everything before was plain ASCII."""
    width = columns.width
    padded = columns.padded
    encoding = bundle.encoding(name)
    if encoding.name:
        intake.note(_encoding_message(name, encoding))
    line = 1  # the last line fully read: the header's, at first
    while True:
        try:
            with bundle.text(name, encoding) as handle:
                reader = csv.reader(handle)
                for _ in reader:  # the header, and on a second reading the lines already read
                    if reader.line_num >= line:
                        break
                for row in reader:
                    line = reader.line_num
                    if len(row) != width:
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # a blank line
                        if len(row) < width or any(value.strip() for value in row[width:]):
                            intake.quarantine(
                                line, f"{len(row)} fields where the header has {width}"
                            )
                            continue
                        intake.warn(
                            "trailing",
                            line,
                            None,
                            f"rows end in empty fields the header does not have; they are "
                            f"ignored (line {line} has {len(row)} fields, the header {width})",
                        )
                        del row[width:]
                    if padded:
                        row.append("")
                    yield line, row
            return
        except UnicodeDecodeError:
            if encoding.name is None and not bundle.starts_as_utf8(name):
                # Plain ASCII until here, then a byte UTF-8 does not have: a Windows export.
                # (The same text as if read so from the start: what came before is ASCII.)
                encoding = Encoding("cp1252", "Windows-1252 (Latin-1)")
                intake.note(_encoding_message(name, encoding))
                continue
            if encoding.codec == "cp1252":
                encoding = LATIN_1  # which reads any byte
                intake.note(_encoding_message(name, encoding))
                continue
            problems.add(
                line + 1,
                None,
                f"the file is not {encoding.name or 'UTF-8'} text from about here on, though "
                "the lines before are: it mixes encodings. Export it again as UTF-8",
            )
            return
        except csv.Error as error:
            problems.add(line + 1, None, f"not valid CSV: {error}")
            return


def _encoding_message(name: str, encoding: Encoding) -> str:
    return (
        f"{name} is {encoding.name} text, not UTF-8: it is read as {encoding.name}. Export it "
        "as UTF-8 to be sure names with accents come out right."
    )


def _records(
    bundle: Bundle, plan: Plan, checks: RecordChecks
) -> Iterator[StudentRecord | IntakeWarning | QuarantinedRow]:
    yield from plan.warnings
    roles = (yield from _read_roles(bundle, plan, checks)) if plan.version == "1.2" else None
    problems = _Problems(bundle.where(USERS))
    intake = _Intake(USERS)
    pending = intake.pending
    columns = plan.users_columns.indexes
    delta = plan.users_mode == "delta"
    if plan.version == "1.1":
        make = _v1p1_maker(columns, delta, problems, intake)
    else:
        assert roles is not None
        make = _v1p2_maker(columns, delta, problems, intake, roles)
    stored_from = STORED_FROM[plan.version]
    ends = _read_enrollment_ends(bundle) if plan.version == "1.1" else {}
    for line, row in _rows(bundle, USERS, plan.users_columns, problems, intake):
        record = make(line, row)
        if ends and record is not None and record.source_id in ends:
            record = replace(record, enrollment_end=ends[record.source_id])
        if record is not None and _fits(record, line, row, columns, stored_from, problems, checks):
            yield record
        if pending:
            yield from intake.drain()
    yield from intake.finish()
    problems.raise_if_any()


def _fits(
    record: StudentRecord,
    line: int,
    row: list[str],
    columns: dict[str, int],
    stored_from: dict[str, str],
    problems: _Problems,
    checks: RecordChecks,
) -> bool:
    """Whether the host can store the record as it is; each value it cannot (too long, a NUL
    character) is a bad row here, reported at its line and column."""
    unfit = checks.unfit_fields(record)
    reported: set[str] = set()
    for item in unfit:
        column = stored_from.get(item.field, item.field)
        if item.field == "person_key":
            column = _key_column(record, row, columns)
        if column not in reported:  # the primary school and all schools come from one column
            reported.add(column)
            problems.add(line, column, item.message)
    return not unfit


def _key_column(record: StudentRecord, row: list[str], columns: dict[str, int]) -> str:
    """The column the person key was read from."""
    for name in ("userMasterIdentifier", "identifier"):
        if name in columns and row[columns[name]].strip() == record.person_key:
            return name
    return "sourcedId"


def _common(
    columns: dict[str, int], delta: bool, problems: _Problems, intake: _Intake
) -> Callable[[int, list[str]], tuple[str, str, bool, datetime | None] | None]:
    """Reads what both versions share but the id: (status, raw status, enabled, modified)."""
    i_status = columns["status"]
    i_enabled = columns["enabledUser"]
    i_modified = columns["dateLastModified"]
    add = problems.add
    enabled_words = BOOLEAN_WORDS

    def common(line: int, row: list[str]) -> tuple[str, str, bool, datetime | None] | None:
        bad = False
        raw_status = row[i_status]
        status = _status(raw_status, delta)
        if status is None:
            add(line, "status", _status_message(raw_status, delta))
            bad = True
        enabled = enabled_words.get(row[i_enabled].strip().lower())
        if enabled is None:
            add(line, "enabledUser", f"{row[i_enabled]!r} is not {BOOLEAN_CHOICES}")
            bad = True
        modified_text = row[i_modified].strip()
        modified = None
        if modified_text:
            modified = _timestamp(modified_text)
            if modified is None:
                intake.warn(
                    "dateLastModified",
                    line,
                    "dateLastModified",
                    f"{modified_text!r} is not an ISO 8601 date and time: dateLastModified is "
                    "left blank",
                )
        if bad:
            return None
        return status, raw_status, enabled, modified  # type: ignore[return-value]

    return common


def _v1p1_maker(
    columns: dict[str, int], delta: bool, problems: _Problems, intake: _Intake
) -> Callable[[int, list[str]], StudentRecord | None]:
    common = _common(columns, delta, problems, intake)
    i_id = columns["sourcedId"]
    i_role = columns["role"]
    i_orgs = columns["orgSourcedIds"]
    i_identifier = columns["identifier"]
    i_grades = columns["grades"]
    i_username = columns["username"]
    i_given = columns["givenName"]
    i_family = columns["familyName"]
    words = ONEROSTER_ROLES
    choices = oneroster_role_choices("1.1")

    def make(line: int, row: list[str]) -> StudentRecord | None:
        source_id = row[i_id].strip()
        if not source_id:
            intake.quarantine(line, "no sourcedId: the row cannot be told apart from others")
            return None
        role_text = row[i_role].strip()
        if not role_text:
            intake.quarantine(line, "no role: the row cannot be classified", source_id)
            return None
        shared = common(line, row)
        role = words.get(role_text.lower())
        if role is None:
            if not is_extension_role(role_text):
                problems.add(line, "role", f"{role_text!r} is not a OneRoster role ({choices})")
                return None
            role = role_text  # an extension role: the host counts nobody by one
        if shared is None:
            return None
        status, raw_status, enabled, modified = shared
        schools = _split(row[i_orgs])
        grades = _split(row[i_grades])
        return StudentRecord(
            source_id=source_id,
            role=role,
            status=status,
            enabled=enabled,
            person_key=row[i_identifier].strip() or source_id,
            given_name=row[i_given].strip() or None,
            family_name=row[i_family].strip() or None,
            username=row[i_username].strip() or None,
            grade=grades[0] if grades else None,
            schools=schools,
            primary_school=schools[0] if schools else None,
            last_modified=modified,
            raw_status=raw_status,
        )

    return make


def _v1p2_maker(
    columns: dict[str, int],
    delta: bool,
    problems: _Problems,
    intake: _Intake,
    roles: dict[str, _RoleInfo],
) -> Callable[[int, list[str]], StudentRecord | None]:
    common = _common(columns, delta, problems, intake)
    i_id = columns["sourcedId"]
    i_master = columns["userMasterIdentifier"]
    i_identifier = columns["identifier"]
    i_primary_org = columns["primaryOrgSourcedId"]
    i_grades = columns["grades"]
    i_username = columns["username"]
    i_given = columns["givenName"]
    i_family = columns["familyName"]

    def make(line: int, row: list[str]) -> StudentRecord | None:
        source_id = row[i_id].strip()
        if not source_id:
            intake.quarantine(line, "no sourcedId: the row cannot be told apart from others")
            return None
        shared = common(line, row)
        if shared is None:
            return None
        status, raw_status, enabled, modified = shared
        info = roles.get(source_id)
        if info is None and delta and status == "tobedeleted":
            # A removal in a delta: the user's roles go with them.
            return StudentRecord(source_id=source_id, status=status, raw_status=raw_status)
        if info is None:
            intake.quarantine(
                line, f"no role: the user has no row in {ROLES}, so cannot be classified", source_id
            )
            return None
        role, org, end, rank, others = info
        # Most users: one role in one school.
        schools = (org,) if org and not others else tuple(filter(None, (org, *others)))
        # The chosen role's org when roles.csv marks that role primary; else the user's own
        # primaryOrgSourcedId when it gives one.
        primary_school = org if rank % 2 == 0 else (row[i_primary_org].strip() or org)
        if primary_school and primary_school not in schools:
            schools = (primary_school, *schools)
        grades = _split(row[i_grades])
        return StudentRecord(
            source_id=source_id,
            role=role,
            status=status,
            enabled=enabled,
            person_key=(row[i_master].strip() or row[i_identifier].strip() or source_id),
            given_name=row[i_given].strip() or None,
            family_name=row[i_family].strip() or None,
            username=row[i_username].strip() or None,
            grade=grades[0] if grades else None,
            schools=schools,
            primary_school=primary_school or None,
            enrollment_end=end,
            last_modified=modified,
            raw_status=raw_status,
        )

    return make


# One user's roles, kept compact for 1,000,000 users: the chosen role, its org ("" when the role
# names none), its end date, how it was chosen (lower is better), and the user's other orgs.
# Equal values (and most users' whole tuples: the same role in the same school until the same
# day) are stored once.
_RoleInfo = tuple[str, str, date | None, int, tuple[str, ...]]

# How a role is ranked: by tier first (current roles, then current extension roles, then roles
# being removed, then extension roles being removed: a role of a later tier is used only when the
# user has none of an earlier one, and adds none of its orgs), then a student role before any
# other, then a primary role before a secondary one.
_TIER = 4
_EXTENSION_TIER = 1
_DELETED_TIER = 2


class _Shared:
    """Hands back one stored copy of equal values, so a million equal tuples cost one. Past
    ``limit`` distinct values it stores no more (values are then simply not shared)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.values: dict[Any, Any] = {}
        self.limit = limit

    def __call__(self, value: Any) -> Any:
        found = self.values.get(value)
        if found is not None:
            return found
        if len(self.values) < self.limit:
            self.values[value] = value
        return value


def _read_roles(
    bundle: Bundle, plan: Plan, checks: RecordChecks
) -> Generator[IntakeWarning | QuarantinedRow, None, dict[str, _RoleInfo]]:
    """userSourcedId -> the user's chosen role, from roles.csv (RosterFileError for bad rows);
    yields the file's warnings and quarantined rows as it reads.

    A student role wins over any other (the host counts such a person as a student anyway), and
    a primary role over a secondary one; the first row wins a tie. Roles with status
    ``tobedeleted`` are being removed: they are used only for a user with no current role (a
    user being deleted, in a delta file), and their orgs are not the user's. ``ext:`` roles are
    extensions the host counts nobody by: they are used only for a user with no other role.
    """
    assert plan.roles_columns is not None
    columns = plan.roles_columns.indexes
    problems = _Problems(bundle.where(ROLES))
    intake = _Intake(ROLES)
    pending = intake.pending
    delta = plan.roles_mode == "delta"
    i_user = columns["userSourcedId"]
    i_type = columns["roleType"]
    i_role = columns["role"]
    i_org = columns["orgSourcedId"]
    i_end = columns["endDate"]
    i_status = columns["status"]
    share = _Shared()
    dates = _Shared()
    words = ONEROSTER_ROLES
    choices = oneroster_role_choices("1.2")
    roles: dict[str, _RoleInfo] = {}
    for line, row in _rows(bundle, ROLES, plan.roles_columns, problems, intake):
        if pending:
            yield from intake.drain()
        user = row[i_user].strip()
        if not user:
            intake.quarantine(line, "no userSourcedId: the role belongs to nobody")
            continue
        status = _status(row[i_status], delta)
        if status is None:
            problems.add(line, "status", _status_message(row[i_status], delta))
            continue
        role_text = row[i_role].strip()
        role = words.get(role_text.lower())
        extension = False
        if role is None:
            if not role_text:
                intake.quarantine(line, f"no role: the role of user {user!r} is blank", user)
                continue
            if not is_extension_role(role_text):
                problems.add(line, "role", f"{role_text!r} is not a OneRoster role ({choices})")
                continue
            role, extension = role_text, True
        role_type = row[i_type].strip().lower()
        if role_type not in ROLE_TYPES:
            intake.warn(
                "roleType",
                line,
                "roleType",
                f"{row[i_type].strip()!r} is not primary or secondary: the role is taken as "
                "secondary",
            )
            role_type = "secondary"
        org = row[i_org].strip()
        if not org:
            intake.warn(
                "orgSourcedId", line, "orgSourcedId", "the role names no org: no school is known"
            )
        else:
            unfit = checks.unfit_values({"school": org})
            if unfit:
                problems.add(line, "orgSourcedId", unfit[0].message)
                continue
        end_text = row[i_end].strip()
        end = None
        if end_text:
            end = _date(end_text)
            if end is None:
                intake.warn(
                    "endDate",
                    line,
                    "endDate",
                    f"{end_text!r} is not an ISO 8601 date: the role's endDate is left blank",
                )
            else:
                end = dates(end)
        tier = (_DELETED_TIER if status == "tobedeleted" else 0) + (
            _EXTENSION_TIER if extension else 0
        )
        rank = tier * _TIER + (0 if role == "student" else 2) + (0 if role_type == "primary" else 1)
        org = share(org)
        earlier = roles.get(user)
        if earlier is None:
            roles[user] = share((role, org, end, rank, ()))
            continue
        chosen_role, chosen_org, chosen_end, chosen_rank, others = earlier
        chosen_tier = chosen_rank // _TIER
        if tier > chosen_tier:
            continue  # the user has a role of an earlier tier: this one adds nothing
        if tier < chosen_tier:
            roles[user] = share((role, org, end, rank, ()))  # the first role of this tier
            continue
        if rank < chosen_rank:
            others = tuple(school for school in (chosen_org, *others) if school and school != org)
            end = _last_end(end, chosen_end) if _same_kind(rank, chosen_rank) else end
            roles[user] = share((role, org, end, rank, share(others)))
        else:
            if org and org != chosen_org and org not in others:
                others = share((*others, org))
            if _same_kind(rank, chosen_rank):
                chosen_end = _last_end(chosen_end, end)
            roles[user] = share((chosen_role, chosen_org, chosen_end, chosen_rank, others))
    yield from intake.finish()
    problems.raise_if_any()
    return roles


def _same_kind(rank: int, other: int) -> bool:
    """Whether two ranked roles of one tier are both a student's, or both another role's."""
    return (rank % _TIER) // 2 == (other % _TIER) // 2


def _last_end(first: date | None, second: date | None) -> date | None:
    """The later of two enrollment ends; None (open-ended) when either is."""
    return None if first is None or second is None else max(first, second)


# --- Field values ------------------------------------------------------------------------------


def _status(text: str, delta: bool) -> str | None:
    """The status word to report ("active" for a blank bulk status), or None when it is bad."""
    word = text.strip()
    if not word:
        return None if delta else "active"
    lowered = word.lower()
    return lowered if lowered in STATUS_WORDS else None


def _status_message(text: str, delta: bool) -> str:
    if not text.strip():
        return "the status is empty; a delta file gives active or tobedeleted"
    return f"{text!r} is not active or tobedeleted"


def _split(text: str) -> tuple[str, ...]:
    """A OneRoster list field ("org1,org2", quoted in the file): its non-empty items."""
    if not text:
        return ()
    if "," not in text:
        item = text.strip()
        return (item,) if item else ()
    return tuple(item for item in (part.strip() for part in text.split(",")) if item)


# --- Enrollment ends (OneRoster 1.1's enrollments.csv) ------------------------------------------

ENROLLMENTS = "enrollments.csv"
_OPEN = object()  # marks a user not seen yet


def _read_enrollment_ends(bundle: Bundle) -> dict[str, date | None]:
    """userSourcedId -> the last endDate of the user's student enrollments (None while one is
    open-ended or unreadable), when the manifest lists enrollments.csv as bulk; else nothing.

    Forgiving throughout: the dates only feed the count review, so a file or row that cannot be
    read is passed over. Keeps one small entry per enrolled student."""
    if not bundle.has(ENROLLMENTS) or _read_manifest(bundle).get("file.enrollments") != "bulk":
        return {}
    ends: dict[str, Any] = {}
    dates = _Shared()
    with bundle.text(ENROLLMENTS) as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader, [])]
            if "usersourcedid" not in header or "enddate" not in header:
                return {}
            i_user, i_end = header.index("usersourcedid"), header.index("enddate")
            i_role = header.index("role") if "role" in header else None
            i_status = header.index("status") if "status" in header else None
            for row in reader:
                if len(row) != len(header):
                    continue
                if i_role is not None and row[i_role].strip().lower() != "student":
                    continue
                if i_status is not None and row[i_status].strip().lower() == "tobedeleted":
                    continue
                user = row[i_user].strip()
                end = dates(_date(row[i_end])) if row[i_end].strip() else None
                known = ends.get(user, _OPEN)
                ends[user] = end if known is _OPEN else _last_end(known, end)
        except (csv.Error, UnicodeDecodeError):
            return {}
    return ends


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [OneRosterCsvSource(host)]
