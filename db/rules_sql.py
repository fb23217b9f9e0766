"""The license's counting rule as SQL, for every count and report that selects counted rows.

``licensing.domain.rules.counts_against_license`` is the rule; this is its one SQL twin, and
tests/db/test_rules_sql.py holds the two to the same answer for every role, lifecycle and enabled
value. The words are the stored ones (``licensing.domain.rules.Role`` and ``Lifecycle`` values); db does
not import licensing, so they are written here once.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, and_

STUDENT_ROLE = "student"
ACTIVE_LIFECYCLE = "active"


def is_student(table: Table) -> ColumnElement[bool]:
    """The row is a student's record (whatever its lifecycle)."""
    return table.c.role == STUDENT_ROLE


def counts_against_license(table: Table) -> ColumnElement[bool]:
    """The row counts against the license: a student's record, active and enabled.

    ``table`` is the roster table or its staging twin (same columns)."""
    return and_(is_student(table), table.c.lifecycle == ACTIVE_LIFECYCLE, table.c.enabled.is_(True))
