"""Each API token's budget of cost points: a token bucket per token, kept in this worker's memory.

A bucket holds up to ``rate_limit.bucket_size`` points and gets ``rate_limit.restore_rate``
points back each second. A request is let through when its token's bucket holds at least its
cost (and at least one point), and its cost is then drawn; otherwise it is refused with HTTP 429
and the whole seconds after which the bucket will hold enough (``Retry-After``). GraphQL
operations cost what graph/cost.py computes; other endpoints (the report download) a fixed cost.

The buckets live in process memory, one set per worker: a database write per request would cost
more than most requests. With N workers a token can therefore spend up to N times the configured
rate on one host (docs/limits.md says how to size the settings for that). Buckets are keyed by the
token's id, so the Licensing tab's session cookie and a script using the same token share one.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

from starlette.responses import JSONResponse

from licensing.service import LicensingService
from licensing.settings import RateLimitSettings

# Beyond this many tokens, the least recently used bucket is forgotten. A bucket left alone that
# long has refilled, and a full bucket is what a forgotten token gets back: nothing is lost.
MAX_TRACKED_TOKENS = 10_000
RATE_LIMITED = "RATE_LIMITED"
# The policy's name in the RateLimit-Policy and RateLimit response headers.
POLICY_NAME = "token-budget"


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

    def spend(self, token_id: int, cost: int) -> Receipt:
        """Take ``cost`` points for work already done, down to an empty bucket at most."""
        with self._lock:
            bucket = self._refilled(token_id)
            bucket.level = max(0.0, bucket.level - cost)
            return self._receipt(bucket, cost, retry_after=None)

    def _refilled(self, token_id: int) -> _Bucket:
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
        elapsed = max(0.0, now - bucket.updated)
        bucket.level = min(float(self.bucket_size), bucket.level + elapsed * self.restore_rate)
        bucket.updated = max(now, bucket.updated)
        return bucket

    def _receipt(self, bucket: _Bucket, cost: int, *, retry_after: int | None) -> Receipt:
        return Receipt(
            allowed=retry_after is None,
            requested=cost,
            remaining=math.floor(bucket.level),
            bucket_size=self.bucket_size,
            restore_rate=self.restore_rate,
            retry_after_seconds=retry_after,
            seconds_until_full=math.ceil((self.bucket_size - bucket.level) / self.restore_rate),
        )


_budgets: WeakKeyDictionary[LicensingService, TokenBudgets | None] = WeakKeyDictionary()
_budgets_lock = threading.Lock()


def token_budgets(service: LicensingService) -> TokenBudgets | None:
    """This worker's token budgets for ``service`` (one per service, made on first use), or None
    when rate limiting is turned off. The service's clock drives the refill, so tests can move it."""
    try:
        return _budgets[service]
    except KeyError:
        pass
    with _budgets_lock:
        if service not in _budgets:
            _budgets[service] = _new_budgets(service.settings.rate_limit, service.clock)
        return _budgets[service]


def _new_budgets(settings: RateLimitSettings, clock: Callable[[], datetime]) -> TokenBudgets | None:
    if not settings.enabled:
        return None
    return TokenBudgets(
        bucket_size=settings.bucket_size,
        restore_rate=settings.restore_rate,
        clock=lambda: clock().timestamp(),
    )


def rate_limited_response(receipt: Receipt) -> JSONResponse:
    """HTTP 429 for a request its token's budget cannot pay, before any of its work is done."""
    return JSONResponse(
        {
            "errors": [
                {"message": receipt.refusal_message(), "extensions": receipt.refusal_extensions()}
            ]
        },
        status_code=429,
        headers=receipt.headers(),
    )
