"""Each API token's budget of cost points: a token bucket per token, shared by every worker.

A bucket holds up to ``rate_limit.bucket_size`` points and gets ``rate_limit.restore_rate``
points back each second. A request is let through when its token's bucket holds at least its
cost (and at least one point), and its cost is then drawn; otherwise it is refused with HTTP 429
and the whole seconds after which the bucket will hold enough (``Retry-After``). GraphQL
operations cost what graph/cost.py computes; other endpoints (the report download) a fixed cost.

The buckets live in the database (``rate_limit.store = "database"``, the default), so every worker
and host draws from the same one: each draw is one statement, an upsert that refills the bucket,
takes the cost when it is there and returns the new level (``SharedTokenBudgets``). Checking that
a budget is not spent (cost 0, at sign-in) costs no statement: it reads this worker's copy of the
level the last draw returned. When the database cannot take a draw at once (SQLite while a sync
writes, longer than ``SQLITE_BUDGET_WAIT_MS``) this worker's own bucket decides, so a request
never waits on the budget. With ``store = "memory"`` each worker keeps its own buckets
(``TokenBudgets``), and with N workers a token can spend up to N times the configured rate.
Buckets are keyed by the token's id, so the Licensing tab's session cookie and a script using the
same token share one.
"""

from __future__ import annotations

import heapq
import logging
import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import anyio
from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.responses import JSONResponse

from db.session import Database
from graph.errors import ClientError
from graph.responses import error_response
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import LicensingService
from licensing.problems import Problem
from licensing.settings import RateLimitSettings

logger = logging.getLogger("licensing.rate_limit")

# Beyond this many tokens, the least recently used bucket is forgotten. A bucket left alone that
# long has refilled, and a full bucket is what a forgotten token gets back: nothing is lost.
MAX_TRACKED_TOKENS = 10_000
RATE_LIMITED = ErrorCode.RATE_LIMITED
# The policy's name in the RateLimit-Policy and RateLimit response headers.
POLICY_NAME = "token-budget"
# On SQLite a draw runs in place on the event loop; it waits at most this long for the write
# lock before this worker's own bucket decides instead.
SQLITE_BUDGET_WAIT_MS = 10
# Points a worker takes from a token's shared bucket ahead of its next requests, as a fraction of
# the bucket (``SharedTokenBudgets``): those requests are then paid without a statement. At the
# default bucket of 5,000 points, 100: one second of the default refill, the cost of dozens of
# dashboard reads.
ALLOWANCE_FRACTION = 0.02
# Draws between two checkpoints of SQLite's write-ahead log (``_SqliteConnections``): about the
# 1000 pages SQLite itself would wait for, at a page or two a draw.
CHECKPOINT_EVERY_DRAWS = 500


@dataclass(frozen=True)
class Receipt:
    """The outcome of asking a token's bucket for ``requested`` points."""

    allowed: bool
    requested: int
    remaining: int
    bucket_size: int
    restore_rate: float
    # Whole seconds until the bucket holds enough for the request; None when it was allowed.
    retry_after_seconds: int | None
    # Whole seconds until the bucket is full again.
    seconds_until_full: int

    def headers(self) -> dict[str, str]:
        """RateLimit-Policy and RateLimit (the IETF httpapi draft's fields), plus Retry-After
        when refused."""
        window = math.ceil(self.bucket_size / self.restore_rate)
        headers = {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.bucket_size};w={window}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.seconds_until_full}',
        }
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers

    def refusal_message(self) -> str:
        costs = f", and this request costs {self.requested}" if self.requested else ""
        return (
            f"Rate limited: this API token has {self.remaining} of its {self.bucket_size} points "
            f"left{costs}; points come back at {self.restore_rate:g} a second. Retry after "
            f"{self.retry_after_seconds} s, and ask for fewer items (a smaller `first` or `days`) "
            "to spend less."
        )

    def refusal_extensions(self) -> dict[str, object]:
        return {"code": RATE_LIMITED, "retryAfterSeconds": self.retry_after_seconds}


@dataclass
class _Bucket:
    level: float
    updated: float


