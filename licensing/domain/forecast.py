"""When will the district run out of licenses? Pure functions over the daily usage history.

Nothing here reads a clock or a database: the caller passes the daily points and "today", and gets
back the growth rate, the projected dates and the threshold that would give enough lead time.

The growth rule
---------------
School counts are seasonal: they drop when a school year ends (graduates, leavers) and jump when
the next one starts (a new intake). A straight line through the last weeks of raw counts would see
the summer as shrinking and the autumn as explosive growth. So the rate is measured only inside
*terms*, and never across a break or a jump. The points, in day order, are read once:

1. **Terms and breaks.** Each term keeps its *level*: the highest count since the term began.
   The *shift* is the larger of 5% of the level and 10 students.
   A point more than the shift below the level starts a **break** (a summer break, or a clean-up
   of more than 5% of the students). The term that ends there is cut back to the last day its count
   stood at its level, so a drop spread over several days is wholly part of the break.
2. **End of a break.** A break ends, and a new term begins at that point, as soon as the count is
   back within the shift of the old level, or has risen by more than the shift above the lowest
   count of the break, or the break has lasted 120 days (longer than any summer).
3. **Jumps.** Within a term, a rise of more than the shift from one point to the next (a new
   intake, a school added) ends the term and begins a new one at the higher count.
4. **Settling.** A term that began after a break or a jump ignores its first 7 days, while the
   intake is still being entered.
5. **The rate** is the least-squares slope, in students per calendar day, of the term's points in
   the 28 days ending on its last point (after settling). The latest term with at least 14 such
   points is used, so during a break, or early in a term, the rate is the one measured at the end
   of the previous term. When no term has 14 points, the latest term with at least 2 points is
   used; with fewer, the rate is 0.

The projection starts from the latest count, on its day: the limit is reached after
``ceil((total - count) / rate)`` days. The date to start purchasing is that date minus the lead
time, and the threshold that gives that lead time is ``ceil(rate * lead_time_days)``, clamped to
0..total. The arithmetic is exact (fractions), so the dates match a hand computation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise

__all__ = [
    "BREAK_SHARE",
    "DEFAULT_LEAD_TIME_DAYS",
    "MAX_BREAK_DAYS",
    "MIN_RATE_POINTS",
    "MIN_SHIFT_STUDENTS",
    "RATE_WINDOW_DAYS",
    "SETTLE_DAYS",
    "DailyPoint",
    "Forecast",
    "Term",
    "forecast",
    "least_squares_slope",
    "terms_of",
]

DEFAULT_LEAD_TIME_DAYS = 21  # the product doc's "2-4 weeks of lead time"
BREAK_SHARE = Fraction(5, 100)
MIN_SHIFT_STUDENTS = 10
MAX_BREAK_DAYS = 120
SETTLE_DAYS = 7
RATE_WINDOW_DAYS = 28
MIN_RATE_POINTS = 14


@dataclass(frozen=True)
class DailyPoint:
    """One day's count of active students, and the licensed total on that day if known."""

    day: date
    active_students: int
    total: int | None = None

    def __post_init__(self) -> None:
        if self.active_students < 0:
            raise ValueError(f"active_students cannot be negative, not {self.active_students}")


@dataclass(frozen=True)
class Term:
    """A run of points between breaks and jumps; only its settled points measure growth."""

    points: tuple[DailyPoint, ...]
    settles: bool  # began after a break or a jump: its first SETTLE_DAYS days are not used

    @property
    def start(self) -> date:
        return self.points[0].day

    @property
    def end(self) -> date:
        return self.points[-1].day

    def rate_window(self) -> tuple[DailyPoint, ...]:
        """The settled points in the RATE_WINDOW_DAYS days ending on the term's last point."""
        settled = self.points
        if self.settles:
            first_used = self.start + timedelta(days=SETTLE_DAYS)
            settled = tuple(point for point in settled if point.day >= first_used)
        if not settled:
            return ()
        window_start = settled[-1].day - timedelta(days=RATE_WINDOW_DAYS - 1)
        return tuple(point for point in settled if point.day >= window_start)


