"""The plugin manager: built-in plugins and third-party entry points, loaded the same way.

Callers use the small typed facade below and never touch ``pm.hook`` directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import pluggy

from plugins import hookspecs

ENTRY_POINT_GROUP = "licensing"

# Built-in plugins are ordinary plugin modules, registered like any third-party one, by short name.
DEFAULT_PLUGINS = {
    "local_roster": "plugins.builtin.local_roster",
    "license_file": "plugins.builtin.license_file",
    "oneroster_csv": "plugins.builtin.oneroster_csv",
    "oneroster_rest": "plugins.builtin.oneroster_rest",
    "clever": "plugins.builtin.clever",
    "licensing_server": "plugins.builtin.licensing_server",
}


class UnknownSourceError(LookupError):
    """A district is configured with a source no plugin provides."""


class PluginManager:
    """Loads plugins once and answers which roster and license sources exist."""

    def __init__(
        self,
        settings: Any,
        *,
        load_entry_points: bool = True,
        only: Iterable[str] | None = None,
        extra_plugins: Iterable[object] = (),
    ) -> None:
        """``only`` limits which third-party entry points load (by entry-point name); plugins
        named in ``settings.disabled_plugins`` never load."""
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        for name in getattr(settings, "disabled_plugins", ()):
            self.pm.set_blocked(name)
        for name, module_name in DEFAULT_PLUGINS.items():
            if not self.pm.is_blocked(name):
                self.pm.register(importlib.import_module(module_name), name=name)
        if load_entry_points:
            if only is None:
                self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            else:
                for name in only:
                    self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        for plugin in extra_plugins:
            self.pm.register(plugin)
        # A misspelt hook implementation fails loudly here rather than never being called.
        self.pm.check_pending()

    def plugin_names(self) -> list[str]:
        return sorted(name for name, plugin in self.pm.list_name_plugin() if plugin is not None)

    @cached_property
    def roster_sources(self) -> dict[str, Any]:
        return _by_name(self.pm.hook.register_roster_sources(settings=self.settings))

    @cached_property
    def license_sources(self) -> dict[str, Any]:
        return _by_name(self.pm.hook.register_license_sources(settings=self.settings))

    def roster_source(self, name: str) -> Any:
        try:
            return self.roster_sources[name]
        except KeyError:
            known = ", ".join(sorted(self.roster_sources)) or "none"
            raise UnknownSourceError(
                f"No plugin provides a roster source named {name!r} (available: {known})."
            ) from None

    def license_source(self, name: str) -> Any:
        try:
            return self.license_sources[name]
        except KeyError:
            known = ", ".join(sorted(self.license_sources)) or "none"
            raise UnknownSourceError(
                f"No plugin provides a license source named {name!r} (available: {known})."
            ) from None


def _by_name(results: list[list[Any] | None]) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    for listed in results:
        for source in listed or ():
            # pluggy calls later-registered plugins first and built-ins last: first name wins.
            sources.setdefault(source.name, source)
    return sources