class TokenBudgets:
    """The buckets of every token seen by this worker. Thread-safe: each call holds a lock for
    a few arithmetic steps, so resolvers running in worker threads may call it too."""

    def __init__(
        self,
        *,
        bucket_size: int,
        restore_rate: float,
        clock: Callable[[], float],
        max_tracked_tokens: int = MAX_TRACKED_TOKENS,
    ) -> None:
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self._clock = clock
        self._max_tracked_tokens = max_tracked_tokens
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def draw(self, token_id: int, cost: int) -> Receipt:
        """Take ``cost`` points if the bucket holds that many (and at least one point), else take
        nothing and say when to retry. ``cost=0`` checks that the budget is not spent.

        A cost above the bucket's size needs a full bucket, so it can still run, once."""
        needed = max(1.0, float(min(cost, self.bucket_size)))
        with self._lock:
            bucket = self._refilled(token_id)
            if bucket.level >= needed:
                bucket.level = max(0.0, bucket.level - cost)
                return self._receipt(bucket, cost, retry_after=None)
            wait = math.ceil((needed - bucket.level) / self.restore_rate)
            return self._receipt(bucket, cost, retry_after=max(1, wait))

    def spend(self, token_id: int, cost: int, *, retry_for: int | None = None) -> Receipt:
        """Take ``cost`` points for work already done. The bucket may owe up to its size: the
        token then waits until the debt is paid, as long as the work took. ``retry_for``: the
        request is refused all the same, and the receipt says when the budget could pay that
        many points."""
        with self._lock:
            bucket = self._refilled(token_id)
            bucket.level = max(-float(self.bucket_size), bucket.level - cost)
            retry_after = None
            if retry_for is not None:
                retry_after = _retry_after(
                    bucket.level, retry_for, self.bucket_size, self.restore_rate
                )
            return self._receipt(bucket, cost, retry_after=retry_after)

    def spend_held(self, token_id: int, cost: int, *, over_seconds: float) -> Receipt:
        """Take ``cost`` points that accrued evenly over the last ``over_seconds`` (subscriptions
        held), as if each had been drawn as it accrued: the refill of that time is added before
        the bucket's cap, so a charge drawn late takes no more than one drawn on time. The
        bucket may owe up to its size."""
        size = float(self.bucket_size)
        with self._lock:
            bucket = self._refilled(token_id, held_seconds=over_seconds)
            during = min(over_seconds, max(0.0, self._clock() - bucket.updated))
            level = min(size, bucket.level + during * self.restore_rate - cost)
            bucket.level = max(-size, level)
            bucket.updated = max(self._clock(), bucket.updated)
            return self._receipt(bucket, cost, retry_after=None)

    def _refilled(self, token_id: int, *, held_seconds: float = 0.0) -> _Bucket:
        """The token's bucket, refilled (up to its size) to ``held_seconds`` ago: that last
        stretch is ``spend_held``'s to add."""
        now = self._clock()
        bucket = self._buckets.get(token_id)
        if bucket is None:
            bucket = _Bucket(level=float(self.bucket_size), updated=now)
            self._buckets[token_id] = bucket
            if len(self._buckets) > self._max_tracked_tokens:
                self._buckets.popitem(last=False)
            return bucket
        self._buckets.move_to_end(token_id)
        # A clock set back restores nothing until it passes the last update again.
        until = now - held_seconds
        elapsed = max(0.0, until - bucket.updated)
        bucket.level = min(float(self.bucket_size), bucket.level + elapsed * self.restore_rate)
        bucket.updated = max(until, bucket.updated)
        return bucket

    async def draw_async(self, token_id: int, cost: int) -> Receipt:
        return self.draw(token_id, cost)

    async def spend_async(
        self, token_id: int, cost: int, *, retry_for: int | None = None
    ) -> Receipt:
        return self.spend(token_id, cost, retry_for=retry_for)

    async def spend_held_async(self, token_id: int, cost: int, *, over_seconds: float) -> Receipt:
        return self.spend_held(token_id, cost, over_seconds=over_seconds)

    def level(self, token_id: int) -> float:
        """The token's bucket as it stands now, refilled; nothing is drawn."""
        with self._lock:
            return self._refilled(token_id).level

    def remember(self, token_id: int, level: float, updated: float) -> None:
        """Set a bucket to what the shared store says (``SharedTokenBudgets`` keeps a copy)."""
        with self._lock:
            bucket = self._refilled(token_id)
            bucket.level, bucket.updated = level, updated

    def _receipt(self, bucket: _Bucket, cost: int, *, retry_after: int | None) -> Receipt:
        return receipt_for(
            bucket.level, cost, self.bucket_size, self.restore_rate, retry_after=retry_after
        )


def cost_extensions(requested: int, maximum: int, receipt: Receipt | None) -> dict[str, Any]:
    """An answer's ``extensions``: what the operation cost, the most one may cost, and what is
    left of the token's budget after it (graph/cost.py; kept answers, graph/answers.py)."""
    cost: dict[str, Any] = {"requested": requested, "maximum": maximum}
    if receipt is not None:
        cost |= {
            "remaining": receipt.remaining,
            "bucketSize": receipt.bucket_size,
            "restoreRate": _number(receipt.restore_rate),
        }
    return {"cost": cost}