@dataclass(frozen=True)
class Forecast:
    """What the history says about the coming months."""

    growth_per_day: Fraction
    based_on_days: int  # points the rate was measured on
    measured_from: date | None
    measured_to: date | None
    level_before_break: int | None  # set when the latest count is in a break: the term's level

    @property
    def in_break(self) -> bool:
        """The latest count is in a break (a summer, or a clean-up of many students)."""
        return self.level_before_break is not None

    current: int  # the count the projection starts from
    current_on: date | None
    total: int
    already_at_limit: bool
    limit_reached_on: date | None
    start_purchasing_on: date | None
    lead_time_days: int
    threshold_for_lead_time: int
    threshold: int
    threshold_lead_days: int | None  # days of warning the current threshold gives at this rate
    historical_maximum: int
    historical_maximum_on: date | None
    explanation: str = ""


def _shift(level: int) -> Fraction:
    """How far a count must move from the level to count as a break or a jump."""
    return max(BREAK_SHARE * level, Fraction(MIN_SHIFT_STUDENTS))


def terms_of(points: Sequence[DailyPoint]) -> tuple[list[Term], int | None]:
    """Split day-ordered points into terms by the growth rule; also return, when the last point
    is in a break, the level of the term before it (else None)."""
    terms: list[Term] = []
    current: list[DailyPoint] = []
    settles = False
    level = 0
    in_break = False
    break_start: date | None = None
    break_low = 0

    def close_term() -> None:
        if current:
            terms.append(Term(points=tuple(current), settles=settles))

    for point in points:
        count = point.active_students
        if in_break:
            assert break_start is not None
            break_low = min(break_low, count)
            shift = _shift(level)
            if (
                level - count <= shift
                or count - break_low > shift
                or (point.day - break_start).days >= MAX_BREAK_DAYS
            ):
                in_break = False
                current, settles, level = [point], True, count
            continue
        if not current:
            current, settles, level = [point], False, count
            continue
        shift = _shift(level)
        if level - count > shift:
            # A break: the term ends on the last day it stood at its level.
            last_at_level = max(
                i for i, kept in enumerate(current) if kept.active_students == level
            )
            del current[last_at_level + 1 :]
            close_term()
            current = []
            in_break, break_start, break_low = True, point.day, count
        elif count - current[-1].active_students > shift:
            close_term()
            current, settles, level = [point], True, count
        else:
            current.append(point)
            level = max(level, count)
    close_term()
    return terms, level if in_break else None


def least_squares_slope(points: Sequence[DailyPoint]) -> Fraction:
    """The exact least-squares slope of the counts against the day, in students per day."""
    if len(points) < 2:
        raise ValueError("a slope needs at least two points")
    origin = points[0].day
    xs = [(point.day - origin).days for point in points]
    ys = [point.active_students for point in points]
    n = len(points)
    sum_x, sum_y = sum(xs), sum(ys)
    sum_xy = sum(x * y for x, y in zip(xs, ys, strict=True))
    sum_xx = sum(x * x for x in xs)
    denominator = n * sum_xx - sum_x * sum_x
    if denominator == 0:
        raise ValueError("a slope needs points on at least two different days")
    return Fraction(n * sum_xy - sum_x * sum_y, denominator)


def _rate_window(terms: Sequence[Term]) -> tuple[DailyPoint, ...]:
    """The points the rate is measured on: the latest term with enough of them."""
    for minimum in (MIN_RATE_POINTS, 2):
        for term in reversed(terms):
            window = term.rate_window()
            if len(window) >= minimum:
                return window
    return ()


def _format_rate(rate: Fraction) -> str:
    text = f"{float(rate):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count:,} {singular if count == 1 else plural}"


def _sorted_points(points: Iterable[DailyPoint], today: date) -> list[DailyPoint]:
    kept = sorted((point for point in points if point.day <= today), key=lambda p: p.day)
    for earlier, later in pairwise(kept):
        if earlier.day == later.day:
            raise ValueError(f"two points for {later.day.isoformat()}: one point per day")
    return kept


