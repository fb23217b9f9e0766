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
from db.models import Alert, AuditEvent, ChangeEvent, RosterSyncRun
from db.session import Database, lock_district, stored_id
from licensing.domain.error_codes import ErrorCode
from licensing.domain.rules import AlertKind, AlertPlacement, AlertSeverity, AlertSpec
from licensing.orchestration.service import ForcedUpdate, LicensingService
from licensing.problems import Problem
from licensing.storage.alert_state import reconcile_alerts
from licensing.storage.district_version import district_changed
from licensing.storage.roster_changes import fail_run, start_run
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


def waiting_for_a_lock(database: Database) -> bool:
    """Whether some transaction waits for a lock it has not been granted."""
    with database.engine.connect() as connection:
        return bool(
            connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
        )


def test_a_failing_sync_and_a_threshold_change_take_the_district_in_the_same_order(service):
    """A sync that fails raises the district's version (its audit entry) and brings the alerts in
    line (which takes the district's lock); a threshold change takes the lock, then raises the
    version. Both take the lock first, so neither waits for the other while holding what the
    other needs: PostgreSQL found a deadlock, and the threshold change answered an internal
    error, when the failing sync raised the version first."""
    skip_unless_postgres()
    district_id = create_district(service, slug="racing")
    now = service.clock()
    with service.database.write() as session:
        run_id = stored_id(
            start_run(
                session, district_id=district_id, source="sis", kind="csv", actor="test", now=now
            )
        )
    failure: list[BaseException] = []

    def fail_the_sync() -> None:
        try:
            with service.database.write() as session:
                fail_run(
                    session,
                    run_id=run_id,
                    problem=Problem(ErrorCode.INVALID_ARGUMENT, "The source stopped answering."),
                    records=0,
                    actor="test",
                    now=now,
                    alerts=service.alert_policy,
                )
        except BaseException as error:  # reported by the test below, not by the thread
            failure.append(error)

    with service.database.write() as session:
        session.execute(text("SET LOCAL deadlock_timeout = '100ms'"))
        lock_district(session, district_id)  # as a threshold change does first
        failing = threading.Thread(target=fail_the_sync)
        failing.start()
        for _ in range(100):  # until the failing sync waits on the lock
            if waiting_for_a_lock(service.database):
                break
            threading.Event().wait(0.05)
        district_changed(session, district_id)  # then the threshold change's audit entry
    failing.join(10)

    assert failure == []
    with service.database.read() as session:
        assert session.get(RosterSyncRun, run_id).status == "failed"
