"""Alembic environment: runs against the connection handed in by db.migrate, or a URL."""

from alembic import context
from sqlalchemy import create_engine

from db.migrate import declared_in_models
from db.models import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("No database to migrate: set sqlalchemy.url or pass a connection.")
    engine = create_engine(url)
    with engine.connect() as fresh_connection:
        _run(fresh_connection)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        include_object=declared_in_models,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported; run `licensing db upgrade`.")
run_migrations_online()
