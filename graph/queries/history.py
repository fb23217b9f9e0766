"""Queries about the past and the coming months: the daily usage history and the forecast."""

from __future__ import annotations

import datetime

import strawberry
from strawberry.types import Info

from graph.errors import ClientError
from graph.permissions import CanViewLicense
from licensing.domain import forecast as forecasting
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem
from licensing.storage.history import MAX_HISTORY_DAYS
from licensing.storage.history import UsageDay as UsageDayView

MAX_LEAD_TIME_DAYS = 365


@strawberry.type(description="A district's counts on one day, as recorded by the daily snapshot.")
class UsageDay:
    day: datetime.date = strawberry.field(description="The day, in the district's time zone.")
    active_students: int = strawberry.field(description="Students counting against the license.")
    inactive_students: int
    staff: int
    devices: int
    total: int | None = strawberry.field(
        description="The licensed total that day; null before any license was received."
    )

    @classmethod
    def from_view(cls, view: UsageDayView) -> UsageDay:
        return cls(
            day=view.day,
            active_students=view.active_students,
            inactive_students=view.inactive_students,
            staff=view.staff,
            devices=view.devices,
            total=view.total,
        )


@strawberry.type(
    description="One day of the forecast's projection: the expected count of active students "
    "and the band around it (the count stays in it 9 times in 10 if growth goes on as measured)."
)
class ProjectedDay:
    day: datetime.date = strawberry.field(description="The day, in the district's time zone.")
    low: float = strawberry.field(description="The band's low edge, in active students.")
    expected: float = strawberry.field(description="The expected count at the measured rate.")
    high: float = strawberry.field(description="The band's high edge, in active students.")

    @classmethod
    def from_projected(cls, projected: forecasting.ProjectedDay) -> ProjectedDay:
        return cls(
            day=projected.day, low=projected.low, expected=projected.expected, high=projected.high
        )


@strawberry.type(
    description="When active students will reach the licensed total at the recent growth rate, "
    "measured within school terms (summer breaks and autumn intakes are left out)."
)
class Forecast:
    growth_per_day: float = strawberry.field(
        description="Active students gained per calendar day during term (negative if shrinking)."
    )
    limit_reached_on: datetime.date | None = strawberry.field(
        description="When active students reach the total; null when not growing or already there."
    )
    start_purchasing_on: datetime.date | None = strawberry.field(
        description="limitReachedOn minus the lead time; may be past (start now)."
    )
    threshold_for_lead_time: int = strawberry.field(
        description="The alert threshold (students remaining) that gives the lead time."
    )
    historical_maximum: int = strawberry.field(description="The highest active count recorded.")
    historical_maximum_on: datetime.date = strawberry.field(
        description="The first day the highest count was recorded."
    )
    already_at_limit: bool = strawberry.field(description="Every license is in use now.")
    based_on_days: int = strawberry.field(description="Daily counts the growth rate came from.")
    explanation: str = strawberry.field(description="The forecast in sentences.")
    limit_reached_earliest: datetime.date | None = strawberry.field(
        description="The first day the projection's band reaches the total (the soonest the "
        "limit is likely reached); null when limitReachedOn is, or with fewer than 3 daily counts "
        "of term to measure the band on."
    )
    limit_reached_latest: datetime.date | None = strawberry.field(
        description="The first day the band's low edge reaches the total (the latest the limit "
        "is likely reached); null when limitReachedOn is, or when growth is too uneven to rule "
        "out that it stalls (the low edge stays below the total for five years)."
    )
    growth_per_day_low: float | None = strawberry.field(
        description="The slowest growth per day the band allows for; null with fewer than 3 "
        "daily counts to measure it on."
    )
    growth_per_day_high: float | None = strawberry.field(
        description="The fastest growth per day the band allows for; null as growthPerDayLow."
    )
    result: strawberry.Private[forecasting.Forecast]

    @strawberry.field(
        description="The expected count and its band for today and each of the `days` days "
        "after (1 to 365); empty when there are fewer than 3 daily counts of term to measure on."
    )
    def projection(self, days: int = 90) -> list[ProjectedDay]:
        _check_range("days", days, 1, forecasting.MAX_PROJECTION_DAYS)
        return [
            ProjectedDay.from_projected(day) for day in forecasting.projection(self.result, days)
        ]

    @classmethod
    def from_forecast(cls, result: forecasting.Forecast) -> Forecast:
        if result.historical_maximum_on is None:  # the service always adds today's live count
            raise ValueError("a forecast needs at least one daily count")
        rate_range = (
            result.uncertainty.rate_range(result.growth_per_day)
            if result.uncertainty is not None
            else (None, None)
        )
        return cls(
            growth_per_day=float(result.growth_per_day),
            limit_reached_on=result.limit_reached_on,
            start_purchasing_on=result.start_purchasing_on,
            threshold_for_lead_time=result.threshold_for_lead_time,
            historical_maximum=result.historical_maximum,
            historical_maximum_on=result.historical_maximum_on,
            already_at_limit=result.already_at_limit,
            based_on_days=result.based_on_days,
            explanation=result.explanation,
            limit_reached_earliest=result.limit_reached_earliest,
            limit_reached_latest=result.limit_reached_latest,
            growth_per_day_low=rate_range[0],
            growth_per_day_high=rate_range[1],
            result=result,
        )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ClientError(
            Problem(
                ErrorCode.INVALID_ARGUMENT, f"{name} must be between {low} and {high}, not {value}."
            )
        )


@strawberry.type
class HistoryQuery:
    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="The daily counts of the last `days` days, oldest first (days without a "
        "snapshot are absent). At most 800 days are kept.",
    )
    async def usage_history(self, info: Info, days: int = 90) -> list[UsageDay] | None:
        _check_range("days", days, 1, MAX_HISTORY_DAYS)
        views = await info.context.service.usage_history(info.context.principal.district_id, days)
        return [UsageDay.from_view(view) for view in views]

    @strawberry.field(
        permission_classes=[CanViewLicense],
        description="When the license runs out at the recent growth rate, and when to start "
        "purchasing given `leadTimeDays` (the product doc advises 2-4 weeks). Null while the "
        "district has no license (see licenseUnavailable).",
    )
    async def forecast(
        self, info: Info, lead_time_days: int = forecasting.DEFAULT_LEAD_TIME_DAYS
    ) -> Forecast | None:
        _check_range("leadTimeDays", lead_time_days, 1, MAX_LEAD_TIME_DAYS)
        result = await info.context.service.forecast(
            info.context.principal.district_id, lead_time_days
        )
        return Forecast.from_forecast(result) if result is not None else None
