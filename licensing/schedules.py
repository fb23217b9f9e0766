"""When scheduled roster syncs and license refreshes run: cron expressions read in the district's
time zone, a fixed delay per job that spreads the fleet out, and quiet hours when they never run.

A run's time always comes from the cron expression, never from when the last run ended, so a
nightly sync stays at night however long it takes. The expression is evaluated on the district's
wall clock, so daylight saving time moves nothing:

- a time that does not exist on the spring-forward day (02:30 when the clock jumps from 02:00 to
  03:00) runs once, as much later as the clock jumped (at 03:30);
- a time that happens twice on the fall-back day (01:30) runs once, the first time.

A run that falls inside the quiet hours is moved to their end (plus the job's delay, so the fleet
does not start together when they end); several runs due inside one quiet period run once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

CRON_FIELDS = 5
# Clock changes move the wall clock by at most two hours: runs are looked for this far around.
_DST_MARGIN = timedelta(hours=2, minutes=1)
# Enough for a run every minute across the margins; an expression needing more has no next run.
_MAX_SLOTS = 2_000
_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def cron_expression(text: str) -> str:
    """The expression with its spaces tidied, or ValueError saying what is wrong with it."""
    expression = " ".join(text.split())
    example = 'for instance "0 2 * * *" (02:00 every day)'
    if not expression:
        raise ValueError(f"the cron expression is empty; give one, {example}")
    if not expression.startswith("@") and len(expression.split()) != CRON_FIELDS:
        raise ValueError(
            f"{expression!r} is not a cron expression of five fields (minute, hour, day of "
            f"the month, month, day of the week), {example}"
        )
    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression, {example}")
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ValueError(f"{expression!r} never matches a date (such as February 30)") from None
    return expression


@dataclass(frozen=True)
class QuietHours:
    """A daily period, on the district's wall clock, when scheduled syncs do not run. It may
    cross midnight ("22:00-06:00"); the start is inside it, the end is not."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"07:00-16:00"``, or ValueError saying what is wrong."""
        found = _QUIET_HOURS.match(text)
        if found is None:
            raise ValueError(
                f"{text!r} is not a period of the day; write it as HH:MM-HH:MM, for instance "
                '"07:00-16:00"'
            )
        start_hour, start_minute, end_hour, end_minute = (int(part) for part in found.groups())
        for hour, minute in ((start_hour, start_minute), (end_hour, end_minute)):
            if hour > 23 or minute > 59:
                raise ValueError(f"{text!r}: {hour:02d}:{minute:02d} is not a time of day")
        start, end = time(start_hour, start_minute), time(end_hour, end_minute)
        if start == end:
            raise ValueError(
                f"{text!r} starts and ends at the same time: nothing would ever run. Leave "
                "quiet_hours empty for no quiet hours"
            )
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def end_of(self, wall: datetime) -> datetime | None:
        """The end of the quiet period ``wall`` (a naive wall-clock time) falls in, or None
        when it falls in none."""
        moment = wall.time()
        if not self.contains(moment):
            return None
        day = wall.date()
        if self.start > self.end and moment >= self.start:
            day += timedelta(days=1)  # a period crossing midnight ends the next day
        return datetime.combine(day, self.end)


def quiet_hours(text: str | None) -> QuietHours | None:
    """The quiet hours a setting names; None for an empty setting."""
    if text is None or not text.strip():
        return None
    return QuietHours.parse(text)


def spread_delay(name: str, window: timedelta) -> timedelta:
    """A job's fixed delay after its cron time, from 0 up to ``window``: derived from the job's
    name, so every district's jobs start at their own, stable time."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(fraction * window.total_seconds()))


@dataclass(frozen=True)
class CronSchedule:
    """One job's schedule: its cron expression on the district's clock, its delay, its quiet
    hours."""

    expression: str
    time_zone: str
    delay: timedelta = timedelta(0)
    quiet: QuietHours | None = None

    @property
    def key(self) -> str:
        """Everything a run's time depends on, stored with the job to notice a change."""
        quiet = str(self.quiet) if self.quiet else "none"
        return (
            f"{self.expression} | {self.time_zone} | +{int(self.delay.total_seconds())}s "
            f"| quiet {quiet}"
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def next_run(self, after: datetime) -> datetime:
        """The first run strictly after ``after`` (timezone-aware), in UTC."""
        zone = self.zone
        start = _wall(after - self.delay, zone) - _DST_MARGIN
        slots = croniter(self.expression, start)
        best: datetime | None = None
        best_slot = start
        for _ in range(_MAX_SLOTS):
            slot: datetime = slots.get_next(datetime)
            if best is not None and slot > best_slot + _DST_MARGIN:
                return best
            run = self.allowed(_moment(slot, zone) + self.delay)
            if run > after and (best is None or run < best):
                best, best_slot = run, slot
        if best is None:
            raise ValueError(f"{self.expression!r} has no run after {after.isoformat()}")
        return best

    def allowed(self, moment: datetime) -> datetime:
        """``moment`` (timezone-aware), or when it falls in the quiet hours, their end plus the
        job's delay (their end when the delay would reach the next quiet period), in UTC."""
        moment = moment.astimezone(UTC)
        if self.quiet is None:
            return moment
        zone = self.zone
        end = self.quiet.end_of(_wall(moment, zone))
        if end is None:
            return moment
        ended = _moment(end, zone)
        delayed = ended + self.delay
        return ended if self.quiet.contains(_wall(delayed, zone).time()) else delayed


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time ``moment`` is in ``zone``."""
    return moment.astimezone(zone).replace(tzinfo=None)


def _moment(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time of ``zone`` as a UTC moment: the first of two on the fall-back
    day, and moved later by the clock's jump when it does not exist on the spring-forward day."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
