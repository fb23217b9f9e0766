"""Write sections that read, then write on what they read, take turns per district.

SQLite's write transactions are exclusive (BEGIN IMMEDIATE); PostgreSQL's run side by side, so those
sections take ``lock_district`` first. These tests run on whichever database the suite runs on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import event, func, text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from app.runtime import build_service
from db.models import Alert, AuditEvent, ChangeEvent
from db.session import Database, lock_district
from licensing.domain.rules import AlertKind, AlertPlacement, AlertSeverity, AlertSpec
from licensing.orchestration.service import ForcedUpdate, LicensingService
from licensing.storage.alert_state import reconcile_alerts
from licensing.storage.tokens import Permission
from tests.utils.databases import skip_unless_postgres
from tests.utils.districts import create_district, token_for

# Threads (or workers) released together; the engine's pool size, so that no racer waits for a
# new connection.
RACERS = 5


def race(database: Database, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in RACERS threads released together; their results."""
    connections = [database.engine.connect() for _ in range(RACERS)]
    for connection in connections:  # now in the pool, ready for the racers
        connection.close()
    start = threading.Barrier(RACERS)

    def run() -> Any:
        start.wait()
        return work()

    with ThreadPoolExecutor(RACERS) as pool:
        futures = [pool.submit(run) for _ in range(RACERS)]
        return [future.result() for future in futures]


def press_together(workers: list[LicensingService], token: str) -> list[ForcedUpdate]:
    """Each worker presses Force License Update once, all released together: one thread and
    event loop each, as the processes of `licensing serve --workers N` have."""
    start = threading.Barrier(len(workers))

    async def press(worker: LicensingService) -> ForcedUpdate:
        principal = await worker.authenticate(token)  # its connection is now in its pool
        assert principal is not None
        start.wait()
        return await worker.force_license_update(principal)

    with ThreadPoolExecutor(len(workers)) as pool:
        return list(pool.map(lambda worker: asyncio.run(press(worker)), workers))


def test_one_forced_update_per_cooldown_however_many_workers_press_at_once(service, clock, issuer):
    # Presses within one worker share its request; across workers only the database decides.
    district_id = create_district(service, slug="raced")
    issuer.write("raced", seats=1200)
    token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
    others = [build_service(service.settings, clock=clock) for _ in range(RACERS - 1)]
    try:
        outcomes = [forced.outcome for forced in press_together([service, *others], token)]
    finally:
        for worker in others:
            worker.database.dispose()

    [asked] = [outcome for outcome in outcomes if not outcome.throttled]
    assert asked.updated and asked.problem is None
    cooldown = service.settings.force_update_cooldown_seconds
    waits = [outcome.retry_after_seconds for outcome in outcomes if outcome.throttled]
    assert len(waits) == RACERS - 1
    assert all(wait is not None and 0 < wait <= cooldown for wait in waits), waits
    with service.database.read() as session:
        pressed = session.exec(
            select(AuditEvent.outcome).where(
                AuditEvent.district_id == district_id,
                AuditEvent.action == "force_license_update",
            )
        ).all()
    assert sorted(pressed) == ["throttled"] * (RACERS - 1) + ["updated"]


def test_concurrent_reconciliations_raise_an_alert_once(service):
    district_id = create_district(service, slug="alerted")
    low = AlertSpec(
        kind=AlertKind.LICENSES_LOW,
        severity=AlertSeverity.WARNING,
        message="Few licenses left.",
        placements=(AlertPlacement.DASHBOARD,),
    )

    def reconcile() -> int:
        with service.database.write() as session:
            opened = reconcile_alerts(
                session, district_id=district_id, current=[low], now=service.clock()
            )
        return len(opened)

    assert race(service.database, reconcile) == [1] * RACERS
    with service.database.read() as session:
        alerts = session.exec(select(Alert).where(Alert.district_id == district_id)).all()
        raised = session.exec(
            select(func.count())
            .select_from(ChangeEvent)
            .where(ChangeEvent.district_id == district_id, ChangeEvent.topic == "alert_raised")
        ).one()
    assert [alert.kind for alert in alerts] == ["LICENSES_LOW"]
    assert raised == 1


def test_lock_district_excludes_the_same_district_only(new_database_url):
    skip_unless_postgres()
    database = Database(new_database_url("locks"))
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with database.write() as session:
            lock_district(session, 7)
            lock_district(session, 7)  # re-entrant within a transaction
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(OperationalError, match="lock timeout"), database.write() as session:
            session.execute(text("SET LOCAL lock_timeout = '200ms'"))
            lock_district(session, 7)
        with database.write() as session:
            session.execute(text("SET LOCAL lock_timeout = '200ms'"))
            lock_district(session, 8)
    finally:
        release.set()
        thread.join()

    # Released at commit: the next transaction takes it at once.
    with database.write() as session:
        session.execute(text("SET LOCAL lock_timeout = '200ms'"))
        lock_district(session, 7)
    database.dispose()


def test_lock_district_sends_nothing_to_sqlite(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with database.write() as session:
        session.execute(text("SELECT 1"))
        lock_district(session, 1)
    database.dispose()

    assert statements == ["BEGIN IMMEDIATE", "SELECT 1"]
