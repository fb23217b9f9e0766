"""Every hook a plugin can implement. Each docstring says what it receives, returns and when it runs.

Hooks are always called with keyword arguments, so an implementation may accept only the
arguments it needs, and a hook can gain an argument without breaking existing plugins.

A roster source is an object with:

- ``name: str``: the name that picks it, e.g. ``licensing roster import FILE --source NAME``;
- ``description: str``: one line for administrators;
- ``fetch_students(*, district, options)``: returns an iterable (or async iterable) of
  ``StudentRecord`` or mappings with the same keys, for ``district`` (a ``DistrictRef``), with the
  source's ``options`` (a mapping; ``roster import`` passes ``{"path": FILE}``). It raises
  ``SourceError`` with a message for the administrator when it cannot deliver; the host then keeps
  the previous roster untouched.

A license source is an object with:

- ``name: str``: the name that picks it, as ``license_source`` in a district's configuration;
- ``description: str``: one line for administrators;
- ``fetch_license(*, district, options)``: returns a ``SignedLicense`` (or an awaitable of one)
  for ``district``, or raises ``SourceError``. ``options`` is the district's ``license_options``
  mapping from the configuration (a licensing server's ``url`` and ``api_key``, say); a source
  written as ``fetch_license(*, district)`` is called without it. The host verifies the signature,
  the district and, when the source sets ``SignedLicense.max_age``, the answer's freshness itself;
  a source never decides whether a license is valid.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "licensing"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_roster_sources(settings: Any) -> list[Any]:
    """Return a list of roster sources this plugin provides.

    Receives the service's settings object. Called once, when the plugin manager first lists the
    roster sources. When two plugins offer a source of the same name, the one called first wins:
    built-in plugins are called last, so a third-party plugin can replace a built-in source.
    """


@hookspec
def register_license_sources(settings: Any) -> list[Any]:
    """Return a list of license sources this plugin provides.

    Receives the service's settings object. Called once, when the plugin manager first lists the
    license sources. Names resolve as for ``register_roster_sources``.
    """


@hookspec
def alert_raised(alert: Any, district: Any, settings: Any) -> Any:
    """Learn that an alert was raised for a district.

    Receives ``alert``, an ``AlertNotice`` (the alert as stored now; ``alert.event`` is
    ``"alert_raised"``), ``district``, a ``DistrictRef``, and the service's ``settings``.

    Called once per raise, after the transaction that raised the alert is committed, by the
    scheduler's notification step (``licensing.notifications.dispatch_alert_changes``), so a few
    seconds later and possibly from another worker than the one that raised it. Delivery is at
    least once: a crash between the call and the step recording its progress repeats the call, so
    make the effect idempotent with ``alert.idempotency_key`` (``f"alert_raised:{alert.id}"``).

    Return value is ignored; an implementation may return an awaitable (an ``async def`` hook),
    which the host awaits. A plain function runs in a worker thread. An exception is logged and
    does not stop the other plugins, nor is the call repeated for it: a plugin that must not miss
    a notification persists it before returning and retries on its own.
    """


@hookspec
def alert_resolved(alert: Any, district: Any, settings: Any) -> Any:
    """Learn that an alert of a district was resolved (its condition cleared).

    Receives ``alert``, an ``AlertNotice`` with ``resolved_at`` set (``alert.event`` is
    ``"alert_resolved"``), ``district``, a ``DistrictRef``, and the service's ``settings``.

    Called once per resolution, after it is committed, at least once, from the scheduler's
    notification step, exactly as ``alert_raised``; de-duplicate with ``alert.idempotency_key``
    (``f"alert_resolved:{alert.id}"``). Return value is ignored; an awaitable is awaited.
    """
