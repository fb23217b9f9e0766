"""Delta syncs equal full syncs: any roster, changed by any sequence of deltas through the real
engine, ends with exactly the records and counts a full sync of the final roster gives.

Each example builds two districts in the test database: one takes a full sync of a first roster
and then each delta, the other a single full sync of the roster those deltas lead to. Both have
a second source sharing some people, so the district's de-duplication is part of the check.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from app.runtime import build_service
from db.models import RosterRecord
from licensing.orchestration.plugin_host import load_plugins
from licensing.settings import DistrictConfig, RosterSourceConfig
from licensing.storage import roster_changes
from licensing.storage.roster import current_usage, usage_mismatch
from plugins.hookspecs import hookimpl
from plugins.records import RemovedRecord, RosterDelta, StudentRecord
from tests.utils.districts import create_district

IDS = [f"s{number}" for number in range(14)]
PEOPLE = [f"p{number}" for number in range(9)]  # fewer people than ids: some share a person
ROLES = ["student", "student", "student", "teacher", "guardian"]
STATUSES = ["active", "active", "active", "graduated", "tobedeleted", "withdrawn"]
# Records of the second source, whose people overlap the first source's.
SECOND_SOURCE = [
    StudentRecord(source_id="x1", person_key="p0"),
    StudentRecord(source_id="x2", person_key="p5", enabled=False),
    StudentRecord(source_id="x3", person_key="p8", role="teacher"),
]


def records_for(source_id: str) -> st.SearchStrategy[StudentRecord]:
    return st.builds(
        StudentRecord,
        source_id=st.just(source_id),
        person_key=st.sampled_from(PEOPLE),
        role=st.sampled_from(ROLES),
        status=st.sampled_from(STATUSES),
        enabled=st.booleans(),
        grade=st.sampled_from([None, "3", "7"]),
        schools=st.sampled_from([(), ("oak",), ("oak", "river")]),
    )


@st.composite
def rosters(draw: st.DrawFn) -> dict[str, StudentRecord]:
    chosen = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=len(IDS)))
    return {source_id: draw(records_for(source_id)) for source_id in chosen}


@st.composite
def deltas(draw: st.DrawFn) -> list[StudentRecord | RemovedRecord]:
    """One delta: each id at most once, a new version of its record or its removal."""
    chosen = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=6))
    return [
        RemovedRecord(source_id) if draw(st.booleans()) else draw(records_for(source_id))
        for source_id in chosen
    ]


def apply_changes(
    roster: dict[str, StudentRecord], delta: list[StudentRecord | RemovedRecord]
) -> dict[str, StudentRecord]:
    """The roster a source has after ``delta``: what its full export would list."""
    result = dict(roster)
    for change in delta:
        if isinstance(change, RemovedRecord):
            result.pop(change.source_id, None)
        else:
            result[change.source_id] = change
    return result


class SettableSource:
    """Returns what the test sets: a whole roster (a list) or a RosterDelta."""

    name = "settable"
    description = "What the test sets."

    def __init__(self) -> None:
        self.answer: Any = []

    def fetch_students(self, *, district, options):
        return self.answer


class SettablePlugin:
    def __init__(self, source: SettableSource) -> None:
        self.source = source

    @hookimpl
    def register_roster_sources(self, settings):
        return [self.source]


@pytest.fixture
def engine(settings):
    """One service for every example: each example makes its own districts."""
    source = SettableSource()
    # The hold is tested elsewhere: here every delta applies, however much it removes.
    sources = {
        "sis": RosterSourceConfig(kind="settable", max_drop_share=1.0),
        "second": RosterSourceConfig(kind="settable", max_drop_share=1.0),
    }
    plugins = load_plugins(
        settings, load_entry_points=False, extra_plugins=[SettablePlugin(source)]
    )
    service = build_service(settings, upgrade_schema=False, plugins=plugins)
    service.slugs = itertools.count()
    service.source = source
    service.sources = sources
    yield service
    service.database.dispose()


def new_district(service) -> int:
    slug = f"district-{next(service.slugs)}"
    service.settings.districts[slug] = DistrictConfig(roster_sources=service.sources)
    return create_district(service, slug=slug)


def sync(service, district_id: int, answer: Any, source: str = "sis"):
    service.source.answer = answer

    async def run():
        return await service.roster_sync.sync(district_id=district_id, source=source, actor="t")

    outcome = anyio.run(run)
    assert outcome.status == "applied", outcome.problem
    return outcome


def stored_roster(service, district_id: int) -> set[tuple[Any, ...]]:
    with service.database.read() as session:
        rows = session.exec(
            select(RosterRecord)
            .where(RosterRecord.district_id == district_id, RosterRecord.source == "sis")
            .order_by(col(RosterRecord.source_id))
        ).all()
    return {
        tuple(
            value
            for name, value in row.model_dump().items()
            if name != "id" and name != "district_id"
        )
        for row in rows
    }


def figures(service, district_id: int) -> dict[str, Any]:
    """What the district shows: its counts, and the source's figures in dataSources."""
    with service.database.read() as session:
        usage = current_usage(session, district_id=district_id)
        assert usage_mismatch(session, district_id=district_id) == {}
        run = roster_changes.last_applied_run(session, district_id=district_id, source="sis")
    assert run is not None
    excluded = json.loads(run.excluded or "{}")
    other_role = excluded.pop("other_role", 0)
    return {
        "usage": usage,
        "source_active": run.active_students,
        # Guardians are read but never stored: a delta cannot know how many a full export
        # lists, so the comparison is of the stored records.
        "stored_records": run.records - other_role,
        "excluded": excluded,
    }


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(first=rosters(), changes=st.lists(deltas(), max_size=4))
def test_deltas_give_the_records_and_counts_of_a_full_sync(engine, first, changes):
    by_deltas = new_district(engine)
    sync(engine, by_deltas, SECOND_SOURCE, source="second")
    sync(engine, by_deltas, list(first.values()))
    final = first
    for delta in changes:
        outcome = sync(engine, by_deltas, RosterDelta(delta))
        assert outcome.mode == "delta"
        final = apply_changes(final, delta)

    by_full = new_district(engine)
    sync(engine, by_full, SECOND_SOURCE, source="second")
    sync(engine, by_full, [replace(record) for record in final.values()])

    assert stored_roster(engine, by_deltas) == stored_roster(engine, by_full)
    assert figures(engine, by_deltas) == figures(engine, by_full)
