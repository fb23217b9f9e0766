"""One watcher of the change log per worker process, for all of its live subscriptions.

A subscription (graph/subscriptions.py) follows its district here rather than reading the database
itself. Every ``live_poll_seconds`` the hub reads the change log once for every district: one
statement on its primary key, for the entries above the last one it saw, which finds nothing while
nothing changes. It sorts what it found by district and topic, reads what the followers of each district that
changed need, once for all of them (``DistrictChange``: the district's state, and who can still
sign in to it), and hands it to those that follow one of the topics that changed; all changes
seen in one read reach a follower as one. While nothing changes no subscription runs, and the
worker makes one statement an interval whatever their number.

Changes made by any worker, host or command arrive, as the log is the database's. On PostgreSQL
an entry's id is taken when it is written and the entry is seen once its transaction commits, so
an entry of one district may appear after a newer id of another was seen: the ids below the
newest seen that were missing are looked for again at each read, for ``SKIPPED_ID_PATIENCE_SECONDS``
(a rolled-back transaction leaves its ids unused for good).

The hub runs while its worker holds at least one follower: started by the first, stopped when
the last one leaves, and by the app's lifespan at shutdown. Other per-worker steps that must run
now and then while subscriptions are open (charging their time, graph/rate_limit.py) run after
each read (``every_interval``, each in a task of its own), rather than on a timer of each
subscription. A follower that must act at a given time with or without a change (a subscription
whose token expires) gives it as ``due_at``: the hub keeps one heap of these times, looks at its
top after each read, and wakes each follower once its time has come; until then it costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import anyio

from db.session import Database
from licensing.settings import Settings
from licensing.storage.changes import ChangeNote, changes_after, newest_change_id
from licensing.storage.dashboard_sessions import LiveSignIns

logger = logging.getLogger("licensing.live")

Step = Callable[[], Awaitable[None]]
# Runs a short read (given the argument) where the service runs its per-request reads.
ReadRunner = Callable[[Callable[[Any], Any], Any], Awaitable[Any]]

# Entries read at most per statement; a larger burst is read in several, all before waking.
READ_LIMIT = 1_000
# How long an id missing below the newest seen is looked for: longer than any transaction takes
# between writing its change and committing.
SKIPPED_ID_PATIENCE_SECONDS = 600.0
# At most this many missing ids are looked for at once (the oldest are given up first).
MAX_SKIPPED_IDS = 1_000


# The district's state as the service reads it (licensing.orchestration.service.DistrictState).
State = TypeVar("State")


@dataclass(frozen=True)
class DistrictChange(Generic[State]):
    """What a district's followers get after it changed, read once for all of them: its state
    after the change, and who can still sign in to it (to stop those who cannot)."""

    state: State
    sign_ins: LiveSignIns


class _District(Generic[State]):
    """The followers of one district on this worker, and the topics changed but not yet
    handed to them."""

    def __init__(self, district_id: int) -> None:
        self.id = district_id
        self.followers: set[Follower[State]] = set()
        self.pending_topics: set[str] = set()
        self.preparing = False
        # Reads of its state begun; a follower joining during one reads a newer state itself.
        self.reads_begun = 0


class Follower(Generic[State]):
    """One subscription's view of its district's changes on ``topics``."""

    def __init__(self, district: _District[State], topics: Collection[str]) -> None:
        self.district_id = district.id
        self.topics = frozenset(topics)
        self.joined = district.reads_begun
        self.left = False
        self._change: DistrictChange[State] | None = None
        self._interrupted = False
        self._due = False
        # A bare future rather than an event: 10,000 followers wake at once after a change.
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, change: DistrictChange[State]) -> None:
        self._change = change
        self._wake()

    def interrupt(self) -> None:
        """Make ``next_change`` return now and from now on (the subscription is to end)."""
        self._interrupted = True
        self._wake()

    def remind(self) -> None:
        """Make the next ``next_change`` return, without a change if none came: the time the
        follower gave the hub (``due_at``) has come."""
        self._due = True
        self._wake()

    @property
    def interrupted(self) -> bool:
        """Whether ``interrupt`` was called: the subscription is to end."""
        return self._interrupted

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_change(self) -> DistrictChange[State] | None:
        """Wait for the district's next change on the followed topics (the latest, when several
        came since the last call); None once ``interrupt`` was called, and once after
        ``remind``."""
        while self._change is None and not self._interrupted and not self._due:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._due = False
        if self._interrupted:
            return None
        change, self._change = self._change, None
        return change


class ChangeHub(Generic[State]):
    """This worker's one reader of the change log, for every follower it holds."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        run_read: ReadRunner,
        read_state: Callable[[int], Awaitable[State]],
        read_sign_ins: Callable[[int], Awaitable[LiveSignIns]],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.database = database
        self._run_read = run_read
        self._read_state = read_state
        self._read_sign_ins = read_sign_ins
        self._districts: dict[int, _District[State]] = {}
        self._followers = 0
        self._task: asyncio.Task[None] | None = None
        self._starting: anyio.Event | None = None
        self._cursor = 0
        # Ids below the cursor not seen yet, with when they were first missed (anyio's clock).
        self._skipped: dict[int, float] = {}
        self._steps: list[Step] = []
        self._running_steps: dict[Step, asyncio.Task[None]] = {}
        self._preparing: set[asyncio.Task[None]] = set()
        self._failing_reads = False
        # (due_at, order of arrival, follower) of the followers with a due time, earliest first;
        # a follower that left is dropped when it reaches the top, or when most entries are such.
        self._due: list[tuple[datetime, int, Follower[State]]] = []
        self._arrivals = itertools.count()
        self._with_due_time = 0

    @property
    def followers(self) -> int:
        return self._followers

    @asynccontextmanager
    async def follow(
        self, district_id: int, topics: Collection[str], *, due_at: datetime | None = None
    ) -> AsyncIterator[Follower[State]]:
        """Follow the district's changes on ``topics`` for the block. Every change committed
        after the block has started wakes the follower (one read earlier ones may too); so does,
        once, the first read after ``due_at`` (by the service's clock)."""
        district = self._districts.get(district_id)
        if district is None:
            district = self._districts[district_id] = _District[State](district_id)
        follower = Follower[State](district, topics)
        district.followers.add(follower)
        self._followers += 1
        if due_at is not None:
            heapq.heappush(self._due, (due_at, next(self._arrivals), follower))
            self._with_due_time += 1
        try:
            await self._ensure_running()
            yield follower
        finally:
            follower.left = True
            if due_at is not None:
                self._with_due_time -= 1
                self._drop_left_due_times()
            district.followers.discard(follower)
            if not district.followers and self._districts.get(district_id) is district:
                del self._districts[district_id]
            self._followers -= 1
            if self._followers == 0:
                self._due.clear()
                self._stop_soon()

    def pending_due_times(self) -> int:
        """How many due times the hub holds (those of followers that left included)."""
        return len(self._due)

    def _drop_left_due_times(self) -> None:
        # Entries of followers that left wait for their time at the top of the heap; when they
        # are most of it (subscriptions open and close long before their tokens expire), it is
        # rebuilt from the others, so it never grows past twice the followers with a due time.
        if len(self._due) > 2 * self._with_due_time + 16:
            self._due = [entry for entry in self._due if not entry[2].left]
            heapq.heapify(self._due)

    def _remind_due(self) -> None:
        """Wake each follower whose due time has come (once: its entry leaves the heap)."""
        if not self._due:
            return
        now = self.clock()
        while self._due and self._due[0][0] <= now:
            follower = heapq.heappop(self._due)[2]
            if not follower.left:
                follower.remind()

    def every_interval(self, step: Step) -> None:
        """Run ``step`` after each read of the log while followers are held (once if added
        again). Its failures are logged; they stop nothing."""
        if step not in self._steps:
            self._steps.append(step)

    async def stop(self) -> None:
        """Stop reading (the app's shutdown); the next follower starts it again."""
        for task in self._stop_soon():
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop_soon(self) -> list[asyncio.Task[None]]:
        tasks = [self._task] if self._task is not None else []
        tasks += [task for task in self._running_steps.values() if not task.done()]
        tasks += [task for task in self._preparing if not task.done()]
        self._task = None
        self._running_steps.clear()
        self._preparing.clear()
        for task in tasks:
            task.cancel()
        return tasks

    async def _ensure_running(self) -> None:
        while self._task is None:
            if self._starting is not None:
                await self._starting.wait()
                continue
            self._starting = starting = anyio.Event()
            try:
                # Before any follower reads its first state: every later change is above it.
                self._cursor = await self._run_read(self._read_newest, None)
                self._skipped.clear()
                self._task = asyncio.get_running_loop().create_task(
                    self._watch(), name="change-hub"
                )
            finally:
                self._starting = None
                starting.set()

    def _read_newest(self, _: object) -> int:
        with self.database.read_connection() as connection:
            return newest_change_id(connection)

    async def _watch(self) -> None:
        failing = False
        while True:
            await anyio.sleep(self.settings.live_poll_seconds)
            try:
                notes = await self._read_changes()
            except Exception as error:  # unreachable: the next interval tries again
                if not failing:
                    logger.warning(
                        "Live updates could not read the change log (%s); retrying every %s s.",
                        type(getattr(error, "orig", error)).__name__,
                        self.settings.live_poll_seconds,
                    )
                failing = True
            else:
                if failing:
                    logger.info("Live updates read the change log again.")
                failing = False
                self._dispatch(notes)
            self._remind_due()
            self._start_steps()

    def _start_steps(self) -> None:
        """Start each step not still running from an earlier interval, in a task of its own:
        a slow one (draws on a busy database) never holds the next read of the log back."""
        loop = asyncio.get_running_loop()
        for step in self._steps:
            running = self._running_steps.get(step)
            if running is None or running.done():
                self._running_steps[step] = loop.create_task(self._run_step(step))

    @staticmethod
    async def _run_step(step: Step) -> None:
        try:
            await step()
        except Exception:
            logger.exception("A live-update step failed; it runs again next interval.")

    async def _read_changes(self) -> list[ChangeNote]:
        """Every entry not seen yet, in as many statements as it takes (one, but for a burst)."""
        found: list[ChangeNote] = []
        while True:
            cursor, skipped = self._cursor, list(self._skipped)

            def read(_: object, cursor: int = cursor, skipped: list[int] = skipped) -> Any:
                with self.database.read_connection() as connection:
                    return changes_after(
                        connection, after_id=cursor, skipped_ids=skipped, limit=READ_LIMIT
                    )

            notes: list[ChangeNote] = await self._run_read(read, None)
            self._advance(notes)
            found.extend(notes)
            if len(notes) < READ_LIMIT:
                return found

    def _advance(self, notes: list[ChangeNote]) -> None:
        now = anyio.current_time()
        for note in notes:
            self._skipped.pop(note.id, None)
        above = {note.id for note in notes if note.id > self._cursor}
        if above:
            newest = max(above)
            for missing in range(max(self._cursor + 1, newest - MAX_SKIPPED_IDS), newest):
                if missing not in above:
                    self._skipped[missing] = now
            self._cursor = newest
        for missing, since in list(self._skipped.items()):
            if now - since > SKIPPED_ID_PATIENCE_SECONDS:
                del self._skipped[missing]
        while len(self._skipped) > MAX_SKIPPED_IDS:
            del self._skipped[min(self._skipped)]

    def _dispatch(self, notes: list[ChangeNote]) -> None:
        for note in notes:
            district = self._districts.get(note.district_id)
            if district is not None:
                district.pending_topics.add(note.topic)
        # Those whose last reads failed are tried again too.
        for district in self._districts.values():
            if district.pending_topics and not district.preparing:
                district.preparing = True
                task = asyncio.get_running_loop().create_task(self._prepare(district))
                self._preparing.add(task)
                task.add_done_callback(self._preparing.discard)

    async def _prepare(self, district: _District[State]) -> None:
        """Read what the district's followers need after its change, once, and hand it to those
        following a topic that changed; again while changes keep coming in the meantime."""
        try:
            while district.pending_topics:
                topics, district.pending_topics = district.pending_topics, set()
                district.reads_begun += 1
                begun = district.reads_begun
                try:
                    sign_ins = await self._read_sign_ins(district.id)
                    state = await self._read_state(district.id)
                except Exception as error:  # unreachable: tried again at the next interval
                    district.pending_topics |= topics
                    if not self._failing_reads:
                        logger.warning(
                            "Live updates could not read a district's state (%s); trying again.",
                            type(getattr(error, "orig", error)).__name__,
                        )
                    self._failing_reads = True
                    return
                self._failing_reads = False
                change = DistrictChange[State](state=state, sign_ins=sign_ins)
                for follower in list(district.followers):
                    # One that joined during the reads read a state at least as new itself.
                    if follower.joined < begun and not follower.topics.isdisjoint(topics):
                        follower.deliver(change)
        finally:
            district.preparing = False