def forecast(
    points: Iterable[DailyPoint],
    *,
    today: date,
    total: int,
    threshold: int,
    lead_time_days: int = DEFAULT_LEAD_TIME_DAYS,
) -> Forecast:
    """Project when active students reach ``total`` and when to start purchasing.

    Points after ``today`` are ignored; the rate follows the growth rule of this module's
    docstring. ``threshold`` is the district's current alert threshold, to say how much warning
    it gives.
    """
    if total < 0:
        raise ValueError(f"total cannot be negative, not {total}")
    if threshold < 0:
        raise ValueError(f"threshold cannot be negative, not {threshold}")
    if lead_time_days < 0:
        raise ValueError(f"lead_time_days cannot be negative, not {lead_time_days}")
    history = _sorted_points(points, today)
    terms, level_before_break = terms_of(history)
    window = _rate_window(terms)
    rate = least_squares_slope(window) if len(window) >= 2 else Fraction(0)

    latest = history[-1] if history else None
    current = latest.active_students if latest else 0
    already_at_limit = current >= total
    limit_reached_on: date | None = None
    start_purchasing_on: date | None = None
    if latest is not None and rate > 0 and not already_at_limit:
        days_to_limit = math.ceil((total - current) / rate)
        limit_reached_on = latest.day + timedelta(days=days_to_limit)
        start_purchasing_on = limit_reached_on - timedelta(days=lead_time_days)

    threshold_for_lead_time = min(max(math.ceil(rate * lead_time_days), 0), total)
    threshold_lead_days = math.floor(threshold / rate) if rate > 0 else None

    maximum, maximum_on = 0, None
    for point in history:
        if maximum_on is None or point.active_students > maximum:
            maximum, maximum_on = point.active_students, point.day

    result = Forecast(
        growth_per_day=rate,
        based_on_days=len(window),
        measured_from=window[0].day if window else None,
        measured_to=window[-1].day if window else None,
        level_before_break=level_before_break,
        current=current,
        current_on=latest.day if latest else None,
        total=total,
        already_at_limit=already_at_limit,
        limit_reached_on=limit_reached_on,
        start_purchasing_on=start_purchasing_on,
        lead_time_days=lead_time_days,
        threshold_for_lead_time=threshold_for_lead_time,
        threshold=threshold,
        threshold_lead_days=threshold_lead_days,
        historical_maximum=maximum,
        historical_maximum_on=maximum_on,
    )
    return replace(result, explanation=explain(result, today=today))


def explain(result: Forecast, *, today: date) -> str:
    """The forecast in sentences, for an administrator."""
    if result.current_on is None:
        return "There is no usage history yet: the forecast starts once daily counts are recorded."
    sentences: list[str] = []
    if result.based_on_days == 0:
        sentences.append("There is not enough history in a term yet to measure growth.")
    else:
        assert result.measured_from is not None and result.measured_to is not None
        sentences.append(
            f"Active students grew by {_format_rate(result.growth_per_day)} per day, measured "
            f"over {_plural(result.based_on_days, 'day', 'days')} of term "
            f"({result.measured_from.isoformat()} to {result.measured_to.isoformat()})."
        )
        if result.based_on_days < MIN_RATE_POINTS:
            sentences.append("That is little history, so treat the rate as rough.")
    if result.in_break:
        sentences.append(
            f"Counts are in a break: {result.current:,} active, down from "
            f"{result.level_before_break:,} before it. The rate is the one measured before the "
            "break, and the projection starts from today's count; if the count returns when "
            "the next term starts, the limit comes sooner."
        )
    if result.already_at_limit:
        sentences.append(
            f"All {_plural(result.total, 'license is', 'licenses are')} in use "
            f"({result.current:,} active): purchase additional licenses now."
        )
    elif result.limit_reached_on is None:
        sentences.append(
            "Active students are not growing, so no date is projected for reaching the limit of "
            f"{result.total:,}."
        )
    else:
        assert result.start_purchasing_on is not None
        sentences.append(
            f"At that pace the {result.total:,} licenses are all used on "
            f"{result.limit_reached_on.isoformat()}."
        )
        lead = _plural(result.lead_time_days, "day", "days")
        if result.start_purchasing_on <= today:
            sentences.append(
                f"With {lead} of lead time, purchasing should have started on "
                f"{result.start_purchasing_on.isoformat()}: start now."
            )
        else:
            sentences.append(
                f"With {lead} of lead time, start purchasing on "
                f"{result.start_purchasing_on.isoformat()}."
            )
        sentences.append(
            f"An alert threshold of {result.threshold_for_lead_time:,} students remaining "
            f"gives that lead time; the current threshold of {result.threshold:,} gives about "
            f"{_plural(result.threshold_lead_days or 0, 'day', 'days')}."
        )
    if result.historical_maximum_on is not None:
        sentences.append(
            f"The highest count recorded is {result.historical_maximum:,}, on "
            f"{result.historical_maximum_on.isoformat()}."
        )
    return " ".join(sentences)
