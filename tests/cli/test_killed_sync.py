"""A `licensing sync` killed with SIGKILL while it stages: the next sync finds it, marks it failed,
removes its staged records, and syncs as usual; the counts still equal a recount."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from app.runtime import build_service
from db.models import District, RosterStaging, RosterSyncRun
from licensing.orchestration.sync import BATCH_SIZE
from licensing.settings import load_settings
from licensing.storage.roster import current_usage
from tests.fakes.oneroster_server import FakeOneRoster, numbered_students
from tests.fakes.serve import serve
from tests.utils.cli import run
from tests.utils.clock import FakeClock
from tests.utils.server_process import start_licensing, stop_process_group

STAGING_TIMEOUT_SECONDS = 60.0


def configure(tmp_path: Path, url: str, fake: FakeOneRoster) -> Path:
    config = tmp_path / "licensing.toml"
    config.write_text(
        "[districts.demo.roster_sources.sis]\n"
        'kind = "oneroster_rest"\n'
        f"options = {{ base_url = {json.dumps(url)}, client_id = {json.dumps(fake.client_id)}, "
        f"client_secret = {json.dumps(fake.client_secret)}, page_size = 1000 }}\n"
    )
    return config


def sis_runs(service) -> list[RosterSyncRun]:
    with service.database.read() as session:
        return session.exec(select(RosterSyncRun).where(RosterSyncRun.source == "sis")).all()


def staged(service) -> int:
    with service.database.read() as session:
        return session.exec(select(func.count()).select_from(RosterStaging)).one()


def test_a_sync_killed_while_staging_is_failed_and_cleaned_up_by_the_next(tmp_path, monkeypatch):
    run("demo")
    fake = FakeOneRoster(students=numbered_students(BATCH_SIZE + 1500), teachers=[])
    # The source reads a page ahead: the first batch is staged, then the source hangs.
    fake.stall_from_offset = BATCH_SIZE + 1000
    with serve(fake.app) as url:
        monkeypatch.setenv("LICENSING_CONFIG", str(configure(tmp_path, url, fake)))
        clock = FakeClock(datetime.now(UTC))
        service = build_service(load_settings(), clock=clock)
        process = start_licensing(
            ["sync", "--district", "demo", "--source", "sis"],
            env=os.environ,
            log_path=tmp_path / "sync.log",
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + STAGING_TIMEOUT_SECONDS
            while staged(service) == 0:
                assert process.poll() is None, (tmp_path / "sync.log").read_text()
                assert time.monotonic() < deadline, "the sync never staged its first batch"
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        finally:
            stop_process_group(process)
        [killed] = sis_runs(service)
        assert killed.status == "running"
        assert staged(service) >= BATCH_SIZE - 1  # a batch, less the server's count it held

        fake.stall_from_offset = None
        clock.set(datetime.now(UTC))  # the killed process kept the real time
        clock.advance(seconds=service.settings.roster_sync_stale_after_seconds + 1)
        with service.database.read() as session:
            demo = session.exec(select(District).where(District.slug == "demo")).one()
            used_before = current_usage(session, district_id=demo.id).active_students
        outcome = asyncio.run(
            service.roster_sync.sync(district_id=demo.id, source="sis", actor="test")
        )

    assert outcome.status == "applied"
    runs = {row.id: row for row in sis_runs(service)}
    assert runs[killed.id].status == "failed"
    assert "stopped without finishing" in runs[killed.id].error
    assert staged(service) == 0
    with service.database.read() as session:
        used_after = current_usage(session, district_id=demo.id).active_students
    assert used_after == used_before + BATCH_SIZE + 1500
    service.database.dispose()
    assert "Counts agree with a recount" in run("db", "check").stderr
