"""The command line reports values a roster cannot hold by file, line and column, and never
prints the database's own text (its SQL and the rows it was given)."""

from __future__ import annotations

import sys

import pytest
from sqlmodel import select

from app.cli import main
from db.models import District
from licensing.storage.roster import current_usage
from tests.cli.test_sync_command import configure
from tests.utils.cli import run
from tests.utils.databases import refuse_inserts

NEIGHBOUR_ID, NEIGHBOUR_NAME = "P-neighbour", "Wilhelmina"


def assert_safe(text: str) -> None:
    for word in ("INSERT", "SELECT", "roster_staging", "roster_record", "[parameters"):
        assert word not in text
    assert NEIGHBOUR_ID not in text and NEIGHBOUR_NAME not in text


def demo_used(service) -> int:
    with service.database.read() as session:
        district = session.exec(select(District).where(District.slug == "demo")).one()
        return current_usage(session, district_id=district.id).active_students


def test_roster_import_names_the_line_and_column_of_each_value_that_does_not_fit(tmp_path, built):
    run("demo")
    before = demo_used(built)
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "id,given_name,family_name,grade\n"
        f"{NEIGHBOUR_ID},{NEIGHBOUR_NAME},Okafor,7\n"
        f"P2,{'N' * 201},Silva,7\n"
        "P3,Ana,Nul\x00l,7\n"
        "P4,Ana,Silva,kindergarten-and-more\n",
        encoding="utf-8",
    )

    result = run("roster", "import", str(roster), "--district", "demo", expect=1)

    assert f"{roster}: 3 bad row(s), nothing imported" in result.stderr
    assert "line 3, column given_name: 201 characters" in result.stderr
    assert "line 4, column family_name: holds a NUL character" in result.stderr
    assert "line 5, column grade: 21 characters" in result.stderr
    assert_safe(result.stderr)
    assert demo_used(built) == before


def test_a_database_error_during_a_command_prints_only_a_coded_message(
    tmp_path, built, monkeypatch, capsys
):
    run("demo")
    roster = configure(tmp_path, 3)
    roster.write_text(f"id,given_name\n{NEIGHBOUR_ID},{NEIGHBOUR_NAME}\nP2,Ana\n")
    # The database refuses the staged rows, and then the failure's own audit entry: the error
    # leaves the sync and reaches the command as it is.
    refuse_inserts(built.database, "roster_staging")
    refuse_inserts(built.database, "audit_event")
    monkeypatch.setattr(sys, "argv", ["licensing", "sync", "--district", "demo", "--source", "sis"])

    with pytest.raises(SystemExit) as exited:
        main()

    assert exited.value.code == 1
    printed = capsys.readouterr()
    assert "INTERNAL_ERROR" in printed.err
    assert_safe(printed.out + printed.err)
