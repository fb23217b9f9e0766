"""What the domain did, counted for Prometheus (the app serves the counters at ``/metrics``).

Labels come from small fixed vocabularies: outcomes, action names and plugin names. Never a
district's name, slug or id: ``/metrics`` needs no token, and a series per district would grow
with every tenant.

``licensing serve --workers N`` runs prometheus_client in multiprocess mode (see docs/deploy.md):
counters are summed over the workers. A gauge added here must choose its ``multiprocess_mode``.
"""

from __future__ import annotations

from prometheus_client import Counter

ROSTER_SYNCS = Counter(
    "licensing_roster_syncs",
    "Roster syncs finished, by outcome (applied, held, failed, unchanged) and roster source plugin.",
    ["outcome", "plugin"],
)
LICENSE_REFRESHES = Counter(
    "licensing_license_refreshes",
    "License refreshes, by outcome (updated, unchanged, throttled, failed) and action "
    "(force_license_update: the Force License Update button; license_refresh: scheduled or "
    "from the command line).",
    ["outcome", "action"],
)


def count_roster_sync(*, outcome: str, plugin: str) -> None:
    """A roster sync ended: ``outcome`` is the sync run's status (applied, held, failed or unchanged)."""
    ROSTER_SYNCS.labels(outcome=outcome, plugin=plugin).inc()


def count_license_refresh(*, outcome: str, action: str) -> None:
    """A license refresh ended: updated, unchanged, throttled or failed (the license is stale)."""
    LICENSE_REFRESHES.labels(outcome=outcome, action=action).inc()
