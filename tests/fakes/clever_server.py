"""A Clever Data API v3.1 server for tests: users, range-based paging and rate limits.

``GET /v3.1/users`` with ``Authorization: Bearer <district token>`` answers
``{"data": [{"data": <user>, "uri": "/v3.1/users/<id>"}], "links": [...]}``: users sorted by
ascending id, ``role`` filters by role, ``limit`` (default 100, at most 10000: above it 413) and
``starting_after`` page through them, and ``links`` has ``rel`` "next" (a relative URI) when the
page is full, as Clever does (so the last full page leads to an empty one). ``max_page_size``
caps pages below the ``limit`` asked for (a short page that still has a next link), and
``next_host`` makes next links absolute URIs on another server. Only ``/v3.1`` is served.

Events (``GET /v3.1/events``): each change made through ``create``, ``update`` and ``remove`` is
an event ``{"id", "type": "users.created|updated|deleted", "created", "data": {"object": <user>}}``
(``previous_attributes`` too for updates), listed oldest first as ``{"data": [{"data": <event>,
"uri"}], "links"}``; ``starting_after`` an event id pages on (an id Clever no longer keeps answers
404, as after its 30 days: ``expire_events``), ``ending_before=last`` gives the newest, ``limit``
as for users and ``events_page_size`` caps a page. The history starts with one event of another
kind (``initial_event_id``), as a district's does. Its requests are logged in ``event_requests``.

Every response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(Unix seconds) for a fixed window of ``window_seconds`` per token; a request over the limit gets
HTTP 429 (with ``Retry-After`` only when ``retry_after`` is set; Clever documents the reset header).

Faults, by page number (0 is the first page): ``storm_429`` (how many of the next requests get
429), ``fail_500_once``, ``malformed_at``, ``die_after_page`` (every later request answers 503)
and ``kill_after_page`` (the server stops after that page). ``requests`` logs every request.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class CleverUser:
    """One Clever user with a ``student`` (or another) role."""

    id: str
    role: str = "student"
    school: str = "sch-oak"
    schools: tuple[str, ...] = ()
    sis_id: str | None = None
    state_id: str | None = None
    student_number: str | None = None
    grade: str | None = "7"
    graduation_year: str | None = "2031"
    enrollments: tuple[tuple[str, str | None], ...] = ()  # (school, end_date)
    first: str = "Given"
    last: str = "Family"
    last_modified: str = "2026-08-15T09:30:00.000Z"

    def as_json(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "school": self.school,
            "schools": list(self.schools or (self.school,)),
            "sis_id": self.sis_id,
            "state_id": self.state_id,
            "student_number": self.student_number,
            "credentials": {"district_username": f"{self.first.lower()}.{self.last.lower()}"},
            "legacy_id": self.id,
        }
        if self.role == "student":
            details |= {
                "grade": self.grade,
                "graduation_year": self.graduation_year,
                "enrollments": [
                    {"school": school, "start_date": "2025-08-20", "end_date": end}
                    for school, end in self.enrollments
                ],
            }
        return {
            "id": self.id,
            "district": "district-1",
            "email": f"{self.id}@example.org",
            "name": {"first": self.first, "middle": "", "last": self.last},
            "roles": {self.role: {k: v for k, v in details.items() if v is not None}},
            "created": "2025-08-01T00:00:00.000Z",
            "last_modified": self.last_modified,
        }


def sample_users() -> list[CleverUser]:
    """The Clever fixture. Counted: c-01, c-02, c-03 = c-04 (one person): 3 (c-05 is a teacher,
    never listed under role=student)."""
    return [
        CleverUser("c-01", school="sch-oak", schools=("sch-oak", "sch-river"), sis_id="ST-1001",
                   state_id="STATE-1001", first="Ava", last="Garcia"),
        CleverUser("c-02", school="sch-river", sis_id="ST-2002", student_number="2002",
                   enrollments=(("sch-river", "2027-06-15"),)),
        # The same person under two Clever ids, with the same state id: counted once.
        CleverUser("c-03", sis_id="ST-3003", state_id="STATE-3003"),
        CleverUser("c-04", school="sch-river", sis_id="ST-3003-B", state_id="STATE-3003"),
        CleverUser("c-05", role="teacher", sis_id="EMP-1"),
    ]  # fmt: skip


SAMPLE_ACTIVE_STUDENTS = 3


def numbered_users(count: int, *, prefix: str = "u-") -> list[CleverUser]:
    return [
        CleverUser(f"{prefix}{number:05d}", sis_id=f"{prefix.upper()}{number:05d}")
        for number in range(1, count + 1)
    ]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    page: int | None
    status: int
    at: float
    reset: float | None  # the X-RateLimit-Reset it was sent


@dataclass
class FakeClever:
    users: list[CleverUser] = field(default_factory=sample_users)
    token: str = "district-token"
    rate_limit: int = 1200
    window_seconds: float = 60
    retry_after: str | None = None
    storm_429: int = 0
    fail_500_once: set[int] = field(default_factory=set)
    malformed_at: set[int] = field(default_factory=set)
    die_after_page: int | None = None
    kill_after_page: int | None = None
    drop_from_next: tuple[str, ...] = ()  # query parameters a next link leaves out
    max_page_size: int | None = None  # serve at most this many users a page, whatever the limit
    next_host: str | None = None  # e.g. "https://elsewhere.example": absolute next links there
    requests: list[Seen] = field(default_factory=list)
    events_page_size: int | None = None
    event_requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._window_reset: float | None = None
        self._used = 0
        self._dead = False
        self._events: list[dict[str, Any]] = []
        self._event_number = 0
        self.initial_event_id = self._event("schools.updated", {"id": "sch-oak"})
        self.app = Starlette(
            routes=[
                Route("/v3.1/users", self.list_users, methods=["GET"]),
                Route("/v3.1/events", self.list_events, methods=["GET"]),
            ]
        )

    # Changes, as a district's SIS makes them through Clever: each is an event.

    def _event(self, kind: str, user: dict[str, Any], **more: Any) -> str:
        self._event_number += 1
        event_id = f"{self._event_number:024x}"
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        self._events.append(
            {"id": event_id, "type": kind, "created": created, "data": {"object": user, **more}}
        )
        return event_id

    def create(self, user: CleverUser) -> None:
        self.users.append(user)
        self._event("users.created", user.as_json())

    def update(self, user: CleverUser) -> None:
        self.users = [user if known.id == user.id else known for known in self.users]
        self._event("users.updated", user.as_json(), previous_attributes={})

    def remove(self, user_id: str) -> None:
        (user,) = [known for known in self.users if known.id == user_id]
        self.users.remove(user)
        self._event("users.deleted", user.as_json())

    def expire_events(self) -> None:
        """Forget every event so far, as Clever does after 30 days."""
        self._events.clear()

    async def list_events(self, request: Request) -> Response:
        query = dict(request.query_params)

        def answer(response: Response) -> Response:
            self.event_requests.append(
                Seen(request.url.path, query, None, response.status_code, time.time(), None)
            )
            return response

        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return answer(JSONResponse({"message": "Unauthorized"}, status_code=401))
        headers, allowed = self._rate_headers()
        if not allowed:
            return answer(
                JSONResponse({"message": "Rate limit exceeded"}, status_code=429, headers=headers)
            )
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return answer(JSONResponse({"message": "bad limit"}, status_code=400, headers=headers))
        if limit > MAX_LIMIT:
            return answer(JSONResponse({"message": "too large"}, status_code=413, headers=headers))
        served = min(limit, self.events_page_size or limit)
        ids = [event["id"] for event in self._events]
        if query.get("ending_before") == "last":
            page = self._events[-served:]
        else:
            after = query.get("starting_after")
            if after is not None and after not in ids:
                return answer(
                    JSONResponse(
                        {"message": f"event {after} not found"}, status_code=404, headers=headers
                    )
                )
            start = ids.index(after) + 1 if after is not None else 0
            page = self._events[start : start + served]
        links = [{"rel": "self", "uri": f"/v3.1/events?{urlencode(query)}"}]
        if page and len(page) == served and query.get("ending_before") != "last":
            following = {"limit": query.get("limit", str(DEFAULT_LIMIT))}
            following["starting_after"] = page[-1]["id"]
            links.append({"rel": "next", "uri": f"/v3.1/events?{urlencode(following)}"})
        body = {
            "data": [{"data": event, "uri": f"/v3.1/events/{event['id']}"} for event in page],
            "links": links,
        }
        return answer(JSONResponse(body, headers=headers))

    def pages(self, *, status: int | None = None) -> list[int | None]:
        return [seen.page for seen in self.requests if status is None or seen.status == status]

    def kill(self) -> None:
        self._dead = True
        self.app.state.served.stop()

    def _rate_headers(self) -> tuple[dict[str, str], bool]:
        """Count this request in the current window: its headers, and whether it is allowed."""
        now = time.time()
        if self._window_reset is None or now >= self._window_reset:
            self._window_reset = float(math.ceil(now + self.window_seconds))
            self._used = 0
        self._used += 1
        allowed = self._used <= self.rate_limit
        headers = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_limit - self._used, 0)),
            "X-RateLimit-Reset": str(int(self._window_reset)),
        }
        return headers, allowed

    async def list_users(self, request: Request) -> Response:
        query = dict(request.query_params)
        page_number: int | None = None

        def answer(response: Response) -> Response:
            reset = response.headers.get("X-RateLimit-Reset")
            self.requests.append(
                Seen(
                    request.url.path,
                    query,
                    page_number,
                    response.status_code,
                    time.time(),
                    float(reset) if reset else None,
                )
            )
            return response

        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return answer(JSONResponse({"message": "Unauthorized"}, status_code=401))
        headers, allowed = self._rate_headers()
        if not allowed:
            if self.retry_after:
                headers["Retry-After"] = self.retry_after
            return answer(
                JSONResponse({"message": "Rate limit exceeded"}, status_code=429, headers=headers)
            )
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return answer(JSONResponse({"message": "bad limit"}, status_code=400, headers=headers))
        if limit > MAX_LIMIT:
            return answer(JSONResponse({"message": "too large"}, status_code=413, headers=headers))
        users = sorted(self.users, key=lambda user: user.id)
        if "role" in query:
            users = [user for user in users if user.role == query["role"]]
        after = query.get("starting_after")
        start = sum(1 for user in users if after is not None and user.id <= after)
        page_number = start // max(min(limit, self.max_page_size or limit), 1)
        if self._dead:
            return answer(
                JSONResponse({"message": "unavailable"}, status_code=503, headers=headers)
            )
        if self.storm_429 > 0:
            self.storm_429 -= 1
            if self.retry_after:
                headers["Retry-After"] = self.retry_after
            return answer(
                JSONResponse({"message": "Rate limit exceeded"}, status_code=429, headers=headers)
            )
        if page_number in self.fail_500_once:
            self.fail_500_once.discard(page_number)
            return answer(Response("Internal Server Error", status_code=500, headers=headers))
        served = min(limit, self.max_page_size or limit)
        page = users[start : start + served]
        links = [{"rel": "self", "uri": f"/v3.1/users?{urlencode(query)}"}]
        if page and len(page) == served:
            left_out = ("starting_after", "ending_before", *self.drop_from_next)
            following = {k: v for k, v in query.items() if k not in left_out}
            following["starting_after"] = page[-1].id
            links.append(
                {"rel": "next", "uri": f"{self.next_host or ''}/v3.1/users?{urlencode(following)}"}
            )
        if page_number in self.malformed_at:
            response: Response = Response(
                '{"data": [{"data": {"id": "c-', media_type="application/json", headers=headers
            )
        else:
            body = {
                "data": [
                    {"data": user.as_json(), "uri": f"/v3.1/users/{user.id}"} for user in page
                ],
                "links": links,
            }
            response = JSONResponse(body, headers=headers)
        if self.die_after_page is not None and page_number >= self.die_after_page:
            self._dead = True
        if self.kill_after_page is not None and page_number >= self.kill_after_page:
            self._dead = True
            self.app.state.served.request_stop()
        return answer(response)
