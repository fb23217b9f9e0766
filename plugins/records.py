"""What plugins hand to the host: plain records, the signed license envelope, and errors.

These classes are the public surface for plugin authors. A roster plugin may also yield plain
mappings with the same keys as StudentRecord; the host normalizes and validates both.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

LICENSE_ENVELOPE_FORMAT = "manage1to1-license"
LICENSE_ENVELOPE_VERSION = 1


@dataclass(frozen=True)
class DistrictRef:
    """The district a hook call is about."""

    slug: str
    official_name: str
    time_zone: str


ALERT_EVENTS = ("alert_raised", "alert_resolved")


@dataclass(frozen=True)
class AlertNotice:
    """An alert as the ``alert_raised`` and ``alert_resolved`` hooks receive it.

    ``event`` is the hook being called (``alert_raised`` or ``alert_resolved``). The other fields
    are the alert as stored when the hook is called: ``kind`` (``LICENSES_LOW``, ``OVER_LIMIT``
    ...), ``severity`` (``INFO``, ``WARNING`` or ``CRITICAL``), the ``message`` shown to
    administrators, the ``placements`` where it shows (``DASHBOARD``, ``LICENSE_BANNER``,
    ``SYSTEM_INDICATOR``), when it was raised and, once resolved, when (timezone-aware, UTC). An
    alert raised and resolved before the notification step ran is reported raised with its
    ``resolved_at`` already set, then resolved. ``idempotency_key`` is ``"<event>:<id>"``: the
    same for every repeat of one notification, so a receiver can de-duplicate.
    """

    id: int
    kind: str
    severity: str
    message: str
    placements: tuple[str, ...]
    raised_at: datetime
    resolved_at: datetime | None
    event: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.event}:{self.id}"


@dataclass(frozen=True)
class StudentRecord:
    """One person as a roster source reports them. Facts only: the host decides what counts.

    ``role`` and ``status`` are the source's own words (``student``, ``teacher``, ``guardian``;
    ``active``, ``graduated``, ``tobedeleted`` ...) and ``raw_status`` keeps the source's status
    exactly as sent, for audit. ``enabled`` is False for a disabled account: sources read their
    flag by the intake rule (true/false, 1/0, yes/no in any case: ``intake.flag``) and raise
    RosterFileError for any other value.
    ``person_key`` identifies the same person across sources and records; when empty,
    ``source_id`` is used. ``schools`` are the person's organisations (sourcedIds or names), and
    ``primary_school`` the primary one when the source says.
    """

    source_id: str
    role: str = "student"
    status: str = "active"
    enabled: bool = True
    person_key: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    username: str | None = None
    grade: str | None = None
    schools: Sequence[str] = field(default_factory=tuple)
    primary_school: str | None = None
    graduation_year: int | None = None
    enrollment_end: date | None = None
    last_modified: datetime | None = None
    raw_status: str | None = None


@dataclass(frozen=True)
class ServerCount:
    """Yielded among the records when the source's server states its own total (for example
    OneRoster's ``X-Total-Count``): the host shows it beside its count, as a cross-check only."""

    total: int


# The outcomes of a sync after which a source's input counts as read: its records were applied,
# held for an administrator (kept in the database, applied when confirmed), or superseded by a
# newer sync. A failed sync is not among them: its input is to be read again.
KEPT_OUTCOMES = ("applied", "held", "superseded")


@dataclass(frozen=True)
class AfterSync:
    """Yielded among the records (once, usually last) by a source that must tidy up its input
    once the service has kept what it read: a drop folder moving the file it read to an archive,
    say.

    The host calls ``callback(outcome)`` after the sync's transaction is committed, with the
    outcome, one of ``KEPT_OUTCOMES`` (``"applied"``, ``"held"`` or ``"superseded"``), and never
    when the sync failed: the input is then left as it was, to be read again. The callback may be
    a coroutine function (awaited) or a plain function (run in a worker thread). An exception it
    raises is logged and does not change the sync's outcome: the roster is already applied.
    """

    callback: Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class IntakeWarning:
    """Yielded among the records for something a source read past without changing the count:
    an unknown or misspelt column, a date it could not read, a file in another encoding.

    ``file`` names the file or collection (``users.csv``; never a path of the server), ``line``
    the first line it happened at, ``column`` the column, and ``rows`` on how many rows: a
    source reports one warning per kind of problem, not one per row. The host stores it with the
    sync run and shows it to the administrator; it never changes what is counted."""

    message: str
    file: str | None = None
    line: int | None = None
    column: str | None = None
    rows: int = 1


@dataclass(frozen=True)
class QuarantinedRow:
    """Yielded among the records for a row that cannot be classified (no id, or no role at
    all): it is not counted, and the host lists it with its file, line and reason. ``source_id``
    is the row's id when it has one. A sync whose quarantined rows exceed the source's
    ``max_quarantined_share`` of its rows is held for an administrator's confirmation."""

    reason: str
    file: str | None = None
    line: int | None = None
    source_id: str | None = None


# What a source may yield among its records besides them: facts about the reading itself.
INTAKE_FACTS = (ServerCount, IntakeWarning, QuarantinedRow)


@dataclass(frozen=True)
class RemovedRecord:
    """Yielded among the records of a ``RosterDelta``: the record with this id is gone from the
    source (deleted in the SIS, no longer shared). In a whole roster it means nothing: whoever a
    whole roster leaves out is removed anyway."""

    source_id: str


