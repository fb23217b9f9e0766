"""What plugins hand to the host: plain records, the signed license envelope, and errors.

These classes are the public surface for plugin authors. A roster plugin may also yield plain
mappings with the same keys as StudentRecord; the host normalizes and validates both.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
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
    exactly as sent, for audit. ``enabled`` is False for a disabled account: sources must read their
    flag exactly and raise RosterFileError for a value that is neither true nor false.
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
                f"The license is not a license document (not JSON: {error})."
            ) from None
        if not isinstance(envelope, dict) or envelope.get("format") != LICENSE_ENVELOPE_FORMAT:
            raise SourceError(
                f'The license is not a license document (its "format" is not '
                f'"{LICENSE_ENVELOPE_FORMAT}").'
            )
        if envelope.get("version") != LICENSE_ENVELOPE_VERSION:
            raise SourceError(
                f"License document version {envelope.get('version')!r} is not supported."
            )
        try:
            payload = base64.b64decode(envelope["payload"], validate=True)
            signature = base64.b64decode(envelope["signature"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise DamagedLicenseError(
                "The license document has no valid payload or signature."
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
    """A source could not deliver; the message is shown to the administrator as it is."""


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
