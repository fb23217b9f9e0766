"""OneRoster CSV bundles: students and staff from an IMS OneRoster 1.1 or 1.2 CSV export.

A bundle is a ``.zip`` file or a folder holding ``manifest.csv`` and ``users.csv`` (and, for
OneRoster 1.2, ``roles.csv``). The source reads it as a stream: ``fetch_students`` checks the
manifest and the headers at once, then returns a generator that reads ``users.csv`` one row at a
time and yields one ``StudentRecord`` per user, so memory does not grow with the roster. Only a
1.2 bundle keeps something per user: its ``roles.csv`` is read first into a compact dictionary
(one small tuple per user), because a user's role and organisations live there.

What it reads:

- ``manifest.csv`` (``propertyName,value``): ``manifest.version`` must be ``1.0``;
  ``oneroster.version`` ``1.1`` or ``1.2`` (when absent, the users.csv header tells);
  ``file.users`` (and ``file.roles`` for 1.2) ``bulk``, ``delta`` or ``absent``.
- ``users.csv``: the standard header of its version, names exactly as the specification writes
  them, in any order; extension columns ``metadata.*`` are allowed and ignored.
- ``roles.csv`` (1.2): a user's role and organisations; ``roleType`` ``primary`` marks the
  primary one, and a student role wins over any other (the host counts such a person as a
  student anyway); ``endDate`` becomes ``enrollment_end``.

Mapping: ``sourcedId`` -> ``source_id``; the person key (how the same person is recognised in
other sources) is 1.2's ``userMasterIdentifier``, else ``identifier`` (the district's student
number), else the ``sourcedId``; ``status`` blank -> ``active`` and ``tobedeleted`` is passed on
(the host reads it as deleted), ``raw_status`` keeping the text exactly as in the file;
``enabledUser`` must be ``true`` or ``false`` in any letter case; ``orgSourcedIds`` -> schools,
the first being the primary one; the first of ``grades`` -> grade; ``dateLastModified`` ->
``last_modified`` (UTC). Role words are passed on as they are (``guardian``, ``parent`` and
``relative`` are people the host neither stores nor counts).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from manage1to1_plugins import (
    DistrictRef,
    PathOption,
    PluginHost,
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
# Published versions of the 1.2 CSV binding differ on users.csv's resourceSourcedIds (1.2.1 moved
# a user's resources to userResources.csv): a header may have it or not.
OPTIONAL_COLUMNS = {"1.1": frozenset(), "1.2": frozenset({"resourceSourcedIds"})}
USER_COLUMNS = {"1.1": USERS_V1P1, "1.2": USERS_V1P2}
EXTENSION_PREFIX = "metadata."

ROLES_V1P1_WORDS = {
    word.lower(): word
    for word in (
        "administrator",
        "aide",
        "guardian",
        "parent",
        "proctor",
        "relative",
        "student",
        "teacher",
    )
}
ROLES_V1P2_WORDS = {
    word.lower(): word
    for word in (
        "aide",
        "counselor",
        "districtAdministrator",
        "guardian",
        "parent",
        "principal",
        "proctor",
        "relative",
        "siteAdministrator",
        "student",
        "systemAdministrator",
        "teacher",
    )
}
ROLE_TYPES = ("primary", "secondary")
ENABLED_WORDS = {"true": True, "false": False}
STATUS_WORDS = ("active", "tobedeleted")
MAX_PROBLEMS = 1000
DELETED_RANK = 4  # roles.csv rows ranked this or worse are roles being removed


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
    ) -> Iterator[StudentRecord] | RosterDelta:
        config = OneRosterCsvOptions.parse(options)
        if not config.path:
            raise SourceError(
                "The OneRoster CSV source reads a bundle: give its path (a .zip file or a folder)."
            )
        return read_bundle(config.path, checks=self.host.records, allow_delta=config.allow_delta)


def read_bundle(
    path: Path, *, checks: RecordChecks, allow_delta: bool = False
) -> Iterator[StudentRecord] | RosterDelta:
    """Check the bundle's manifest and headers now, then a generator of its users' records (a
    ``RosterDelta`` of them for a delta bundle).

    Raises SourceError (a missing file, a damaged zip, a manifest it cannot use) or
    RosterFileError (a bad header) before anything is read; the generator raises RosterFileError
    for bad rows.
    """
    bundle = Bundle.open(path)
    plan = _plan(bundle, allow_delta=allow_delta)
    if plan.users_mode == "delta":
        return RosterDelta(_changes(_records(bundle, plan, checks)))
    return _records(bundle, plan, checks)


def _changes(records: Iterator[StudentRecord]) -> Iterator[StudentRecord | RemovedRecord]:
    """A delta file's records as changes: ``tobedeleted`` removes the record."""
    for record in records:
        if record.status == "tobedeleted":
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
    path: Path
    members: dict[str, str]  # file name -> where it is (a zip member name, or a file path)
    is_zip: bool

    @classmethod
    def open(cls, path: Path) -> Bundle:
        if path.is_dir():
            members = {
                entry.name: str(entry) for entry in path.iterdir() if entry.name.endswith(".csv")
            }
            return cls(path=path, members=members, is_zip=False)
        if not path.exists():
            raise SourceError(f"No OneRoster bundle at {path}: no such file or folder.")
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise SourceError(
                f"{path} is not a readable zip file ({error}); a OneRoster bundle is a .zip "
                "file or a folder of CSV files."
            ) from None
        except OSError as error:
            raise SourceError(f"Cannot read {path}: {error.strerror or error}.") from None
        return cls(path=path, members=_zip_members(names), is_zip=True)

    def where(self, name: str) -> str:
        """How messages name one of the bundle's files."""
        return str(self.path / name)

    def has(self, name: str) -> bool:
        return name in self.members

    @contextmanager
    def text(self, name: str) -> Iterator[io.TextIOBase]:
        """The file as UTF-8 text (a byte-order mark allowed), streamed, never read whole."""
        if name not in self.members:
            raise SourceError(f"The OneRoster bundle {self.path} has no {name}.")
        try:
            if self.is_zip:
                with (
                    zipfile.ZipFile(self.path) as archive,
                    archive.open(self.members[name]) as raw,
                    io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle,
                ):
                    yield handle
            else:
                with open(self.members[name], encoding="utf-8-sig", newline="") as handle:
                    yield handle
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise SourceError(
                f"{self.where(name)} is damaged and cannot be read ({error}); the previous "
                "roster is kept."
            ) from None
        except OSError as error:
            raise SourceError(
                f"Cannot read {self.where(name)}: {error.strerror or error}."
            ) from None


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
class Plan:
    version: str
    users_mode: str
    roles_mode: str | None
    users_columns: dict[str, int]
    roles_columns: dict[str, int] | None


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
        version = "1.2" if "role" not in header and "userMasterIdentifier" in header else "1.1"
    users_columns = _columns(bundle, USERS, header, USER_COLUMNS[version], version)
    if version == "1.1":
        return Plan(version, users_mode, None, users_columns, None)
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
    roles_columns = _columns(bundle, ROLES, _header(bundle, ROLES), ROLES_V1P2, version)
    return Plan(version, users_mode, roles_mode, users_columns, roles_columns)


