"""The public plugin API of the Manage1to1 Licensing service: everything a plugin imports.

A plugin imports from here and from nothing else of the service's::

    from manage1to1_plugins import PluginHost, RosterSource, SourceOptions, StudentRecord, hookimpl

The service's own modules (``licensing``, ``graph``, ``db``, ``app`` and ``plugins``) are not an
API and change without notice; the names below keep their meaning. Helpers for reading what a
server sends (texts, dates, base URLs) are in ``manage1to1_plugins.fields``, and the intake
rules (booleans, role words, headers, encodings) in ``manage1to1_plugins.intake``. See
docs/plugins.md.
"""

from __future__ import annotations

from manage1to1_plugins import fields, intake
from plugins.hookspecs import PROJECT_NAME, hookimpl
from plugins.host import HostSettings, HttpPolicy, PluginHost, RecordChecks
from plugins.http import USER_AGENT, NetworkRetry
from plugins.records import (
    ALERT_EVENTS,
    KEPT_OUTCOMES,
    AfterSync,
    AlertNotice,
    DamagedLicenseError,
    DistrictRef,
    FieldProblem,
    IntakeWarning,
    QuarantinedRow,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
    RosterUnchanged,
    RowProblem,
    ServerCount,
    SignedLicense,
    SourceError,
    StudentRecord,
    SyncCursor,
    SyncState,
)
from plugins.sources import (
    LicenseSource,
    NoOptions,
    PathOption,
    RosterItem,
    RosterRecords,
    RosterSource,
    SourceOptions,
    options_problems,
)

# The entry-point group a plugin distribution registers its module under.
ENTRY_POINT_GROUP = PROJECT_NAME

__all__ = [
    "ALERT_EVENTS",
    "ENTRY_POINT_GROUP",
    "KEPT_OUTCOMES",
    "USER_AGENT",
    "AfterSync",
    "AlertNotice",
    "DamagedLicenseError",
    "DistrictRef",
    "FieldProblem",
    "HostSettings",
    "HttpPolicy",
    "IntakeWarning",
    "LicenseSource",
    "NetworkRetry",
    "NoOptions",
    "PathOption",
    "PluginHost",
    "QuarantinedRow",
    "RecordChecks",
    "RemovedRecord",
    "RosterDelta",
    "RosterFileError",
    "RosterItem",
    "RosterRecords",
    "RosterSource",
    "RosterUnchanged",
    "RowProblem",
    "ServerCount",
    "SignedLicense",
    "SourceError",
    "SourceOptions",
    "StudentRecord",
    "SyncCursor",
    "SyncState",
    "fields",
    "hookimpl",
    "intake",
    "options_problems",
]
