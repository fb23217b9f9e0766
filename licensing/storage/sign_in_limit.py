"""Failed sign-ins per client address: a bad token on ``POST /session``, or as a bearer token.

Failures are counted in the database, per address and fixed window (``sign_in.failure_window_
seconds``, a minute by default), so every worker and host counts the same failures. Once an
address has made ``sign_in.failures_per_address`` failures in a window, every sign-in from it
is refused with HTTP 429 until the window ends. Other addresses are never affected.

A successful sign-in costs no database work here: each worker remembers the addresses it has
seen go over the limit (until their window ends) and refuses them from memory. A worker that has
not yet seen an address fail learns of its block at that address's next failure, which it counts
like any other.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from db.models import FailedSignIn, table_of
from db.session import Database
from licensing.domain.error_codes import ErrorCode
from licensing.settings import SignInSettings

SIGN_IN_THROTTLED = ErrorCode.SIGN_IN_THROTTLED
# Beyond this many blocked addresses in memory, the oldest is forgotten; the database still
# holds its count, so its next failure blocks it again.
MAX_REMEMBERED_ADDRESSES = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FailureWindow:
    start: datetime
    end: datetime


def failure_window(now: datetime, window_seconds: int) -> FailureWindow:
    """The fixed window ``now`` falls in: windows start at whole multiples of its length."""
    elapsed = math.floor((now - _EPOCH).total_seconds())
    start = _EPOCH + timedelta(seconds=elapsed - elapsed % window_seconds)
    return FailureWindow(start=start, end=start + timedelta(seconds=window_seconds))


def seconds_until(now: datetime, then: datetime) -> int:
    """Whole seconds from ``now`` to ``then``, at least 1 (a Retry-After value)."""
    return max(1, math.ceil((then - now).total_seconds()))


def count_failure(session: Session, *, address: str, window: FailureWindow) -> int:
    """Add one failure for ``address`` in ``window``; the address's failures in it so far."""
    table = table_of(FailedSignIn)
    # Earlier windows no longer count for anyone.
    session.execute(delete(table).where(table.c.window_start < window.start))
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(client_address=address, window_start=window.start, failures=1)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["client_address", "window_start"],
            set_={"failures": table.c.failures + 1},
        )
    )
    counted = session.get(FailedSignIn, (address, window.start), populate_existing=True)
    if counted is None:  # the upsert above wrote this row in the same transaction
        raise LookupError("the failed sign-in row just written is missing")
    return counted.failures


class FailedSignIns:
    """The failed sign-in limit of one process: counts in the database, blocks remembered."""

    def __init__(
        self, *, settings: SignInSettings, database: Database, clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock = clock
        self._blocked_until: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may sign in again, or None when it may now (no I/O)."""
        now = self.clock()
        with self._lock:
            until = self._blocked_until.get(address)
            if until is None:
                return None
            if now >= until:
                del self._blocked_until[address]
                return None
        return seconds_until(now, until)

    def record_failure(self, address: str) -> int | None:
        """Count a failed sign-in (a database write: call it off the event loop). Returns the
        seconds to wait when this failure was beyond the limit, else None."""
        now = self.clock()
        window = failure_window(now, self.settings.failure_window_seconds)
        with self.database.write() as session:
            failures = count_failure(session, address=address, window=window)
        limit = self.settings.failures_per_address
        if failures >= limit:
            with self._lock:
                self._blocked_until[address] = window.end
                self._blocked_until.move_to_end(address)
                while len(self._blocked_until) > MAX_REMEMBERED_ADDRESSES:
                    self._blocked_until.popitem(last=False)
        return seconds_until(now, window.end) if failures > limit else None