@dataclass(frozen=True)
class SyncCursor:
    """Yielded among the records (a whole roster or a delta): where the source's next delta
    starts, in the source's own terms (a timestamp, an event id). The host stores it with the
    sync once the sync is applied, and hands it back as ``SyncState.cursor``; the last one
    yielded wins. A sync that is held, fails or is superseded never moves it."""

    value: str


@dataclass(frozen=True)
class SyncState:
    """What the host remembers of a source's syncs, passed to ``fetch_students`` as
    ``sync_state`` when the method accepts that keyword.

    ``cursor`` is the ``SyncCursor`` of the source's last applied sync, and is None when the
    host wants the whole roster: the first sync, a full sync due (the source's
    ``full_sync_every_days`` have passed since the last full one), one asked for (``licensing
    sync --full``), or the source's plugin changed. ``last_full_sync_at`` is when the last
    whole roster was applied (UTC), None before the first.
    """

    cursor: str | None = None
    last_full_sync_at: datetime | None = None


@dataclass(frozen=True)
class RosterDelta:
    """What ``fetch_students`` returns to report changes instead of the whole roster.

    ``records`` is what a whole roster would be (an iterable or async iterable of
    ``StudentRecord`` or mappings), plus ``RemovedRecord`` for records that are gone and
    ``SyncCursor``: each record replaces the stored record of the same ``source_id`` (or is
    added), each ``RemovedRecord`` removes one, and every record it does not mention stays as
    it is. A record of someone the host does not store (a guardian) removes that id too, as a
    whole roster would. Each id appears at most once. The host applies the changes through the
    same hold, audit event and change event as a whole roster, and the counts come out exactly
    as a full sync of the resulting roster would give them.
    """

    records: Any


@dataclass(frozen=True)
class SignedLicense:
    """A license document exactly as signed: the payload bytes and their Ed25519 signature.

    The host verifies the signature against its trusted keys before believing a word of it.
    ``max_age`` is set by sources that ask a live server: the payload must then carry a
    ``signed_at`` no further than ``max_age`` from the host's clock, or the host refuses it as a
    possibly replayed answer (``STALE_RESPONSE``). License files leave it ``None``.
    """

    payload: bytes
    signature: bytes
    key_id: str | None = None
    max_age: timedelta | None = None

    @classmethod
    def from_envelope(cls, data: bytes) -> SignedLicense:
        """Read the JSON envelope a license file or the licensing server carries."""
        try:
            envelope = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SourceError(
                "The license is not a license document.", detail=f"not JSON: {error}"
            ) from None
        if not isinstance(envelope, dict) or envelope.get("format") != LICENSE_ENVELOPE_FORMAT:
            raise SourceError(
                "The license is not a license document.",
                detail=f'its "format" is not "{LICENSE_ENVELOPE_FORMAT}"',
            )
        if envelope.get("version") != LICENSE_ENVELOPE_VERSION:
            raise SourceError(
                "The license document is of a version this service does not read.",
                detail=f"envelope version {str(envelope.get('version'))[:20]!r}",
            )
        try:
            payload = base64.b64decode(envelope["payload"], validate=True)
            signature = base64.b64decode(envelope["signature"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise DamagedLicenseError(
                "The license document is damaged: its payload or signature cannot be read.",
                detail="no valid base64 payload or signature in the envelope",
            ) from None
        key_id = envelope.get("key_id")
        return cls(payload=payload, signature=signature, key_id=key_id if key_id else None)

    def to_envelope(self) -> bytes:
        envelope = {
            "format": LICENSE_ENVELOPE_FORMAT,
            "version": LICENSE_ENVELOPE_VERSION,
            "key_id": self.key_id,
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }
        return (json.dumps(envelope, indent=2) + "\n").encode("utf-8")


class SourceError(Exception):
    """A source could not deliver. The message is shown to the administrator as it is: what went
    wrong and what to do, in words. ``detail`` is for the operator only and goes to the server
    log: a file path on the server, an address, a parser's or a library's error text."""

    def __init__(self, message: str = "", *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class RosterUnchanged(Exception):
    """Raised by ``fetch_students`` (before yielding any record) when the source has nothing new
    since its last sync: a drop folder whose newest file was already read, say.

    Not a failure: the host keeps the roster in force, records the sync as ``unchanged`` with
    the message (shown to the administrator as it is), and a source that was failing is healthy
    again. The message says what was found, e.g. "Nothing new: roster-0612.zip was synced on
    2026-06-12."
    """


class DamagedLicenseError(SourceError):
    """The source delivered a document whose payload or signature is not even well-formed: it
    was altered or damaged on the way, so its signature cannot match."""


@dataclass(frozen=True)
class FieldProblem:
    """One value of a record that the roster cannot store: the stored field, and why."""

    field: str
    message: str


@dataclass(frozen=True)
class RowProblem:
    """One bad row of an input file: where it is and what is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class RosterFileError(SourceError):
    """An input file has bad rows; nothing from it is applied."""

    def __init__(self, path: str, problems: Sequence[RowProblem]) -> None:
        self.path = path
        self.problems = list(problems)
        shown = "\n".join(f"  {problem}" for problem in self.problems[:50])
        more = len(self.problems) - 50
        suffix = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{path}: {len(self.problems)} bad row(s), nothing imported:\n{shown}{suffix}"
        )
