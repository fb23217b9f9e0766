"""Manage1to1 licensing: the Licensing tab's behaviour, free of transport (``graph/``, ``app/``).

Three layers, each importing only the ones before it:

- ``licensing.domain``: the rules and the forecast as pure functions over plain data, with the
  error codes. No database, no clock, no network.
- ``licensing.storage``: the domain's reads and writes through ``db/`` — rosters, roster changes,
  licenses, thresholds, tokens, sessions, the audit and change logs, reports.
- ``licensing.orchestration``: what ties them together over time — the service the API calls,
  syncs, license updates, notifications and webhooks, the scheduler and its jobs, the plugin host.

``licensing.settings`` (the one settings object), ``licensing.problems`` (what a user is told
when something fails) and ``licensing.metrics`` serve all three.
"""
