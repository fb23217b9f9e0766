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

The uncertainty
---------------
The same points that gave the rate say how sure it is (``uncertainty_of``): how far the daily
counts scatter around the fitted line (the residual standard deviation ``s``, on ``n - 2``
degrees of freedom) and so the standard error of the slope, ``se = s / sqrt(Sxx)``. ``h`` days
ahead, the band around the projection is ``expected +- t * sqrt((se * h)^2 + 2 * s^2)`` (``t`` the
Student t value for a two-sided 90% interval): the first term is the rate being off, which grows
with the distance, the second that both today's count and the count that day scatter around the
trend. Today (``h = 0``) the band is today's count. The earliest and latest dates for the limit
are the first days the band's high and low edges reach the total. This is plain floating point
(a square root), unlike the exact dates above, and needs at least 3 points.
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
    "CONFIDENCE",
    "DEFAULT_LEAD_TIME_DAYS",
    "LIMIT_HORIZON_DAYS",
    "MAX_BREAK_DAYS",
    "MAX_PROJECTION_DAYS",
    "MIN_RATE_POINTS",
    "MIN_SHIFT_STUDENTS",
    "MIN_UNCERTAINTY_POINTS",
    "RATE_WINDOW_DAYS",
    "SETTLE_DAYS",
    "DailyPoint",
    "Forecast",
    "ProjectedDay",
    "Term",
    "Uncertainty",
    "critical_value",
    "forecast",
    "least_squares_slope",
    "projection",
    "terms_of",
    "uncertainty_of",
]

DEFAULT_LEAD_TIME_DAYS = 21  # the product doc's "2-4 weeks of lead time"
BREAK_SHARE = Fraction(5, 100)
MIN_SHIFT_STUDENTS = 10
MAX_BREAK_DAYS = 120
SETTLE_DAYS = 7
RATE_WINDOW_DAYS = 28
MIN_RATE_POINTS = 14
CONFIDENCE = 0.9  # the band holds the count about 9 times in 10 if growth goes on as measured
MIN_UNCERTAINTY_POINTS = 3  # a scatter around a line needs a third point
LIMIT_HORIZON_DAYS = 5 * 365 + 1  # how far the band's low edge is followed to the limit
MAX_PROJECTION_DAYS = 365  # the most days of projection the API hands out
# Student's t, two-sided 90% (the 0.95 quantile), by degrees of freedom (n - 2). The window holds
# at most RATE_WINDOW_DAYS points, so 26 is the most used; beyond the table the normal's 1.645.
T_90 = (
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
    1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
    1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
)  # fmt: skip
T_90_LARGE = 1.645


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
class Uncertainty:
    """How sure the measured rate is: how far the counts it was measured on scatter around its
    line. See "The uncertainty" in this module's docstring."""

    scatter: float  # s: the daily counts' standard deviation around the line, in students
    rate_standard_error: float  # se: the rate's standard error, in students per day
    critical_value: float  # t: Student's t for a two-sided CONFIDENCE interval on n - 2 d.f.
    based_on_days: int  # n

    def margin(self, days_ahead: int) -> float:
        """Half the band's width ``days_ahead`` days after the latest count (0 on its day)."""
        if days_ahead <= 0:
            return 0.0
        rate_part = self.rate_standard_error * days_ahead
        return self.critical_value * math.sqrt(rate_part * rate_part + 2 * self.scatter**2)

    def rate_range(self, rate: Fraction) -> tuple[float, float]:
        """The slowest and fastest growth per day the band allows for."""
        spread = self.critical_value * self.rate_standard_error
        return float(rate) - spread, float(rate) + spread


@dataclass(frozen=True)
class ProjectedDay:
    """One day of the projection: the expected count and the band around it (never below 0)."""

    day: date
    low: float
    expected: float
    high: float


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
    # None with fewer than MIN_UNCERTAINTY_POINTS points in the window: no band can be measured.
    uncertainty: Uncertainty | None = None
    limit_reached_earliest: date | None = None  # set when limit_reached_on and uncertainty are
    limit_reached_latest: date | None = None  # None too when the band's low edge never gets there
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


