"""The range of a row id, checked wherever a client hands one in (a page cursor, the command
line) before it reaches a query.

Every id column is INTEGER: 32 bits, signed, on PostgreSQL, which answers a larger number with an
error instead of matching no row (SQLite would just find nothing). Checked here, the same input
gets the same clear refusal on both databases.
"""

from __future__ import annotations

from db.limits import integer_maximum
from db.models import AuditEvent

# Every id column has the same type; the audit log's stands for them all.
MAX_ROW_ID = integer_maximum(AuditEvent, "id")


def fits_row_id(value: int) -> bool:
    """Whether ``value`` can be compared with an id column (0 and above; no row has id 0)."""
    return 0 <= value <= MAX_ROW_ID
