"""Builds the one service object of a process from the settings."""

from __future__ import annotations

from db.migrate import upgrade
from db.session import Database
from licensing.service import LicensingService
from licensing.settings import Settings
from plugins.manager import PluginManager


def build_service(settings: Settings, *, upgrade_schema: bool = False) -> LicensingService:
    database = Database(settings.effective_database_url)
    if upgrade_schema:
        upgrade(database)
    return LicensingService(settings=settings, database=database, plugins=PluginManager(settings))
