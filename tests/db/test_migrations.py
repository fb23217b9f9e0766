"""Migrations build the schema the models describe, and upgrading keeps existing rows."""

from sqlalchemy import inspect, text

from db.migrate import current_revision, head_revision, pending_model_changes, upgrade
from db.session import Database


def test_migrations_match_the_models(new_database_url):
    database = Database(new_database_url("fresh"))
    assert current_revision(database) is None
    upgrade(database)

    assert current_revision(database) == head_revision(database)
    assert pending_model_changes(database) == [], "models changed without a migration"
    database.dispose()


def test_a_migrated_test_database_is_at_the_newest_revision_and_matches_the_models(
    new_database_url,
):
    """The copies tests get of the session's template are what the migrations build today."""
    database = Database(new_database_url("copy", migrated=True))

    assert current_revision(database) == head_revision(database)
    assert pending_model_changes(database) == []
    database.dispose()


def test_upgrade_is_repeatable_and_keeps_rows(new_database_url):
    database = Database(new_database_url("kept"))
    upgrade(database)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO district (slug, official_name, time_zone, created_at) "
                "VALUES ('kept', 'Kept District', 'UTC', '2026-01-01 00:00:00')"
            )
        )

    upgrade(database)

    with database.engine.connect() as connection:
        slugs = connection.execute(text("SELECT slug FROM district")).scalars().all()
    assert slugs == ["kept"]
    assert "roster_record" in inspect(database.engine).get_table_names()
    database.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
