"""Every hook a plugin can implement. Each docstring says what it receives, returns and when it runs.

Hooks are always called with keyword arguments, so an implementation may accept only the
arguments it needs, and a hook can gain an argument without breaking existing plugins. Every hook
receives ``host``, the ``PluginHost`` (the service's settings, clock, HTTP client factory and
record checks), and ``settings`` (the same as ``host.settings``, kept for plugins written before
the host existed).

The sources a plugin registers are described by the ``RosterSource`` and ``LicenseSource``
protocols (``plugins.sources``), each with its ``options_model``; plugin authors import all of it
from ``manage1to1_plugins``.
"""

from __future__ import annotations

from collections.abc import Awaitable

import pluggy

from plugins.host import HostSettings, PluginHost
from plugins.records import AlertNotice, DistrictRef
from plugins.sources import LicenseSource, RosterSource

PROJECT_NAME = "licensing"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_roster_sources(host: PluginHost, settings: HostSettings) -> list[RosterSource]:
    """Return a list of roster sources this plugin provides.

    Receives ``host``, the ``PluginHost``, and ``settings``, the service's settings. Called once,
    when the plugin manager first lists the roster sources. When two plugins offer a source of the same name, the one called first wins:
    built-in plugins are called last, so a third-party plugin can replace a built-in source.
    """
    raise NotImplementedError  # a hookspec: pluggy reads only its signature and docstring


@hookspec
def register_license_sources(host: PluginHost, settings: HostSettings) -> list[LicenseSource]:
    """Return a list of license sources this plugin provides.

    Receives ``host``, the ``PluginHost``, and ``settings``, the service's settings. Called once,
    when the plugin manager first lists the license sources. Names resolve as for ``register_roster_sources``.
    """
    raise NotImplementedError  # a hookspec: pluggy reads only its signature and docstring


@hookspec
def alert_raised(
    alert: AlertNotice, district: DistrictRef, host: PluginHost, settings: HostSettings
) -> Awaitable[None] | None:
    """Learn that an alert was raised for a district.

    Receives ``alert``, an ``AlertNotice`` (the alert as stored now; ``alert.event`` is
    ``"alert_raised"``), ``district``, a ``DistrictRef``, ``host``, the ``PluginHost``, and the
    service's ``settings``.

    Called once per raise, after the transaction that raised the alert is committed, by the
    scheduler's notification step (``licensing.orchestration.notifications.dispatch_alert_changes``), so a few
    seconds later and possibly from another worker than the one that raised it. Delivery is at
    least once: a crash between the call and the step recording its progress repeats the call, so
    make the effect idempotent with ``alert.idempotency_key`` (``f"alert_raised:{alert.id}"``).

    Return value is ignored; an implementation may return an awaitable (an ``async def`` hook),
    which the host awaits. A plain function runs in a worker thread. An exception is logged and
    does not stop the other plugins, nor is the call repeated for it: a plugin that must not miss
    a notification persists it before returning and retries on its own.
    """


@hookspec
def alert_resolved(
    alert: AlertNotice, district: DistrictRef, host: PluginHost, settings: HostSettings
) -> Awaitable[None] | None:
    """Learn that an alert of a district was resolved (its condition cleared).

    Receives ``alert``, an ``AlertNotice`` with ``resolved_at`` set (``alert.event`` is
    ``"alert_resolved"``), ``district``, a ``DistrictRef``, ``host``, the ``PluginHost``, and the
    service's ``settings``.

    Called once per resolution, after it is committed, at least once, from the scheduler's
    notification step, exactly as ``alert_raised``; de-duplicate with ``alert.idempotency_key``
    (``f"alert_resolved:{alert.id}"``). Return value is ignored; an awaitable is awaited.
    """