def _number(value: float) -> int | float:
    """50.0 as 50 in JSON, 2.5 as it is."""
    return int(value) if float(value).is_integer() else value


def receipt_for(
    level: float, cost: int, bucket_size: int, restore_rate: float, *, retry_after: int | None
) -> Receipt:
    return Receipt(
        allowed=retry_after is None,
        requested=cost,
        remaining=max(0, math.floor(level)),
        bucket_size=bucket_size,
        restore_rate=restore_rate,
        retry_after_seconds=retry_after,
        seconds_until_full=math.ceil((bucket_size - level) / restore_rate),
    )


def _retry_after(level: float, cost: int, bucket_size: int, restore_rate: float) -> int:
    """Whole seconds until a bucket at ``level`` holds enough for ``cost`` (a full bucket for a
    cost above its size)."""
    needed = max(1.0, float(min(cost, bucket_size)))
    return max(1, math.ceil((needed - level) / restore_rate))


def _upsert_draw() -> Any:
    """One statement: refill the token's bucket, take the cost if the bucket holds what is
    needed, and return the new level and whether it paid. SQLite (3.35+) and PostgreSQL agree
    on this form; SET reads the row as it was before the statement."""
    elapsed = "CASE WHEN :now > token_budget.updated THEN :now - token_budget.updated ELSE 0 END"
    grown = f"(token_budget.level + ({elapsed}) * :rate)"
    refilled = f"(CASE WHEN {grown} > :size THEN :size ELSE {grown} END)"
    taken = f"(CASE WHEN {refilled} - :cost > :floor THEN {refilled} - :cost ELSE :floor END)"
    return text(
        "INSERT INTO token_budget (token_id, level, updated, granted) "
        "VALUES (:token_id, :fresh, :now, TRUE) "
        "ON CONFLICT (token_id) DO UPDATE SET "
        f"level = CASE WHEN {refilled} >= :needed THEN {taken} ELSE {refilled} END, "
        f"granted = ({refilled} >= :needed), "
        "updated = CASE WHEN :now > token_budget.updated THEN :now ELSE token_budget.updated END "
        "RETURNING level, updated, granted"
    )


UPSERT_DRAW = _upsert_draw()


def _upsert_held() -> Any:
    """``spend_held`` in one statement: refill the bucket (up to its size) to ``:over`` seconds
    ago, add the refill of those last seconds and take the cost, then cap at the size; never
    below ``:floor`` (the debt allowed)."""
    elapsed = "(CASE WHEN :now > token_budget.updated THEN :now - token_budget.updated ELSE 0 END)"
    during = f"(CASE WHEN {elapsed} < :over THEN {elapsed} ELSE :over END)"
    grown = f"(token_budget.level + ({elapsed} - {during}) * :rate)"
    start = f"(CASE WHEN {grown} > :size THEN :size ELSE {grown} END)"
    after = f"({start} + {during} * :rate - :cost)"
    capped = f"(CASE WHEN {after} > :size THEN :size ELSE {after} END)"
    return text(
        "INSERT INTO token_budget (token_id, level, updated, granted) "
        "VALUES (:token_id, :fresh, :now, TRUE) "
        "ON CONFLICT (token_id) DO UPDATE SET "
        f"level = CASE WHEN {capped} < :floor THEN :floor ELSE {capped} END, "
        "granted = TRUE, "
        "updated = CASE WHEN :now > token_budget.updated THEN :now ELSE token_budget.updated END "
        "RETURNING level, updated, granted"
    )


UPSERT_HELD = _upsert_held()


