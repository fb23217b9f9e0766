"""The host object the plugins receive, and the plugin manager built around it.

``PluginHost`` (in the public plugin API) carries what a plugin may use of the service; its
record checks are this package's roster rules, so a source reports a value the roster cannot
hold exactly as the host would refuse it, without importing the host's modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from licensing.domain.clock import utc_now
from licensing.settings import Settings
from licensing.storage import roster
from plugins.host import PluginHost
from plugins.manager import PluginManager
from plugins.records import FieldProblem, StudentRecord


class RosterRecordChecks:
    """``RecordChecks`` by the roster's own rules (``licensing.storage.roster``)."""

    def role_problem(self, word: str) -> str | None:
        return _problem(roster.role_of, word)

    def status_problem(self, word: str) -> str | None:
        return _problem(roster.lifecycle_of, word)

    def unfit_fields(self, record: StudentRecord) -> list[FieldProblem]:
        return roster.unfit_fields(record)

    def unfit_values(self, row: Mapping[str, Any]) -> list[FieldProblem]:
        return roster.unfit_values(row)


def _problem(check: Callable[[str], object], word: str) -> str | None:
    try:
        check(word)
    except ValueError as error:
        return str(error)
    return None


def plugin_host(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> PluginHost:
    return PluginHost(settings=settings, clock=clock, records=RosterRecordChecks())


def load_plugins(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    load_entry_points: bool = True,
    only: Iterable[str] | None = None,
    extra_plugins: Iterable[object] = (),
) -> PluginManager:
    """The plugin manager of a process: built-in plugins, entry points and ``extra_plugins``,
    each hook handed the host built from ``settings`` and ``clock``."""
    return PluginManager(
        plugin_host(settings, clock=clock),
        load_entry_points=load_entry_points,
        only=only,
        extra_plugins=extra_plugins,
    )