def critical_value(degrees_of_freedom: int) -> float:
    """Student's t for a two-sided 90% interval."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees_of_freedom must be at least 1, not {degrees_of_freedom}")
    if degrees_of_freedom <= len(T_90):
        return T_90[degrees_of_freedom - 1]
    return T_90_LARGE


def uncertainty_of(points: Sequence[DailyPoint]) -> Uncertainty | None:
    """How sure the least-squares rate of ``points`` is (the points the rate was measured on);
    None with fewer than MIN_UNCERTAINTY_POINTS points."""
    n = len(points)
    if n < MIN_UNCERTAINTY_POINTS:
        return None
    origin = points[0].day
    xs = [(point.day - origin).days for point in points]
    ys = [point.active_students for point in points]
    # Centred sums, exact: Sxx = sum (x - mean x)^2, and so on.
    sxx = Fraction(n * sum(x * x for x in xs) - sum(xs) ** 2, n)
    if sxx == 0:
        raise ValueError("the rate's points must be on at least two different days")
    sxy = Fraction(n * sum(x * y for x, y in zip(xs, ys, strict=True)) - sum(xs) * sum(ys), n)
    syy = Fraction(n * sum(y * y for y in ys) - sum(ys) ** 2, n)
    residual_squares = max(syy - sxy * sxy / sxx, Fraction(0))
    variance = residual_squares / (n - 2)
    return Uncertainty(
        scatter=math.sqrt(variance),
        rate_standard_error=math.sqrt(variance / sxx),
        critical_value=critical_value(n - 2),
        based_on_days=n,
    )


def projection(result: Forecast, days: int) -> list[ProjectedDay]:
    """The expected count and its band for the latest count's day and the ``days`` days after;
    empty when there is no history or no band could be measured."""
    if days < 0:
        raise ValueError(f"days cannot be negative, not {days}")
    if result.current_on is None or result.uncertainty is None:
        return []
    rate = float(result.growth_per_day)
    projected: list[ProjectedDay] = []
    for ahead in range(days + 1):
        expected = result.current + rate * ahead
        margin = result.uncertainty.margin(ahead)
        projected.append(
            ProjectedDay(
                day=result.current_on + timedelta(days=ahead),
                low=max(expected - margin, 0.0),
                expected=max(expected, 0.0),
                high=max(expected + margin, 0.0),
            )
        )
    return projected


def _limit_range(
    *, current: int, total: int, rate: Fraction, days_to_limit: int, uncertainty: Uncertainty
) -> tuple[int, int | None]:
    """Days after the latest count until the band's high edge, and its low edge, reach
    ``total``; the second is None when the low edge does not within LIMIT_HORIZON_DAYS."""
    per_day = float(rate)
    earliest = days_to_limit  # the expected line is there by then, so the high edge is too
    for ahead in range(1, min(days_to_limit, LIMIT_HORIZON_DAYS + 1)):
        if current + per_day * ahead + uncertainty.margin(ahead) >= total:
            earliest = ahead
            break
    slowest, _fastest = uncertainty.rate_range(rate)
    if slowest <= 0:
        return earliest, None  # the band allows for no growth at all
    for ahead in range(days_to_limit, LIMIT_HORIZON_DAYS + 1):
        if current + per_day * ahead - uncertainty.margin(ahead) >= total:
            return earliest, ahead
    return earliest, None


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
    earliest: date | None = None
    latest_on: date | None = None
    uncertainty = uncertainty_of(window)
    if latest is not None and rate > 0 and not already_at_limit:
        days_to_limit = math.ceil((total - current) / rate)
        limit_reached_on = latest.day + timedelta(days=days_to_limit)
        start_purchasing_on = limit_reached_on - timedelta(days=lead_time_days)
        if uncertainty is not None:  # else too few points to say how sure: no range
            soonest, slowest = _limit_range(
                current=current,
                total=total,
                rate=rate,
                days_to_limit=days_to_limit,
                uncertainty=uncertainty,
            )
            earliest = latest.day + timedelta(days=soonest)
            latest_on = None if slowest is None else latest.day + timedelta(days=slowest)

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
        uncertainty=uncertainty,
        limit_reached_earliest=earliest,
        limit_reached_latest=latest_on,
    )
    return replace(result, explanation=explain(result, today=today))


def _explain_range(result: Forecast) -> list[str]:
    """The sentence on the band around the limit's date; none when the counts grew evenly."""
    earliest, latest = result.limit_reached_earliest, result.limit_reached_latest
    if earliest is None or (earliest == latest == result.limit_reached_on):
        return []
    if latest is None:
        return [
            f"The count grew unevenly: the limit could be reached as early as "
            f"{earliest.isoformat()}, but at the slow end of the range it may take more than "
            "five years or never happen, so no latest date can be given."
        ]
    return [
        f"The count grew unevenly: 9 times in 10 the limit is reached between "
        f"{earliest.isoformat()} and {latest.isoformat()}."
    ]


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
        sentences.extend(_explain_range(result))
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