def _read_manifest(bundle: Bundle) -> dict[str, str]:
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
            if header is None or tuple(header) != MANIFEST_COLUMNS:
                raise SourceError(
                    f"{where}: the header is {','.join(header or [])!r}; a manifest's is "
                    f"{','.join(MANIFEST_COLUMNS)!r}."
                )
            for row in reader:
                if len(row) >= 2 and row[0].strip():
                    properties[row[0].strip()] = row[1].strip()
        except (csv.Error, UnicodeDecodeError) as error:
            raise SourceError(
                f"{where} is not a readable CSV file (line {reader.line_num}: {error})."
            ) from None
    return properties


def _mode(manifest: dict[str, str], name: str, where: str) -> str:
    mode = manifest.get(name)
    if mode is None:
        raise SourceError(f"{where} has no {name} property (bulk, delta or absent).")
    if mode not in MODES:
        raise SourceError(f"{where}: {name} is {mode!r}, not bulk, delta or absent.")
    return mode


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
    if not header:
        raise RosterFileError(bundle.where(name), [RowProblem(1, None, "the file is empty")])
    return header


def _columns(
    bundle: Bundle, name: str, header: list[str], expected: tuple[str, ...], version: str
) -> dict[str, int]:
    """Column name -> index, or RosterFileError naming each missing, unknown or repeated one."""
    problems: list[RowProblem] = []
    seen: set[str] = set()
    optional = OPTIONAL_COLUMNS[version] if name == USERS else frozenset()
    for column in header:
        if column in seen:
            problems.append(RowProblem(1, column, "the column appears twice"))
        seen.add(column)
        if column not in expected and not column.startswith(EXTENSION_PREFIX):
            problems.append(
                RowProblem(
                    1,
                    column,
                    f"unknown column for {name} of OneRoster {version} (names are "
                    "case-sensitive; extensions start with metadata.)",
                )
            )
    for column in expected:
        if column not in seen and column not in optional:
            problems.append(
                RowProblem(1, column, f"missing column: {name} of OneRoster {version} has it")
            )
    if problems:
        raise RosterFileError(bundle.where(name), problems)
    return {column: index for index, column in enumerate(header)}


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