class SharedTokenBudgets:
    """Every token's bucket in the database's ``token_budget`` table, so workers and hosts share
    it. Same interface as ``TokenBudgets`` (which it keeps as this worker's copy and fallback).

    A draw that goes to the database takes a little more than its cost when the bucket holds it:
    an allowance (``ALLOWANCE_FRACTION`` of the bucket) that this worker keeps and pays the
    token's next requests from, without a statement. On PostgreSQL that saves a round trip and a
    thread hop on most requests; on SQLite a commit. The allowance was taken from the token's
    bucket, and every receipt counts it in what remains. Two things differ from one bucket
    drawn request by request, each by at most one allowance per worker: points one worker holds
    cannot pay another worker's requests (a token may be refused while an allowance waits
    unspent elsewhere), and a bucket refills to its size beside the allowances held, so after a
    rest a token can spend its bucket and those allowances.
    """

    def __init__(
        self,
        database: Database,
        *,
        bucket_size: int,
        restore_rate: float,
        clock: Callable[[], float],
    ) -> None:
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self.allowance_points = math.floor(bucket_size * ALLOWANCE_FRACTION)
        self._clock = clock
        self._database = database
        self.local = TokenBudgets(bucket_size=bucket_size, restore_rate=restore_rate, clock=clock)
        # Points each token's bucket gave this worker ahead of its requests, not spent yet.
        self._allowances: OrderedDict[int, float] = OrderedDict()
        self._allowances_lock = threading.Lock()
        # SQLite: a driver connection of this thread's own that waits briefly for the write
        # lock, the statement its own transaction (a few tens of microseconds, where a session
        # would add ten times that); PostgreSQL: the statement alone in autocommit
        # (``Database.write_row``), from a worker thread.
        self._sqlite = _SqliteConnections(database) if database.is_sqlite else None
        self._statements = {UPSERT_DRAW: str(UPSERT_DRAW), UPSERT_HELD: str(UPSERT_HELD)}

    def draw(self, token_id: int, cost: int) -> Receipt:
        if cost == 0:
            return self._check(token_id)
        return self._from_allowance(token_id, cost) or self._draw_shared(token_id, cost)

    def spend(self, token_id: int, cost: int, *, retry_for: int | None = None) -> Receipt:
        """Work already done: always taken, and the bucket may owe up to its size."""
        held = self._take_allowance(token_id)
        owed = cost - held
        if owed <= 0:
            return self._paid_from_allowance(token_id, cost, held, retry_for=retry_for)
        debt = -float(self.bucket_size)
        row = self._run(UPSERT_DRAW, token_id, owed, needed=debt, floor=debt)
        if row is None:
            return self.local.spend(token_id, math.ceil(owed), retry_for=retry_for)
        level, _granted = row
        retry_after = None
        if retry_for is not None:
            retry_after = _retry_after(level, retry_for, self.bucket_size, self.restore_rate)
        return self._receipt(token_id, level, cost, retry_after=retry_after)

    def spend_held(self, token_id: int, cost: int, *, over_seconds: float) -> Receipt:
        """Points that accrued over the last ``over_seconds``: ``TokenBudgets.spend_held``."""
        debt = -float(self.bucket_size)
        row = self._run(
            UPSERT_HELD, token_id, cost, needed=debt, floor=debt, held_seconds=over_seconds
        )
        if row is None:
            return self.local.spend_held(token_id, cost, over_seconds=over_seconds)
        return self._receipt(token_id, row[0], cost, retry_after=None)

    async def spend_held_async(self, token_id: int, cost: int, *, over_seconds: float) -> Receipt:
        if self._database.is_sqlite:
            return self.spend_held(token_id, cost, over_seconds=over_seconds)
        return await to_thread.run_sync(
            partial(self.spend_held, token_id, cost, over_seconds=over_seconds)
        )

    async def draw_async(self, token_id: int, cost: int) -> Receipt:
        if cost == 0 or self._database.is_sqlite:
            return self.draw(token_id, cost)
        # Paid from the allowance on the event loop: no thread, no statement.
        paid = self._from_allowance(token_id, cost)
        if paid is not None:
            return paid
        return await to_thread.run_sync(self._draw_shared, token_id, cost)

    async def spend_async(
        self, token_id: int, cost: int, *, retry_for: int | None = None
    ) -> Receipt:
        if self._database.is_sqlite:
            return self.spend(token_id, cost, retry_for=retry_for)
        return await to_thread.run_sync(partial(self.spend, token_id, cost, retry_for=retry_for))

    # --- The allowance ----------------------------------------------------------------------

    def _held(self, token_id: int) -> float:
        """The token's allowance on this worker (the lock held)."""
        held = self._allowances.get(token_id, 0.0)
        if held > 0:
            self._allowances.move_to_end(token_id)
        return held

    def _take_allowance(self, token_id: int) -> float:
        """All of the token's allowance, taken to pay a request with."""
        with self._allowances_lock:
            return self._allowances.pop(token_id, 0.0)

    def _give_allowance(self, token_id: int, points: float) -> None:
        if points <= 0:
            return
        with self._allowances_lock:
            self._allowances[token_id] = self._allowances.get(token_id, 0.0) + points
            self._allowances.move_to_end(token_id)
            if len(self._allowances) > MAX_TRACKED_TOKENS:
                self._allowances.popitem(last=False)

    def _with_allowance(self, shared_level: float, held: float) -> float:
        """The token's bucket as a receipt shows it: the shared level and the allowance this
        worker holds, no more than the bucket's size."""
        return min(float(self.bucket_size), shared_level + held)

    def _check(self, token_id: int) -> Receipt:
        """Cost 0: whether the budget is spent, from this worker's copy and its allowance."""
        shared_level = self.local.level(token_id)
        with self._allowances_lock:
            level = self._with_allowance(shared_level, self._held(token_id))
        retry_after = (
            None if level >= 1 else _retry_after(level, 0, self.bucket_size, self.restore_rate)
        )
        return receipt_for(level, 0, self.bucket_size, self.restore_rate, retry_after=retry_after)

    def _from_allowance(self, token_id: int, cost: int) -> Receipt | None:
        """``cost`` paid from the token's allowance on this worker, or None when it holds less."""
        if cost > self.bucket_size:
            return None
        with self._allowances_lock:
            held = self._held(token_id)
            if held < cost:
                return None
            self._allowances[token_id] = held - cost
        level = self._with_allowance(self.local.level(token_id), held) - cost
        return receipt_for(level, cost, self.bucket_size, self.restore_rate, retry_after=None)

    def _paid_from_allowance(
        self, token_id: int, cost: int, held: float, *, retry_for: int | None
    ) -> Receipt:
        self._give_allowance(token_id, held - cost)
        level = self._with_allowance(self.local.level(token_id), held) - cost
        retry_after = None
        if retry_for is not None:
            retry_after = _retry_after(level, retry_for, self.bucket_size, self.restore_rate)
        return receipt_for(
            level, cost, self.bucket_size, self.restore_rate, retry_after=retry_after
        )

    def _draw_shared(self, token_id: int, cost: int) -> Receipt:
        """Draw from the shared bucket what the allowance cannot pay, and a new allowance with
        it when the bucket holds that much; the exact remainder alone when it holds less."""
        if cost > self.bucket_size:  # needs a full bucket (TokenBudgets.draw), allowance aside
            return self._draw_exactly(token_id, cost, needed=float(self.bucket_size), held=0.0)
        held = self._take_allowance(token_id)
        owed = cost - held
        if owed <= 0:  # another thread's draw brought an allowance meanwhile
            return self._paid_from_allowance(token_id, cost, held, retry_for=None)
        allowance = self.allowance_points
        # (Never more than a full bucket: a token's first draw is an insert, which always pays.)
        if allowance > 0 and owed + allowance <= self.bucket_size:
            row = self._run(
                UPSERT_DRAW, token_id, owed + allowance, needed=owed + allowance, floor=0.0
            )
            if row is None:
                return self._decided_locally(token_id, cost, held)
            level, granted = row
            if granted:
                self._give_allowance(token_id, allowance)
                return self._receipt(token_id, level, cost, retry_after=None)
            if level < owed:  # not even the remainder: refused without a second statement
                return self._refused(token_id, level, cost, held)
        return self._draw_exactly(token_id, cost, needed=owed, held=held)

    def _draw_exactly(self, token_id: int, cost: int, *, needed: float, held: float) -> Receipt:
        owed = cost - held
        row = self._run(UPSERT_DRAW, token_id, owed, needed=needed, floor=0.0)
        if row is None:
            return self._decided_locally(token_id, cost, held)
        level, granted = row
        if granted:
            return self._receipt(token_id, level, cost, retry_after=None)
        return self._refused(token_id, level, cost, held)

    def _refused(self, token_id: int, level: float, cost: int, held: float) -> Receipt:
        """Not paid: the allowance taken for it goes back, and the receipt says when the bucket
        (with the allowance) will hold the cost."""
        self._give_allowance(token_id, held)
        wait = _retry_after(level + held, cost, self.bucket_size, self.restore_rate)
        return self._receipt(token_id, level, cost, retry_after=wait)

    def _decided_locally(self, token_id: int, cost: int, held: float) -> Receipt:
        """The shared bucket was busy or unreachable: this worker's own bucket decides, the
        allowance back where it was."""
        self._give_allowance(token_id, held)
        return self.local.draw(token_id, cost)

    def _receipt(
        self, token_id: int, level: float, cost: int, *, retry_after: int | None
    ) -> Receipt:
        """A receipt after a statement left the shared bucket at ``level``: what remains counts
        the allowance this worker holds for the token too."""
        with self._allowances_lock:
            level = self._with_allowance(level, self._held(token_id))
        return receipt_for(
            level, cost, self.bucket_size, self.restore_rate, retry_after=retry_after
        )

    # --- The statement ----------------------------------------------------------------------

    def _run(
        self,
        statement: Any,
        token_id: int,
        cost: float,
        *,
        needed: float,
        floor: float,
        held_seconds: float | None = None,
    ) -> tuple[float, bool] | None:
        """Run one upsert on the token's bucket: its level afterwards and whether it paid, or
        None when the database was busy or unreachable (this worker's bucket then decides)."""
        now = self._clock()
        parameters = {
            "token_id": token_id,
            "now": now,
            "rate": self.restore_rate,
            "size": float(self.bucket_size),
            "cost": float(cost),
            "needed": needed,
            "floor": floor,
            "fresh": max(floor, self.bucket_size - cost),
            "over": held_seconds or 0.0,
        }
        try:
            if self._sqlite is not None:
                level, updated, granted = (
                    self._sqlite.get().execute(self._statements[statement], parameters).fetchone()
                )
                self._sqlite.drawn()
            else:
                level, updated, granted = self._database.write_row(statement, parameters)
        except (OperationalError, sqlite3.OperationalError) as error:
            # Busy (SQLite) or unreachable: this worker's own bucket decides this once.
            # Not a failure of the request: logged without the driver's text, which would read
            # like one ("database is locked").
            logger.warning(
                "The shared token budget was busy or unreachable (%s); this worker's own bucket "
                "decided the request.",
                type(getattr(error, "orig", error)).__name__,
            )
            return None
        self.local.remember(token_id, level, updated)
        return level, bool(granted)


