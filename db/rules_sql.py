"""The license's counting rule as SQL, for every count and report that selects counted rows.

``licensing.domain.rules.counts_against_license`` is the rule; this is its one SQL twin, and
tests/db/test_rules_sql.py holds the two to the same answer for every role, lifecycle and enabled
value. The words are the stored ones (``licensing.domain.rules.Role`` and ``Lifecycle`` values); db does
not import licensing, so they are written here once.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, Table, and_, literal_column, true

STUDENT_ROLE = "student"
ACTIVE_LIFECYCLE = "active"

# The words are written into the SQL as constants, not bound as parameters: a partial index's
# condition is matched against the statement's text (SQLite) or its plan-time constants
# (PostgreSQL, whose generic plans see no parameter values), so only constants let the
# statements of every plan read the index of counted records (db/models.py).
_STUDENT = literal_column(f"'{STUDENT_ROLE}'", String)
_ACTIVE = literal_column(f"'{ACTIVE_LIFECYCLE}'", String)


def is_student(table: Table) -> ColumnElement[bool]:
    """The row is a student's record (whatever its lifecycle)."""
    return table.c.role == _STUDENT


def counts_against_license(table: Table) -> ColumnElement[bool]:
    """The row counts against the license: a student's record, active and enabled.

    ``table`` is the roster table or its staging twin (same columns). Written exactly as the
    condition of the roster's partial index of counted records (``COUNTED_SQL``)."""
    return and_(is_student(table), table.c.lifecycle == _ACTIVE, table.c.enabled == true())


# The same condition as index DDL, per database (``enabled = true`` is ``enabled = 1`` on SQLite).
COUNTED_POSTGRESQL = f"role = '{STUDENT_ROLE}' AND lifecycle = '{ACTIVE_LIFECYCLE}' AND enabled"
COUNTED_SQLITE = f"role = '{STUDENT_ROLE}' AND lifecycle = '{ACTIVE_LIFECYCLE}' AND enabled = 1"
