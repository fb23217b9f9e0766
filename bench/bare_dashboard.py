"""The yardstick for the dashboard benchmark: a hand-written Starlette JSON endpoint.

    uvicorn bench.bare_dashboard:create_app --factory

It serves the same numbers as the dashboard query (license, usage and alerts of the caller's
district) from the same database, the way one would write it without GraphQL: the bearer token
checked against the stored hashes, three SQL statements on one connection, the pure rules of
``licensing.domain.rules`` for the derived figures, and one JSON response. It reads the same settings as
the service (``LICENSING_*``, ``licensing.toml``) to find the database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from db.session import Database
from licensing.domain import rules
from licensing.settings import load_settings
from licensing.storage.tokens import hash_token

CALLER = text(
    "SELECT api_token.district_id FROM api_token "
    "WHERE api_token.token_hash = :token_hash AND api_token.revoked_at IS NULL"
)
DISTRICT = text(
    "SELECT district.time_zone, license.licensed_to, license.total, license.created_on, "
    "license.expires_on, license.deactivated, license.overage_allowance, "
    "license_settings.students_remaining_threshold, license_sync_state.failing_since, "
    "district_usage.active_students, district_usage.inactive_students, district_usage.staff, "
    "district_usage.devices "
    "FROM district "
    "JOIN license ON license.district_id = district.id "
    "LEFT JOIN license_settings ON license_settings.district_id = district.id "
    "LEFT JOIN license_sync_state ON license_sync_state.district_id = district.id "
    "LEFT JOIN district_usage ON district_usage.district_id = district.id "
    "WHERE district.id = :district_id"
)
OPEN_ALERTS = text(
    "SELECT kind, severity, message, placements FROM alert "
    "WHERE district_id = :district_id AND resolved_at IS NULL ORDER BY id"
)


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def dashboard_numbers(connection: Connection, secret: str) -> dict[str, Any] | None:
    """The caller's license, usage and alerts, or None for an unknown token."""
    district_id = connection.execute(CALLER, {"token_hash": hash_token(secret)}).scalar()
    if district_id is None:
        return None
    row = connection.execute(DISTRICT, {"district_id": district_id}).mappings().one()
    now = datetime.now(UTC)
    used, total = row["active_students"] or 0, row["total"]
    threshold = row["students_remaining_threshold"] or rules.DEFAULT_THRESHOLD
    expires_on = _date(row["expires_on"])
    status = rules.license_status(
        deactivated=bool(row["deactivated"]),
        expires_on=expires_on,
        now=now,
        time_zone=row["time_zone"],
    )
    alerts = connection.execute(OPEN_ALERTS, {"district_id": district_id}).all()
    return {
        "license": {
            "status": status.name,
            "licensedTo": row["licensed_to"],
            "used": used,
            "total": total,
            "remaining": rules.remaining_licenses(used, total),
            "display": rules.usage_display(used, total),
            "level": rules.usage_level(used, total, threshold).name,
            "accessLevel": rules.access_level(
                status=status,
                used=used,
                total=total,
                overage_allowance=row["overage_allowance"],
            ).name,
            "expiresAt": expires_on.isoformat(),
            "daysUntilExpiration": rules.days_until_expiration(
                expires_on=expires_on, now=now, time_zone=row["time_zone"]
            ),
            "stale": row["failing_since"] is not None,
        },
        "usage": {
            "activeStudents": used,
            "inactiveStudents": row["inactive_students"] or 0,
            "staff": row["staff"] or 0,
            "devices": row["devices"] or 0,
        },
        "alerts": [
            {
                "kind": alert.kind,
                "severity": alert.severity,
                "message": alert.message,
                "placements": alert.placements.split(","),
            }
            for alert in alerts
        ],
    }


def create_app() -> Starlette:
    # The service's own engine settings (SQLite in WAL mode, the same pool), so only the code
    # between the socket and the database differs.
    engine = Database(load_settings().effective_database_url).engine

    def read(secret: str) -> dict[str, Any] | None:
        with engine.connect() as connection:
            return dashboard_numbers(connection, secret)

    async def dashboard(request: Request) -> JSONResponse:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        numbers = await run_in_threadpool(read, secret.strip()) if scheme == "Bearer" else None
        if numbers is None:
            return JSONResponse({"error": "unauthenticated"}, status_code=401)
        return JSONResponse({"data": numbers})

    return Starlette(routes=[Route("/dashboard", dashboard, methods=["GET", "POST"])])