class _SqliteConnections:
    """One autocommit sqlite3 connection per thread to the service's database file.

    Each draw is a commit. SQLite folds its write-ahead log back into the database file (a
    checkpoint, with an fsync) on the commit that takes the log past 1000 pages: every several
    hundred draws one draw, on the event loop, would stall every request for the fsync's time
    (tens of milliseconds on a busy disk), which is most of a loaded server's p99. So these
    connections never checkpoint on commit; every ``CHECKPOINT_EVERY_DRAWS`` draws a short-lived
    thread of its own runs a PASSIVE checkpoint, which waits for no reader or writer.
    """

    def __init__(self, database: Database) -> None:
        self.path = database.url.database or ":memory:"
        self.local = threading.local()
        self._draws = 0
        self._checkpointing = threading.Lock()

    def get(self) -> sqlite3.Connection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUDGET_WAIT_MS}")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self.local.connection = connection
        return connection

    def drawn(self) -> None:
        """Count a draw; start a checkpoint in the background when one is due and none runs."""
        self._draws += 1
        if self._draws < CHECKPOINT_EVERY_DRAWS or not self._checkpointing.acquire(blocking=False):
            return
        self._draws = 0
        threading.Thread(target=self._checkpoint, name="budget-checkpoint", daemon=True).start()

    def _checkpoint(self) -> None:
        try:
            with closing(sqlite3.connect(self.path, isolation_level=None)) as connection:
                connection.execute(f"PRAGMA busy_timeout={SQLITE_BUDGET_WAIT_MS}")
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:  # the next one catches up
            logger.warning("The token budgets' checkpoint failed (%s).", type(error).__name__)
        finally:
            self._checkpointing.release()


