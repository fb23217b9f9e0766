"""`licensing sync` for roster sources, and `licensing sync confirm` for a held sync."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlmodel import select

from db.models import District
from licensing.storage.roster import current_usage
from tests.utils.cli import run


def configure(tmp_path: Path, people: int) -> Path:
    """A local roster file served through the configured source `sis` of the demo district."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,role,status\n" + "".join(f"P{n},student,active\n" for n in range(people)))
    config = tmp_path / "licensing.toml"
    config.write_text(
        "[districts.demo.roster_sources.sis]\n"
        'kind = "local"\n'
        f"options = {{ path = {json.dumps(str(roster))} }}\n"
    )
    return roster


def used_in_demo(service) -> int:
    with service.database.read() as session:
        demo = session.exec(select(District).where(District.slug == "demo")).one()
        return current_usage(session, district_id=demo.id).active_students


def test_sync_of_one_source_reports_records_and_exclusions(tmp_path):
    run("demo")
    configure(tmp_path, 40)

    result = run("sync", "--district", "demo", "--source", "sis")

    assert "demo: sis: 40 records, 40 active students" in result.stderr
    assert "excluded: staff 0" in result.stderr


def test_a_large_drop_is_held_and_confirm_applies_it(tmp_path):
    run("demo")
    configure(tmp_path, 40)
    run("sync", "--district", "demo", "--source", "sis")
    configure(tmp_path, 10)

    held = run("sync", "--district", "demo", "--source", "sis", expect=1)
    assert "held" in held.stderr
    assert "30 of the 40" in held.stderr

    confirmed = run("sync", "confirm", "--district", "demo", "--source", "sis")
    assert "10 active students" in confirmed.stderr

    nothing = run("sync", "confirm", "--district", "demo", "--source", "sis", expect=1)
    assert "No sync of 'sis' is waiting" in nothing.stderr


def test_an_unknown_source_is_named(tmp_path):
    run("demo")
    configure(tmp_path, 1)

    result = run("sync", "--district", "demo", "--source", "nope", expect=1)

    assert "has no roster source 'nope' (configured: sis)" in result.stderr


def test_confirm_refuses_a_held_sync_that_a_newer_sync_superseded(tmp_path, built):
    run("demo")
    configure(tmp_path, 40)
    run("sync", "--district", "demo", "--source", "sis")
    configure(tmp_path, 10)
    held = run("sync", "--district", "demo", "--source", "sis", expect=1)
    held_run = re.search(r"--run (\d+)", held.stderr).group(1)
    configure(tmp_path, 35)
    run("sync", "--district", "demo", "--source", "sis")
    used = used_in_demo(built)

    refused = run(
        "sync", "confirm", "--district", "demo", "--source", "sis", "--run", held_run, expect=1
    )
    unknown = run(
        "sync", "confirm", "--district", "demo", "--source", "sis", "--run", "999", expect=1
    )

    assert f"Sync run {held_run} of 'sis' was superseded by a newer sync" in refused.stderr
    assert "There is no sync run 999 of 'sis'" in unknown.stderr
    assert used_in_demo(built) == used  # the newer sync's 35 stay in force
