"""Migration 0014 gives API tokens an expiry; tokens created before it never expire."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from db.migrate import alembic_config, upgrade
from db.session import Database
from licensing.storage.tokens import authenticate, hash_token

SECRET = "m1t1_" + "a" * 43


def test_a_token_from_before_expiry_existed_keeps_working_and_never_expires(new_database_url):
    database = Database(new_database_url("before-expiry"))
    config = alembic_config(database)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0013")
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO district (slug, official_name, time_zone, created_at) "
                "VALUES ('kept', 'Kept District', 'UTC', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_token (district_id, name, token_hash, token_prefix, "
                "permissions, created_at) VALUES (1, 'old', :hash, 'm1t1_aaaaaa', "
                "'VIEW_LICENSE', '2026-01-01 00:00:00')"
            ),
            {"hash": hash_token(SECRET)},
        )

    upgrade(database)

    far_future = datetime(2100, 1, 1, tzinfo=UTC)
    with database.engine.connect() as connection:
        principal = authenticate(connection, secret=SECRET, now=far_future)
    assert principal is not None
    assert principal.district_slug == "kept"
    assert principal.expires_at is None
    database.dispose()
