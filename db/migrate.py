"""Schema migrations, run from code: `licensing db upgrade`, and by `serve` and `demo` at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from db.models import INDEXES_OUTSIDE_MODELS, metadata
from db.session import DISTRICT_LOCK_NAMESPACE, Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0  # district ids start at 1, so this key is the migrations' alone


def alembic_config(database: Database) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option(
        "sqlalchemy.url", database.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def upgrade(database: Database) -> None:
    """Bring the database to the newest schema; existing rows are kept.

    Every process upgrades at start; on PostgreSQL an advisory lock makes simultaneous starts
    (several hosts, ``serve`` beside ``worker``) take turns, so the later ones find nothing to do.
    """
    config = alembic_config(database)
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                {"namespace": DISTRICT_LOCK_NAMESPACE, "key": MIGRATION_LOCK_KEY},
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(database: Database) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database)).get_current_head()


def pending_model_changes(database: Database) -> list[object]:
    """Differences between the models and the migrated schema; empty when they agree."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "render_as_batch": True,
                "include_object": declared_in_models,
            },
        )
        return list(compare_metadata(context, metadata))


def declared_in_models(
    item: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Whether a schema item is compared with the models: all but the indexes the migrations
    alone make (``db.models.INDEXES_OUTSIDE_MODELS``)."""
    return not (type_ == "index" and name in INDEXES_OUTSIDE_MODELS)
