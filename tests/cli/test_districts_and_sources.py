"""Creating districts, and importing through a named roster source, from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from db.models import District
from licensing.storage.roster import current_usage
from manage1to1_plugins import StudentRecord, hookimpl
from tests.utils.cli import run
from tests.utils.entry_points import install_plugin


def test_district_create_uses_the_default_time_zone(built, monkeypatch):
    run("district", "create", "northfield", "--name", "Northfield Public Schools")
    run(
        "district",
        "create",
        "lakeside",
        "--name",
        "Lakeside ISD",
        "--time-zone",
        "America/Chicago",
    )

    listing = run("district", "list").stdout.splitlines()
    assert listing == [
        "lakeside\tAmerica/Chicago\tLakeside ISD",
        "northfield\tUTC\tNorthfield Public Schools",
    ]
    with built.database.read() as session:
        district = session.exec(select(District).where(District.slug == "northfield")).one()
        assert current_usage(session, district_id=district.id).active_students == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["Bad Slug", "--name", "X"], "not a valid slug"),
        (["ok", "--name", "X", "--time-zone", "Mars/Base"], "not an IANA time zone"),
        (["ok", "--name", "   "], "official name"),
    ],
)
def test_district_create_refuses_bad_input(arguments, message):
    result = run("district", "create", *arguments, expect=1)
    assert message in result.stderr
    assert run("district", "list").stdout == ""


def test_district_create_refuses_a_second_district_with_the_same_slug():
    run("district", "create", "twice", "--name", "Twice")
    result = run("district", "create", "twice", "--name", "Again", expect=1)
    assert "already a district 'twice'" in result.stderr


class AsyncSource:
    """A third-party roster source that answers with an async iterable."""

    name = "async_sis"
    description = "Students from an asynchronous client."

    def fetch_students(self, *, district, options):
        async def people():
            for number in range(3):
                yield StudentRecord(source_id=f"A{number}")
            yield {"source_id": "A9", "role": "teacher"}

        return people()


class AsyncSisPlugin:
    @hookimpl
    def register_roster_sources(self, settings):
        return [AsyncSource()]


async_sis_plugin = AsyncSisPlugin()  # what the installed entry point names


def test_roster_import_through_a_named_async_source(built, monkeypatch, tmp_path: Path):
    install_plugin(
        tmp_path / "site", monkeypatch, name="async_sis", target=f"{__name__}:async_sis_plugin"
    )
    run("district", "create", "async", "--name", "Async District")

    result = run(
        "roster", "import", str(tmp_path / "unused"), "--district", "async", "--source", "async_sis"
    )

    assert "Active students: 0 -> 3" in result.stderr
    with built.database.read() as session:
        district = session.exec(select(District).where(District.slug == "async")).one()
        usage = current_usage(session, district_id=district.id)
    assert (usage.active_students, usage.staff) == (3, 1)


def test_roster_import_names_unknown_sources(tmp_path: Path):
    run("district", "create", "plain", "--name", "Plain")
    result = run(
        "roster",
        "import",
        str(tmp_path / "x.csv"),
        "--district",
        "plain",
        "--source",
        "nope",
        expect=1,
    )
    assert "No plugin provides a roster source named 'nope'" in result.stderr
    assert "local" in result.stderr