def _rows(
    bundle: Bundle, name: str, width: int, problems: _Problems
) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) for every data row, the header skipped; short and long rows reported."""
    with bundle.text(name) as handle:
        reader = csv.reader(handle)
        try:
            next(reader, None)
            for row in reader:
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0]):
                        continue  # a blank line
                    problems.add(
                        reader.line_num,
                        None,
                        f"{len(row)} fields where the header has {width}",
                    )
                    continue
                yield reader.line_num, row
        except UnicodeDecodeError:
            problems.add(reader.line_num + 1, None, "the file is not UTF-8 text")
        except csv.Error as error:
            problems.add(reader.line_num, None, f"not valid CSV: {error}")


def _records(bundle: Bundle, plan: Plan, checks: RecordChecks) -> Iterator[StudentRecord]:
    roles = _read_roles(bundle, plan, checks) if plan.version == "1.2" else None
    problems = _Problems(bundle.where(USERS))
    columns = plan.users_columns
    delta = plan.users_mode == "delta"
    if plan.version == "1.1":
        make = _v1p1_maker(columns, delta, problems)
    else:
        assert roles is not None
        make = _v1p2_maker(columns, delta, problems, roles)
    stored_from = STORED_FROM[plan.version]
    for line, row in _rows(bundle, USERS, len(columns), problems):
        record = make(line, row)
        if record is not None and _fits(record, line, row, columns, stored_from, problems, checks):
            yield record
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
    columns: dict[str, int], delta: bool, problems: _Problems
) -> Callable[[int, list[str]], tuple[str, str, str, bool, datetime | None] | None]:
    """Reads what both versions share: (sourcedId, status, raw status, enabled, modified)."""
    i_id = columns["sourcedId"]
    i_status = columns["status"]
    i_enabled = columns["enabledUser"]
    i_modified = columns["dateLastModified"]
    add = problems.add

    def common(line: int, row: list[str]) -> tuple[str, str, str, bool, datetime | None] | None:
        bad = False
        source_id = row[i_id].strip()
        if not source_id:
            add(line, "sourcedId", "the sourcedId is empty")
            bad = True
        raw_status = row[i_status]
        status = _status(raw_status, delta)
        if status is None:
            add(line, "status", _status_message(raw_status, delta))
            bad = True
        enabled = ENABLED_WORDS.get(row[i_enabled].strip().lower())
        if enabled is None:
            add(line, "enabledUser", f"{row[i_enabled]!r} is not true or false")
            bad = True
        modified_text = row[i_modified].strip()
        modified = None
        if modified_text:
            modified = _timestamp(modified_text)
            if modified is None:
                add(
                    line,
                    "dateLastModified",
                    f"{modified_text!r} is not an ISO 8601 date and time",
                )
                bad = True
        if bad:
            return None
        return source_id, status, raw_status, enabled, modified  # type: ignore[return-value]

    return common


def _v1p1_maker(
    columns: dict[str, int], delta: bool, problems: _Problems
) -> Callable[[int, list[str]], StudentRecord | None]:
    common = _common(columns, delta, problems)
    i_role = columns["role"]
    i_orgs = columns["orgSourcedIds"]
    i_identifier = columns["identifier"]
    i_grades = columns["grades"]
    i_username = columns["username"]
    i_given = columns["givenName"]
    i_family = columns["familyName"]
    words = ", ".join(ROLES_V1P1_WORDS.values())

    def make(line: int, row: list[str]) -> StudentRecord | None:
        shared = common(line, row)
        role = row[i_role].strip()
        if role.lower() not in ROLES_V1P1_WORDS:
            problems.add(line, "role", f"{role!r} is not a OneRoster 1.1 role ({words})")
            return None
        if shared is None:
            return None
        source_id, status, raw_status, enabled, modified = shared
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
    columns: dict[str, int], delta: bool, problems: _Problems, roles: dict[str, _RoleInfo]
) -> Callable[[int, list[str]], StudentRecord | None]:
    common = _common(columns, delta, problems)
    i_master = columns["userMasterIdentifier"]
    i_identifier = columns["identifier"]
    i_primary_org = columns["primaryOrgSourcedId"]
    i_grades = columns["grades"]
    i_username = columns["username"]
    i_given = columns["givenName"]
    i_family = columns["familyName"]

    def make(line: int, row: list[str]) -> StudentRecord | None:
        shared = common(line, row)
        if shared is None:
            return None
        source_id, status, raw_status, enabled, modified = shared
        info = roles.get(source_id)
        if info is None and delta and status == "tobedeleted":
            # A removal in a delta: the user's roles go with them.
            return StudentRecord(source_id=source_id, status=status, raw_status=raw_status)
        if info is None:
            problems.add(
                line,
                "sourcedId",
                f"user {source_id!r} has no role in {ROLES} (a OneRoster 1.2 bundle gives "
                "each user's roles there; ext: roles alone are not enough)",
            )
            return None
        role, org, end, rank, others = info
        schools = (org, *others) if others else (org,)
        # The chosen role's org when roles.csv marks that role primary; else the user's own
        # primaryOrgSourcedId when it gives one.
        primary_school = org if rank % 2 == 0 else (row[i_primary_org].strip() or org)
        if primary_school not in schools:
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
            primary_school=primary_school,
            enrollment_end=end,
            last_modified=modified,
            raw_status=raw_status,
        )

    return make


# One user's roles, kept compact for 1,000,000 users: the chosen role, its org, its end date, how
# it was chosen (lower is better), and the user's other orgs. Equal values (and most users' whole
# tuples: the same role in the same school until the same day) are stored once.
_RoleInfo = tuple[str, str, date | None, int, tuple[str, ...]]


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


def _read_roles(bundle: Bundle, plan: Plan, checks: RecordChecks) -> dict[str, _RoleInfo]:
    """userSourcedId -> the user's chosen role, from roles.csv (RosterFileError for bad rows).

    A student role wins over any other (the host counts such a person as a student anyway), and
    a primary role over a secondary one; the first row wins a tie. Roles with status
    ``tobedeleted`` are being removed: they are used only for a user with no current role (a
    user being deleted, in a delta file), and their orgs are not the user's. ``ext:`` roles are
    extensions the service cannot classify and are skipped.
    """
    assert plan.roles_columns is not None
    columns = plan.roles_columns
    problems = _Problems(bundle.where(ROLES))
    delta = plan.roles_mode == "delta"
    i_user = columns["userSourcedId"]
    i_type = columns["roleType"]
    i_role = columns["role"]
    i_org = columns["orgSourcedId"]
    i_end = columns["endDate"]
    i_status = columns["status"]
    share = _Shared()
    dates = _Shared()
    words = ", ".join(ROLES_V1P2_WORDS.values())
    roles: dict[str, _RoleInfo] = {}
    for line, row in _rows(bundle, ROLES, len(columns), problems):
        user = row[i_user].strip()
        if not user:
            problems.add(line, "userSourcedId", "the userSourcedId is empty")
            continue
        status = _status(row[i_status], delta)
        if status is None:
            problems.add(line, "status", _status_message(row[i_status], delta))
            continue
        role_type = row[i_type].strip()
        if role_type not in ROLE_TYPES:
            problems.add(line, "roleType", f"{role_type!r} is not primary or secondary")
            continue
        role_text = row[i_role].strip()
        role = ROLES_V1P2_WORDS.get(role_text.lower())
        if role is None:
            if role_text.startswith("ext:"):
                continue
            problems.add(line, "role", f"{role_text!r} is not a OneRoster 1.2 role ({words})")
            continue
        org = row[i_org].strip()
        if not org:
            problems.add(line, "orgSourcedId", "the orgSourcedId is empty")
            continue
        unfit = checks.unfit_values({"school": org})
        if unfit:
            problems.add(line, "orgSourcedId", unfit[0].message)
            continue
        end_text = row[i_end].strip()
        end = None
        if end_text:
            end = _date(end_text)
            if end is None:
                problems.add(line, "endDate", f"{end_text!r} is not an ISO 8601 date")
                continue
            end = dates(end)
        deleted = status == "tobedeleted"
        rank = (
            (0 if role == "student" else 2)
            + (0 if role_type == "primary" else 1)
            + (DELETED_RANK if deleted else 0)
        )
        org = share(org)
        earlier = roles.get(user)
        if earlier is None:
            roles[user] = share((role, org, end, rank, ()))
            continue
        chosen_role, chosen_org, chosen_end, chosen_rank, others = earlier
        if deleted and chosen_rank < DELETED_RANK:
            continue  # the user has a current role: one being removed adds nothing
        if not deleted and chosen_rank >= DELETED_RANK:
            roles[user] = share((role, org, end, rank, ()))  # the first current role
            continue
        if rank < chosen_rank:
            others = tuple(school for school in (chosen_org, *others) if school != org)
            roles[user] = share((role, org, end, rank, share(others)))
        elif org != chosen_org and org not in others:
            others = share((*others, org))
            roles[user] = share((chosen_role, chosen_org, chosen_end, chosen_rank, others))
    problems.raise_if_any()
    return roles


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


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [OneRosterCsvSource(host)]
