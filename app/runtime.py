"""Builds the one service object of a process from the settings, and sets up a server process."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import datetime

from db.migrate import upgrade
from db.session import Database
from licensing.domain.clock import utc_now
from licensing.orchestration.plugin_host import load_plugins
from licensing.orchestration.service import LicensingService
from licensing.settings import Settings
from plugins.manager import PluginManager


def build_service(
    settings: Settings,
    *,
    upgrade_schema: bool = False,
    clock: Callable[[], datetime] = utc_now,
    plugins: PluginManager | None = None,
) -> LicensingService:
    database = Database(settings.effective_database_url)
    if upgrade_schema:
        upgrade(database)
    return LicensingService(
        settings=settings,
        database=database,
        plugins=plugins or load_plugins(settings, clock=clock),
        clock=clock,
    )


# Python's garbage collector: young objects checked every 50,000 allocations (700 by default),
# the full collection considered after 100 of the middle generation's (10). A full collection
# scans every object the process holds: in a worker holding 10,000 live subscriptions, about a
# million, and `bench/live.py` timed 18 of them in one run at up to 1.5 s each (9.2 s in all),
# every live update in flight waiting meanwhile. With these thresholds the same run had none,
# at the same memory (docs/benchmarks.md). Garbage in reference cycles, most of it short-lived,
# is still collected by the young collections.
SERVER_GC_THRESHOLDS = (50_000, 20, 100)


def set_up_server_process() -> None:
    """What a process serving requests sets before it serves: the garbage collector's thresholds."""
    gc.set_threshold(*SERVER_GC_THRESHOLDS)