_budgets: WeakKeyDictionary[LicensingService, TokenBudgets | SharedTokenBudgets | None] = (
    WeakKeyDictionary()
)
_budgets_lock = threading.Lock()


def token_budgets(service: LicensingService) -> TokenBudgets | SharedTokenBudgets | None:
    """This worker's token budgets for ``service`` (one per service, made on first use), or None
    when rate limiting is turned off. The service's clock drives the refill, so tests can move it."""
    try:
        return _budgets[service]
    except KeyError:
        pass
    with _budgets_lock:
        if service not in _budgets:
            _budgets[service] = _new_budgets(
                service.settings.rate_limit, service.clock, service.database
            )
        return _budgets[service]


def _new_budgets(
    settings: RateLimitSettings, clock: Callable[[], datetime], database: Database
) -> TokenBudgets | SharedTokenBudgets | None:
    if not settings.enabled:
        return None
    if settings.store == "database":
        return SharedTokenBudgets(
            database,
            bucket_size=settings.bucket_size,
            restore_rate=settings.restore_rate,
            clock=lambda: clock().timestamp(),
        )
    return TokenBudgets(
        bucket_size=settings.bucket_size,
        restore_rate=settings.restore_rate,
        clock=lambda: clock().timestamp(),
    )


def rate_limited_response(receipt: Receipt) -> JSONResponse:
    """HTTP 429 for a request its token's budget cannot pay, before any of its work is done."""
    extensions = receipt.refusal_extensions()
    code = extensions.pop("code")
    assert isinstance(code, ErrorCode)  # refusal_extensions always names the refusal's code
    return error_response(
        429, code, receipt.refusal_message(), extensions=extensions, headers=receipt.headers()
    )


# --- Subscriptions: a cap per token, and a charge for the time they are held ------------------

