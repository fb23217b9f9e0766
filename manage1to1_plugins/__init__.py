"""The public plugin API of the Manage1to1 Licensing service: everything a plugin imports.

A plugin imports from here and from nothing else of the service's::

    from manage1to1_plugins import PluginHost, RosterSource, SourceOptions, StudentRecord, hookimpl

The service's own modules (``licensing``, ``graph``, ``db``, ``app`` and ``plugins``) are not an
API and change without notice; the names below keep their meaning. Helpers for reading what a
server sends (texts, dates, base URLs) are in ``manage1to1_plugins.fields``. See docs/plugins.md.
"""

from __future__ import annotations

from manage1to1_plugins import fields
from plugins.hookspecs import PROJECT_NAME, hookimpl
from plugins.host import HostSettings, HttpPolicy, PluginHost, RecordChecks
from plugins.http import USER_AGENT
from plugins.records import (
    ALERT_EVENTS,
    AlertNotice,
    DamagedLicenseError,
    DistrictRef,
    FieldProblem,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
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
    "USER_AGENT",
    "AlertNotice",
    "DamagedLicenseError",
    "DistrictRef",
    "FieldProblem",
    "HostSettings",
    "HttpPolicy",
    "LicenseSource",
    "NoOptions",
    "PathOption",
    "PluginHost",
    "RecordChecks",
    "RemovedRecord",
    "RosterDelta",
    "RosterFileError",
    "RosterItem",
    "RosterRecords",
    "RosterSource",
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
    "options_problems",
]
