"""Clever: students from the Clever Data API v3.1, read with a district's bearer token.

``GET <base_url>/v3.1/users?role=student&limit=N``, then each ``links`` entry with ``rel`` "next"
(a URI relative to the server, ``starting_after`` the last id) until there is none or a page is
empty, as Clever's paging documentation says: a short page alone never ends the listing, and a
next link to another server is refused (the token is never sent there). Clever lists only the people a district shares now, so every record is reported as
``active``; a student who is no longer listed is simply not reported, and the host's
replace-on-sync removes them ("students who vanish count as removed").

Delta syncs use Clever's events API (``GET <base_url>/v3.1/events``), which keeps 30 days of
changes. A full sync first asks for the newest event (``ending_before=last&limit=1``) and hands
its id to the host as the cursor, so a change made while the users are listed is read again by
the next delta. A delta reads ``/v3.1/events?starting_after=<cursor>`` page by page (``links``
rel "next", until there is none or a page is empty) and keeps the ``users.created``,
``users.updated`` and ``users.deleted`` events, the last one of each user winning: a user who
has a student role is a record as the listing gives it, a user without one (now only a teacher)
or deleted is removed. The id of the last event read is the next cursor. When Clever no longer
has the cursor's event (past its 30 days) or the application may not read events, the source
reads the whole roster instead; a district without events enabled simply gets full syncs.

Clever allows 1200 requests a minute per token and says so in ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (Unix seconds). When a response leaves no
request, the next one waits until the reset. A 429 is retried by ``plugins.http`` after
``Retry-After`` or, when Clever sends none, once ``X-RateLimit-Reset`` has passed; 5xx are retried
with backoff and jitter. Each page is retried on its own, so a failure never restarts the listing.

Options (``[districts.<slug>.roster_sources.<name>.options]``):

- ``token`` (required): the district's bearer token;
- ``base_url``: ``https://api.clever.com`` by default (a pasted ``.../v3.1`` or ``.../v3.1/users``
  is read as the same server);
- ``profile``: ``clever``, the only one (vendor profiles are the OneRoster REST source's);
- ``page_size``: users per request, 1000 by default (Clever accepts at most 10000);
- ``person_key_fields``: the student fields that identify a person across sources, first present
  wins: ``["state_id", "sis_id", "student_number"]`` by default; Clever's ``id`` when none is.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import httpx
from pydantic import model_validator

from manage1to1_plugins import (
    DistrictRef,
    NetworkRetry,
    PluginHost,
    RemovedRecord,
    RosterDelta,
    RosterFileError,
    RosterItem,
    RosterSource,
    RowProblem,
    SourceError,
    SourceOptions,
    StudentRecord,
    SyncCursor,
    SyncState,
    hookimpl,
)
from manage1to1_plugins.fields import checked_base_url
from manage1to1_plugins.fields import day as _date
from manage1to1_plugins.fields import describe_error as _describe
from manage1to1_plugins.fields import text as _text
from manage1to1_plugins.fields import timestamp as _timestamp

DEFAULT_BASE_URL = "https://api.clever.com"
USERS_PATH = "/v3.1/users"
EVENTS_PATH = "/v3.1/events"
# How a cursor this source wrote starts: the id of the last event read follows (none: no event
# existed yet, and the next delta reads the events from the oldest Clever keeps).
CURSOR_PREFIX = "event:"
USER_EVENTS = ("users.created", "users.updated", "users.deleted")
# A pasted address may go on with an API version and a collection: the server is what precedes.
API_VERSION_PATH = re.compile(r"/v\d+(\.\d+)?(/[A-Za-z_]+)?/?$")
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
PERSON_KEY_FIELDS = ("state_id", "sis_id", "student_number")
MAX_REPORTED_PROBLEMS = 1000
# Clever's window is one minute: a reset further away than this is a clock problem, not a limit.
MAX_RATE_LIMIT_WAIT_SECONDS = 61.0
# Sleeping a little past the reset second keeps the next request on the right side of it.
RESET_MARGIN_SECONDS = 0.05
# Clever's role words in the host's vocabulary, for a user without a student role.
ROLE_WORDS = {
    "student": "student",
    "teacher": "teacher",
    "staff": "staff",
    "district_admin": "districtadministrator",
    "contact": "guardian",
}


@dataclass(frozen=True)
class CleverConfig:
    """The options, checked and with their defaults: what one reading of Clever uses."""

    base_url: str
    token: str
    page_size: int
    person_key_fields: tuple[str, ...]

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> CleverConfig:
        profile = str(options.get("profile") or "clever").strip().lower()
        if profile != "clever":
            raise SourceError(
                f"Clever: profile {profile!r} is not Clever's; vendor profiles such as "
                'powerschool belong to the OneRoster REST source (kind = "oneroster_rest").'
            )
        token = _text(options.get("token"))
        if not token:
            raise SourceError("Clever needs the district's bearer token in option token.")
        base_url = checked_base_url(
            options.get("base_url") or DEFAULT_BASE_URL,
            where="Clever: base_url",
            carries="the token",
        )
        parts = urlsplit(base_url)
        base_url = urlunsplit(
            (parts.scheme, parts.netloc, API_VERSION_PATH.sub("", parts.path), "", "")
        )
        page_size = options.get("page_size", DEFAULT_PAGE_SIZE)
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            raise SourceError(
                f"Clever: page_size must be a whole number from 1 to {MAX_PAGE_SIZE}, "
                f"not {page_size!r}."
            )
        fields = options.get("person_key_fields", PERSON_KEY_FIELDS)
        if not isinstance(fields, (list, tuple)) or not all(isinstance(n, str) for n in fields):
            raise SourceError(
                "Clever: person_key_fields must be a list of student fields, "
                'e.g. ["state_id", "sis_id"].'
            )
        return cls(
            base_url=base_url, token=token, page_size=page_size, person_key_fields=tuple(fields)
        )


class CleverOptions(SourceOptions):
    """The options of a Clever roster source (see the module's docstring)."""

    profile: str | None = None
    token: str | None = None
    base_url: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    person_key_fields: tuple[str, ...] = tuple(PERSON_KEY_FIELDS)

    @model_validator(mode="before")
    @classmethod
    def _as_clever_reads_them(cls, options: Any) -> Any:
        # The same checks, with the same words, as a fetch makes.
        if isinstance(options, Mapping):
            try:
                CleverConfig.read(options)
            except SourceError as error:
                raise ValueError(str(error)) from None
        return options


class CleverSource:
    name = "clever"
    description = "Students the district shares through Clever (Data API v3.1)."
    options_model: ClassVar[type[SourceOptions]] = CleverOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def fetch_students(
        self,
        *,
        district: DistrictRef,
        options: CleverOptions | Mapping[str, Any],
        sync_state: SyncState | None = None,
    ) -> Awaitable[AsyncIterator[RosterItem] | RosterDelta]:
        config = CleverConfig.read(CleverOptions.parse(options).model_dump())
        cursor = sync_state.cursor if sync_state else None
        return _Sync(self.host, config).start(cursor)


class RateLimitRetry(NetworkRetry):
    """The project's retry policy, but a 429 without ``Retry-After`` waits for Clever's
    ``X-RateLimit-Reset`` (capped like any backoff) rather than only backing off."""

    async def asleep(self, response: httpx.Response | Exception) -> None:
        wait = self._reset_wait(response)
        if wait is None:
            await super().asleep(response)
            return
        await anyio.sleep(wait)
        self.elapsed_sleep += wait

    def sleep(self, response: httpx.Response | Exception) -> None:
        wait = self._reset_wait(response)
        if wait is None:
            super().sleep(response)
            return
        time.sleep(wait)
        self.elapsed_sleep += wait

    def _reset_wait(self, response: httpx.Response | Exception) -> float | None:
        wait = _reset_wait(response) if isinstance(response, httpx.Response) else None
        if wait is None:
            return None
        wait = min(wait, self.max_backoff_wait)
        if self.total_timeout is not None:
            wait = min(wait, max(0.0, self.total_timeout - self.elapsed_sleep))
        return wait


def rate_limit_retry(host: PluginHost) -> RateLimitRetry:
    """The host's retry policy for Clever, as a RateLimitRetry."""
    base = host.retry_policy()
    return RateLimitRetry(
        total=base.total,
        allowed_methods=base.allowed_methods,
        status_forcelist=base.status_forcelist,
        retry_on_exceptions=base.retryable_exceptions,
        backoff_factor=base.backoff_factor,
        respect_retry_after_header=base.respect_retry_after_header,
        max_backoff_wait=base.max_backoff_wait,
        backoff_jitter=base.backoff_jitter,
        total_timeout=base.total_timeout,
    )


def _reset_wait(response: httpx.Response) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` for a 429 that has no ``Retry-After``."""
    if response.status_code != 429 or response.headers.get("Retry-After", "").strip():
        return None
    reset = _epoch(response.headers.get("X-RateLimit-Reset"))
    if reset is None:
        return None
    return min(max(reset - time.time(), 0.0) + RESET_MARGIN_SECONDS, MAX_RATE_LIMIT_WAIT_SECONDS)


class _Sync:
    def __init__(self, host: PluginHost, config: CleverConfig) -> None:
        self.host = host
        self.config = config
        self.position = 0
        self.problems: list[RowProblem] = []
        self.remaining: int | None = None
        self.reset_at: float | None = None

    def _client(self) -> httpx.AsyncClient:
        return self.host.create_client(
            base_url=self.config.base_url,
            headers={
                "Authorization": f"Bearer {self.config.token}",
                "Accept": "application/json",
            },
            retry=rate_limit_retry(self.host),
        )

    async def start(self, cursor: str | None) -> AsyncIterator[RosterItem] | RosterDelta:
        """The changes since ``cursor`` when Clever still has its event, else the whole roster."""
        if cursor is None or not cursor.startswith(CURSOR_PREFIX):
            return self.records()
        after = cursor.removeprefix(CURSOR_PREFIX)
        first = _events_uri(after, self.config.page_size)
        async with self._client() as client:
            answer = await self._get(client, first)
        if answer.status_code in (400, 403, 404):
            # The event is past Clever's 30 days, or events are not enabled: read everything.
            return self.records()
        return RosterDelta(self.changes(first))

    async def _newest_event(self, client: httpx.AsyncClient) -> str | None:
        """The cursor of a full sync: the newest event's id before the listing begins, or None
        when the application may not read events (the next sync is then a full one too)."""
        uri = _with_query(EVENTS_PATH, {"ending_before": "last", "limit": "1"})
        response = await self._get(client, uri)
        if response.status_code in (400, 403, 404):
            return None
        events, _next = self._data(response, f"{self.config.base_url}{uri}")
        ids = [_text(_object(_object(item).get("data")).get("id")) for item in events]
        newest = next((event_id for event_id in reversed(ids) if event_id), "")
        return CURSOR_PREFIX + newest

    async def changes(self, first: str) -> AsyncIterator[RosterItem]:
        """Users changed since the cursor's event: the last event of each user wins."""
        latest: dict[str, StudentRecord | RemovedRecord] = {}
        last_event: str | None = None
        async with self._client() as client:
            async for events in self._pages(client, first, _events_next):
                for item in events:
                    event = _object(_object(item).get("data"))
                    last_event = _text(event.get("id")) or last_event
                    change = self._change(event)
                    if change is not None:
                        latest.pop(change.source_id, None)  # kept in the order of last events
                        latest[change.source_id] = change
        if self.problems:
            raise RosterFileError(f"{self.config.base_url}{EVENTS_PATH}", self.problems)
        for change in latest.values():
            yield change
        if last_event is not None:
            yield SyncCursor(CURSOR_PREFIX + last_event)

    def _change(self, event: dict[str, Any]) -> StudentRecord | RemovedRecord | None:
        """A user event as a change of the roster (None for other events)."""
        kind = _text(event.get("type"))
        if kind not in USER_EVENTS:
            return None
        user = _object(_object(event.get("data")).get("object"))
        self.position += 1
        user_id = _text(user.get("id"))
        if not user_id:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(RowProblem(self.position, "id", f"{kind}: the user has no id"))
            return None
        if kind == "users.deleted" or not isinstance(
            _object(user.get("roles")).get("student"), dict
        ):
            # The listing (role=student) would no longer give them.
            return RemovedRecord(user_id)
        return self._record({"data": user})

    async def records(self) -> AsyncIterator[RosterItem]:
        config = self.config
        async with self._client() as client:
            cursor = await self._newest_event(client)
            first = _with_query(USERS_PATH, {"role": "student", "limit": str(config.page_size)})
            async for users in self._pages(client, first, _next_uri):
                for user in users:
                    self.position += 1
                    record = self._record(user)
                    if record is not None:
                        yield record
        if self.problems:
            raise RosterFileError(f"{config.base_url}{USERS_PATH}", self.problems)
        if cursor is not None:
            yield SyncCursor(cursor)

    async def _pages(
        self,
        client: httpx.AsyncClient,
        first: str,
        following: Callable[[str | None, int], str | None],
    ) -> AsyncIterator[list[Any]]:
        """Each page's items from ``first`` on, to the page Clever links no next page from (or an
        empty one): ``following(next link, page size)`` is the next page's address. A page
        linked twice fails the sync rather than loop."""
        uri: str | None = first
        seen: set[str] = set()
        while uri is not None:
            if uri in seen:
                raise SourceError(f"Clever sent {uri} as the next page twice; nothing was changed.")
            seen.add(uri)
            items, next_uri = await self._page(client, uri)
            yield items
            uri = following(next_uri, self.config.page_size) if items else None

    async def _wait_for_rate_limit(self) -> None:
        if self.remaining is None or self.remaining > 0 or self.reset_at is None:
            return
        wait = min(self.reset_at - time.time(), MAX_RATE_LIMIT_WAIT_SECONDS)
        if wait > 0:
            await anyio.sleep(wait + RESET_MARGIN_SECONDS)

    async def _get(self, client: httpx.AsyncClient, uri: str) -> httpx.Response:
        where = f"{self.config.base_url}{uri}"
        await self._wait_for_rate_limit()
        try:
            response = await client.get(uri)
        except httpx.HTTPError as error:
            raise SourceError(
                f"Clever did not answer {where}: {_describe(error)}. "
                "Nothing was changed; the previous roster is kept."
            ) from None
        self._note_rate_limit(response)
        return response

    async def _page(self, client: httpx.AsyncClient, uri: str) -> tuple[list[Any], str | None]:
        where = f"{self.config.base_url}{uri}"
        response = await self._get(client, uri)
        _check_status(response, where)
        return self._data(response, where)

    def _data(self, response: httpx.Response, where: str) -> tuple[list[Any], str | None]:
        """A page's ``data`` list and its next link (checked to stay on Clever's server)."""
        _check_status(response, where)
        try:
            body = response.json()
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SourceError(
                f"Clever's answer to {where} is not JSON ({error}); nothing was changed."
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise SourceError(
                f'Clever\'s answer to {where} has no "data" list; nothing was changed.'
            )
        links = body.get("links") or []
        next_uri = None
        if isinstance(links, list):
            for link in links:
                if isinstance(link, dict) and link.get("rel") == "next" and link.get("uri"):
                    next_uri = str(link["uri"])
        if next_uri is not None:
            target, ours = urlsplit(next_uri), urlsplit(self.config.base_url)
            if target.netloc and (target.scheme, target.netloc) != (ours.scheme, ours.netloc):
                raise SourceError(
                    f"Clever's next page is on another server ({target.scheme}://"
                    f"{target.netloc}); the district token is not sent there, and nothing was "
                    "changed."
                )
        return data, next_uri

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("X-RateLimit-Remaining", "").strip()
        self.remaining = int(remaining) if remaining.isdigit() else None
        self.reset_at = _epoch(response.headers.get("X-RateLimit-Reset"))

    def _record(self, item: Any) -> StudentRecord | None:
        try:
            return _record(item, self.config.person_key_fields)
        except _BadRecord as bad:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(RowProblem(self.position, bad.column, bad.message))
            return None


class _BadRecord(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: Clever leaves out what it lacks."""
    return value if isinstance(value, dict) else {}


def _record(item: Any, key_fields: Sequence[str]) -> StudentRecord:
    """One element of ``data``: ``{"data": <user>, "uri": ...}`` with the user's ``roles``."""
    user = item.get("data") if isinstance(item, dict) else None
    if not isinstance(user, dict):
        raise _BadRecord(None, f"the element is not a user object: {item!r:.80}")
    source_id = _text(user.get("id"))
    if not source_id:
        raise _BadRecord("id", "the user has no id")
    roles = _object(user.get("roles"))
    student = roles.get("student")
    if isinstance(student, dict):
        role, details = "student", student
    else:
        word = next(iter(roles), None)
        role = ROLE_WORDS.get(word, word) if word else "student"
        details = _object(roles.get(word)) if word else {}
    name = _object(user.get("name"))
    listed_schools = [_text(school) for school in details.get("schools") or ()]
    primary_school = _text(details.get("school"))
    schools = list(dict.fromkeys(school for school in [primary_school, *listed_schools] if school))
    credentials = _object(details.get("credentials"))
    year = _text(details.get("graduation_year"))
    return StudentRecord(
        source_id=source_id,
        role=role,
        status="active",
        enabled=True,
        person_key=next(
            (value for value in (_text(details.get(f)) for f in key_fields) if value), None
        ),
        given_name=_text(name.get("first")),
        family_name=_text(name.get("last")),
        username=_text(credentials.get("district_username")),
        grade=_text(details.get("grade")),
        schools=tuple(schools),
        primary_school=primary_school,
        graduation_year=int(year) if year and year.isdigit() and len(year) == 4 else None,
        enrollment_end=_enrollment_end(details.get("enrollments"), primary_school),
        last_modified=_timestamp(user.get("last_modified") or details.get("last_modified")),
        raw_status=None,
    )


def _enrollment_end(enrollments: Any, primary_school: str | None) -> date | None:
    """The end of the student's enrollment: at the primary school when Clever lists it there,
    else the latest end; None while any such enrollment is open-ended."""
    listed = [entry for entry in enrollments or () if isinstance(entry, dict)]
    at_primary = [entry for entry in listed if _text(entry.get("school")) == primary_school]
    chosen = at_primary or listed
    if not chosen:
        return None
    ends = [_date(entry.get("end_date")) for entry in chosen]
    if any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)


def _next_uri(uri: str | None, page_size: int) -> str | None:
    """Clever's next link, keeping the student filter and page size if the link left them out."""
    if not uri:
        return None
    return _with_query(uri, {"role": "student", "limit": str(page_size)}, keep=True)


def _events_uri(after: str, page_size: int) -> str:
    params = {"limit": str(page_size)}
    if after:
        params["starting_after"] = after
    return _with_query(EVENTS_PATH, params)


def _events_next(uri: str | None, page_size: int) -> str | None:
    if not uri:
        return None
    return _with_query(uri, {"limit": str(page_size)}, keep=True)


def _with_query(uri: str, params: dict[str, str], *, keep: bool = False) -> str:
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in params.items():
        if not keep or name not in query:
            query[name] = value
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


def _check_status(response: httpx.Response, where: str) -> None:
    status = response.status_code
    if status == 200:
        return
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status in (401, 403):
        raise SourceError(
            f"Clever refused the district token ({reason} for {where}): check option token; "
            "the district may have disconnected the application. Nothing was changed."
        )
    if status == 413:
        raise SourceError(f"Clever refused the page size ({reason}): lower option page_size.")
    if status == 429 or status >= 500:
        raise SourceError(
            f"Clever kept failing {where} ({reason}) after every retry. "
            "Nothing was changed; the previous roster is kept."
        )
    raise SourceError(f"Clever answered {where} with {reason}. Nothing was changed.")


def _epoch(value: str | None) -> float | None:
    text = (value or "").strip()
    try:
        return float(text) if text else None
    except ValueError:
        return None


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [CleverSource(host)]