TOO_MANY_SUBSCRIPTIONS = Problem(
    ErrorCode.TOO_MANY_SUBSCRIPTIONS,
    "This API token already holds as many open subscriptions as it may "
    "(rate_limit.max_subscriptions_per_token). Close one, or share one subscription between the "
    "parts of your application that need it.",
)
SUBSCRIPTION_BUDGET_SPENT = Problem(
    RATE_LIMITED,
    "This API token's budget is spent, so its subscription was closed: an open subscription draws "
    "rate_limit.subscription_points_per_minute points a minute. Subscribe again once the budget "
    "has refilled, and hold fewer subscriptions.",
)
# A token's open subscriptions on a worker are charged together, once every this many seconds of
# the service's clock, and when the last of them ends: one statement a token each half minute,
# however many subscriptions it holds, and no subscription wakes up for it.
SUBSCRIPTION_CHARGE_SECONDS = 30.0
# Tokens whose charge is drawn at the same time, at most.
CONCURRENT_CHARGES = 8


class _PerTokenCounts:
    """How many of something (costly operations) each token holds on this worker, each taken
    only while under a cap."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def open(self, token_id: int, cap: int) -> bool:
        with self.lock:
            if self.counts.get(token_id, 0) >= cap:
                return False
            self.counts[token_id] = self.counts.get(token_id, 0) + 1
            return True

    def close(self, token_id: int) -> None:
        with self.lock:
            left = self.counts.get(token_id, 0) - 1
            if left > 0:
                self.counts[token_id] = left
            else:
                self.counts.pop(token_id, None)


class _HeldSubscriptions:
    """One token's open subscriptions on this worker, and the points their time has accrued and
    not been drawn yet."""

    def __init__(self, now: float) -> None:
        self.meters: set[SubscriptionMeter] = set()
        self.owed = 0.0
        self.counted_to = now
        # Since when the points owed have accrued (the last draw, or the first subscription).
        self.owed_since = now
        self.due_at = now + SUBSCRIPTION_CHARGE_SECONDS

    def accrue(self, now: float, points_per_second: float) -> None:
        """Add the time held since the last count (a clock set back adds nothing)."""
        held_for = max(0.0, now - self.counted_to)
        self.owed += len(self.meters) * points_per_second * held_for
        self.counted_to = max(now, self.counted_to)


class SubscriptionCharges:
    """This worker's open subscriptions, by token: the cap on how many a token holds, and the
    charge for the time they are held (``rate_limit.subscription_points_per_minute`` each),
    drawn for all of a token's subscriptions at once every ``SUBSCRIPTION_CHARGE_SECONDS`` of the
    service's clock (``charge_due``, which the change hub runs after each read of the log) and
    when the token's last one ends. When a draw leaves the budget spent, every subscription of
    the token is told (``SubscriptionMeter.spend_out``) and ends with ``RATE_LIMITED``."""

    def __init__(self, service: LicensingService) -> None:
        self.service = service
        self.settings = service.settings.rate_limit
        self._held: dict[int, _HeldSubscriptions] = {}
        # (due_at, token_id), the soonest first; entries whose token moved on are skipped.
        self._due: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        service.change_hub.every_interval(self.charge_due)

    def open(self, meter: SubscriptionMeter) -> bool:
        """Count a subscription of the meter's token, unless the token holds its cap already."""
        now = self.service.clock().timestamp()
        with self._lock:
            held = self._held.get(meter.token_id)
            if held is None:
                held = self._held[meter.token_id] = _HeldSubscriptions(now)
                heapq.heappush(self._due, (held.due_at, meter.token_id))
            elif len(held.meters) >= self.settings.max_subscriptions_per_token:
                return False
            held.accrue(now, self._points_per_second())
            held.meters.add(meter)
            return True

    async def close(self, meter: SubscriptionMeter) -> None:
        """The subscription has ended: its time is owed by the token, drawn now when it was the
        token's last one on this worker."""
        now = self.service.clock().timestamp()
        with self._lock:
            held = self._held.get(meter.token_id)
            if held is None or meter not in held.meters:
                return
            held.accrue(now, self._points_per_second())
            held.meters.discard(meter)
            if held.meters:
                return
            del self._held[meter.token_id]
            points, over = math.floor(held.owed), now - held.owed_since
        if points >= 1:
            await self._draw(meter.token_id, points, over)

    async def charge_due(self) -> None:
        """Draw what each token whose turn has come owes; tell its subscriptions when that
        leaves its budget spent."""
        now = self.service.clock().timestamp()
        draws: list[tuple[int, int, float]] = []
        with self._lock:
            while self._due and self._due[0][0] <= now:
                due_at, token_id = heapq.heappop(self._due)
                held = self._held.get(token_id)
                if held is None or held.due_at != due_at:
                    continue
                held.accrue(now, self._points_per_second())
                points = math.floor(held.owed)
                if points >= 1:
                    draws.append((token_id, points, now - held.owed_since))
                    held.owed -= points
                    held.owed_since = now
                held.due_at = now + SUBSCRIPTION_CHARGE_SECONDS
                heapq.heappush(self._due, (held.due_at, token_id))
        # Several at once: on PostgreSQL each is a round trip from a worker thread, and a token
        # drawn late pays for all the time since, which a bucket full at its cap may not hold.
        limiter = anyio.CapacityLimiter(CONCURRENT_CHARGES)
        async with anyio.create_task_group() as group:
            for token_id, points, over in draws:
                group.start_soon(self._charge, token_id, points, over, limiter)

    async def _charge(
        self, token_id: int, points: int, over: float, limiter: anyio.CapacityLimiter
    ) -> None:
        async with limiter:
            receipt = await self._draw(token_id, points, over)
        if receipt is None or receipt.remaining > 0:
            return
        with self._lock:
            held = self._held.get(token_id)
            meters = list(held.meters) if held is not None else []
        for meter in meters:
            meter.spend_out()

    def _points_per_second(self) -> float:
        return self.settings.subscription_points_per_minute / 60

    async def _draw(self, token_id: int, points: int, over_seconds: float) -> Receipt | None:
        """Draw what the token's subscriptions accrued over the last ``over_seconds``: as if
        drawn as it accrued, so that a draw made late (a busy database) takes no more."""
        budgets = token_budgets(self.service)
        if budgets is None or self._points_per_second() <= 0:
            return None
        return await budgets.spend_held_async(token_id, points, over_seconds=over_seconds)


