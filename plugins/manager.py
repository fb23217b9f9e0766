"""The plugin manager: built-in plugins and third-party entry points, loaded the same way.

Callers use the small typed facade below and never touch ``pm.hook`` directly.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable, Mapping
from functools import cached_property, partial
from typing import Any, TypeVar

import anyio
import pluggy
from anyio import to_thread

from plugins import hookspecs
from plugins.host import HostSettings, PluginHost
from plugins.records import ALERT_EVENTS, AlertNotice, DistrictRef
from plugins.sources import LicenseSource, RosterSource, SourceOptions

logger = logging.getLogger(__name__)

# One notification hook call may take this long before it is abandoned and logged as failed.
NOTIFY_TIMEOUT_SECONDS = 60.0

ENTRY_POINT_GROUP = "licensing"

# Built-in plugins are ordinary plugin modules, registered like any third-party one, by short name;
# they use only the public plugin API (manage1to1_plugins), as a third-party plugin does.
DEFAULT_PLUGINS = {
    "local_roster": "plugins.builtin.local_roster",
    "license_file": "plugins.builtin.license_file",
    "oneroster_csv": "plugins.builtin.oneroster_csv",
    "oneroster_rest": "plugins.builtin.oneroster_rest",
    "oneroster_drop": "plugins.builtin.oneroster_drop",
    "clever": "plugins.builtin.clever",
    "licensing_server": "plugins.builtin.licensing_server",
}

Source = TypeVar("Source", RosterSource, LicenseSource)


class UnknownSourceError(LookupError):
    """A district is configured with a source no plugin provides."""


class PluginManager:
    """Loads plugins once and answers which roster and license sources exist."""

    def __init__(
        self,
        host: PluginHost,
        *,
        load_entry_points: bool = True,
        only: Iterable[str] | None = None,
        extra_plugins: Iterable[object] = (),
    ) -> None:
        """``only`` limits which third-party entry points load (by entry-point name); plugins
        named in ``settings.disabled_plugins`` never load. ``host`` is what every hook receives."""
        self.host = host
        self.settings: HostSettings = host.settings
        settings = host.settings
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
    def roster_sources(self) -> dict[str, RosterSource]:
        return _by_name(
            self.pm.hook.register_roster_sources(host=self.host, settings=self.settings)
        )

    @cached_property
    def license_sources(self) -> dict[str, LicenseSource]:
        return _by_name(
            self.pm.hook.register_license_sources(host=self.host, settings=self.settings)
        )

    def roster_source(self, name: str) -> RosterSource:
        try:
            return self.roster_sources[name]
        except KeyError:
            known = ", ".join(sorted(self.roster_sources)) or "none"
            raise UnknownSourceError(
                f"No plugin provides a roster source named {name!r} (available: {known})."
            ) from None

    def license_source(self, name: str) -> LicenseSource:
        try:
            return self.license_sources[name]
        except KeyError:
            known = ", ".join(sorted(self.license_sources)) or "none"
            raise UnknownSourceError(
                f"No plugin provides a license source named {name!r} (available: {known})."
            ) from None

    async def notify_alert(
        self, event: str, alert: AlertNotice, district: DistrictRef
    ) -> list[str]:
        """Call every plugin's ``alert_raised`` or ``alert_resolved`` hook (``event``) for one
        alert, with keyword arguments; return the names of the plugins that failed.

        Each implementation is called on its own, in pluggy's order, so one that raises or takes
        longer than ``NOTIFY_TIMEOUT_SECONDS`` is logged and does not stop the others. A coroutine
        function is awaited; a plain function runs in a worker thread, and an awaitable it
        returns is awaited too. Hook wrappers are not called.
        """
        if event not in ALERT_EVENTS:
            raise ValueError(f"{event!r} is not a notification hook ({', '.join(ALERT_EVENTS)})")
        arguments = {
            "alert": alert,
            "district": district,
            "host": self.host,
            "settings": self.settings,
        }
        failed: list[str] = []
        # pluggy calls the last registered implementation first: built-ins come last.
        for impl in reversed(getattr(self.pm.hook, event).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            call = partial(impl.function, **{name: arguments[name] for name in impl.argnames})
            try:
                with anyio.fail_after(NOTIFY_TIMEOUT_SECONDS):
                    if inspect.iscoroutinefunction(impl.function):
                        result = call()
                    else:
                        result = await to_thread.run_sync(call, abandon_on_cancel=True)
                    if inspect.isawaitable(result):
                        await result
            except Exception:
                logger.exception(
                    "Plugin %r failed in %s for alert %s of district %r.",
                    impl.plugin_name,
                    event,
                    getattr(alert, "id", None),
                    getattr(district, "slug", None),
                )
                failed.append(impl.plugin_name)
        return failed


def source_options(
    source: RosterSource | LicenseSource,
    options: SourceOptions | Mapping[str, Any] | None,
    *,
    district_slug: str | None = None,
) -> Any:
    """``options`` as ``source`` takes them: an instance of its ``options_model`` (SourceError
    listing each problem when they do not validate), or a plain dict for a source written
    before options models existed (it has no ``options_model``)."""
    model = getattr(source, "options_model", None)
    if isinstance(model, type) and issubclass(model, SourceOptions):
        return model.parse(options, district_slug=district_slug)
    if isinstance(options, SourceOptions):
        return options.model_dump()
    return dict(options or {})


def _by_name(results: list[list[Source] | None]) -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for listed in results:
        for source in listed or ():
            # pluggy calls later-registered plugins first and built-ins last: first name wins.
            sources.setdefault(source.name, source)
    return sources
