"""The two kinds of source a plugin can provide, and the base of every source's options.

A source is any object with the attributes and the method below; the classes here are
``typing.Protocol``s, so a plugin need not inherit from them (``isinstance`` works at run time).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Protocol, Self, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from plugins.records import (
    AfterSync,
    DistrictRef,
    IntakeWarning,
    QuarantinedRow,
    RemovedRecord,
    RosterDelta,
    ServerCount,
    SignedLicense,
    SourceError,
    StudentRecord,
    SyncCursor,
)

# What ``fetch_students`` may return: records (or mappings with the same keys), with at most one
# ServerCount, one AfterSync, any SyncCursor and any intake facts (warnings, quarantined rows)
# among them, as an iterable, an async iterable or an awaitable of either; or a RosterDelta wrapping
# such records (and RemovedRecord) when it reports changes only.
RosterItem = (
    StudentRecord
    | Mapping[str, Any]
    | ServerCount
    | AfterSync
    | IntakeWarning
    | QuarantinedRow
    | SyncCursor
    | RemovedRecord
)
RosterRecords = Iterable[RosterItem] | AsyncIterable[RosterItem]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# An optional file or folder option: a blank value is no value.
PathOption = Annotated[Path | None, BeforeValidator(_blank_is_none)]


class SourceOptions(BaseModel):
    """The base of a source's options model: one pydantic model per source, listing the options
    it accepts under ``[districts.<slug>.roster_sources.<name>.options]`` (roster sources) or
    ``[districts.<slug>] license_options`` (license sources).

    The host validates every district's options with the model when the configuration loads
    (and ``licensing config check`` reports every problem at once), so a misconfigured source
    stops the service at start-up rather than failing at its first fetch. An unknown option is
    a mistake too: the model forbids extra keys.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(
        cls, options: SourceOptions | Mapping[str, Any] | None, *, district_slug: str | None = None
    ) -> Self:
        """``options`` as this model: an instance as it is, a mapping validated (SourceError
        listing each problem when it does not validate). ``district_slug``, when known, is
        given to validators as ``info.context["district_slug"]``, for messages that name it."""
        if isinstance(options, cls):
            return options
        try:
            return cls.model_validate(dict(options or {}), context={"district_slug": district_slug})
        except ValidationError as error:
            raise SourceError("; ".join(options_problems(error))) from None


def options_problems(error: ValidationError) -> list[str]:
    """Each problem of a ValidationError as "field: message", for administrators."""
    problems = []
    for issue in error.errors():
        field = ".".join(str(part) for part in issue["loc"])
        message = issue["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}" if field else message)
    return problems


class NoOptions(SourceOptions):
    """For a source that takes no options."""


@runtime_checkable
class RosterSource(Protocol):
    """A source of a district's people, provided by ``register_roster_sources``."""

    name: str
    """The name that picks it: ``kind`` of a district's roster source, or ``--source``."""
    description: str
    """One line for administrators."""
    options_model: ClassVar[type[SourceOptions]]
    """The model of its options; the host passes ``fetch_students`` a validated instance."""

    def fetch_students(
        self, *, district: DistrictRef, options: Any
    ) -> RosterRecords | RosterDelta | Awaitable[RosterRecords | RosterDelta]:
        """The district's records. ``options`` is an instance of ``options_model``. Raises
        SourceError (RosterFileError for bad rows) when it cannot deliver; the host then keeps
        the previous roster untouched.

        Delta syncs: a method that also accepts the keyword ``sync_state`` receives a
        ``SyncState`` (its ``cursor`` is what the source yielded as ``SyncCursor`` at its last
        applied sync, None when the host wants the whole roster). It may then return a
        ``RosterDelta``: the changes since that cursor (records replacing those of the same id,
        ``RemovedRecord`` for records that are gone), applied to the source's roster as it
        stands. Returning the whole roster is always correct; a source that cannot deliver
        changes (its cursor expired) simply does that."""
        ...


@runtime_checkable
class LicenseSource(Protocol):
    """A source of a district's signed license, provided by ``register_license_sources``."""

    name: str
    """The name that picks it: ``license_source`` in a district's configuration."""
    description: str
    """One line for administrators."""
    options_model: ClassVar[type[SourceOptions]]
    """The model of the district's ``license_options``."""

    def fetch_license(
        self, *, district: DistrictRef, options: Any
    ) -> SignedLicense | Awaitable[SignedLicense]:
        """The district's license exactly as signed, or SourceError. The host verifies the
        signature, the district and the freshness itself; a source never decides whether a
        license is valid."""
        ...