_subscription_charges: WeakKeyDictionary[LicensingService, SubscriptionCharges] = (
    WeakKeyDictionary()
)


def subscription_charges(service: LicensingService) -> SubscriptionCharges:
    """This worker's ``SubscriptionCharges`` for ``service`` (one per service, made on first use)."""
    with _budgets_lock:
        charges = _subscription_charges.get(service)
        if charges is None:
            charges = _subscription_charges[service] = SubscriptionCharges(service)
        return charges


class SubscriptionMeter:
    """One open subscription: counted against its token's cap on this worker while it is open,
    and charged for the time it is held with the token's other subscriptions
    (``SubscriptionCharges``). Once a charge finds the token's budget spent, ``check`` raises a
    coded error, which ends it, and ``on_spent`` (when set) is called to wake it."""

    def __init__(self, service: LicensingService, token_id: int) -> None:
        self.token_id = token_id
        self.charges = subscription_charges(service)
        self.spent = False
        self.on_spent: Callable[[], None] | None = None
        self.opened = False

    async def __aenter__(self) -> SubscriptionMeter:
        if not self.charges.open(self):
            raise ClientError(TOO_MANY_SUBSCRIPTIONS)
        self.opened = True
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.opened:
            self.opened = False
            with anyio.CancelScope(shield=True):
                await self.charges.close(self)

    def spend_out(self) -> None:
        """The token's budget is spent: this subscription is to end."""
        self.spent = True
        if self.on_spent is not None:
            self.on_spent()

    def check(self) -> None:
        """Raise ``RATE_LIMITED`` once a charge has found the token's budget spent."""
        if self.spent:
            raise ClientError(SUBSCRIPTION_BUDGET_SPENT)


# --- Costly operations: one at a time per token ---------------------------------------------------

# Operations that read the whole roster (graph/cost.py ROSTER_SCANS) a token may run at once on a
# worker: its budget already pays for each, and this keeps one token from occupying several of
# the threads every district's requests share.
COSTLY_OPERATIONS_PER_TOKEN = 1
COSTLY_OPERATION_RUNNING = ErrorCode.COSTLY_OPERATION_RUNNING
# What a refused costly operation's Retry-After says: they take well under a second.
COSTLY_RETRY_AFTER_SECONDS = 1
_running_costly: WeakKeyDictionary[LicensingService, _PerTokenCounts] = WeakKeyDictionary()


class CostlyOperationSlot:
    """The right to run one costly operation for a token: ``taken`` is False when the token is
    already running as many as it may, and the operation is then to be refused."""

    def __init__(self, service: LicensingService, token_id: int) -> None:
        with _budgets_lock:
            self.running = _running_costly.setdefault(service, _PerTokenCounts())
        self.token_id = token_id
        self.taken = self.running.open(token_id, COSTLY_OPERATIONS_PER_TOKEN)

    def release(self) -> None:
        if self.taken:
            self.taken = False
            self.running.close(self.token_id)

    @staticmethod
    def refusal_message() -> str:
        return (
            "This API token is already running a query that reads the whole roster "
            "(countReview); one runs at a time per token. Retry when it has been answered."
        )

    @staticmethod
    def refusal_extensions() -> dict[str, object]:
        return {
            "code": COSTLY_OPERATION_RUNNING,
            "retryAfterSeconds": COSTLY_RETRY_AFTER_SECONDS,
        }
