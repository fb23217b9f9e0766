"""Builds the one service object of a process from the settings."""

from __future__ import annotations

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
