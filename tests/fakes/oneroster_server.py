"""A OneRoster REST server (1.2 and 1.1) for tests, with the faults real servers have.

It speaks the protocol as a district's SIS does:

- ``POST /token``: OAuth 2 client credentials (RFC 6749 section 4.4): HTTP basic client
  authentication, ``grant_type=client_credentials``, OneRoster scopes; ``invalid_client`` (401),
  ``unsupported_grant_type`` and ``invalid_scope`` (400) as the RFC says. Tokens expire after
  ``token_lifetime_requests`` API requests or ``token_lifetime_seconds``; the first ``token_503``
  token requests fail with 503.
- ``GET /ims/oneroster/rostering/v1p2/{students,teachers}`` with a bearer token;
- ``GET /ims/oneroster/v1p1/{students,teachers}`` signed with OAuth 1.0a (HMAC-SHA256 by default;
  timestamp window and nonce replay checked), or with a bearer token when ``v1p1_auth="oauth2"``;
- paging with ``limit`` (default 100, capped at ``max_page_size``), ``offset`` and ``sort``;
  ``{"users": [...]}`` and the total in ``X-Total-Count`` (``total_count_header``: another name,
  such as ``x-count``, or None for no total at all).

Filters: ``filter=dateLastModified>'<ISO 8601 time>'`` (also ``>=``, ``<``, ``<=``, ``=``,
``!=``, and on ``status``), the OneRoster 1.1/1.2 filter syntax: only the users modified after
that time, ``tobedeleted`` ones included (a deleted user keeps being listed, marked so, as real
servers do for consumers of deltas). A filter it cannot read answers 400. ``add``, ``change``
and ``delete`` edit the roster as the SIS would, stamping ``dateLastModified`` with the time.

Paging modes: ``link_paging`` answers with ``Link: <...?cursor=...>; rel="next"`` (an opaque
cursor, absolute URL; ``link_host`` puts it on another server) and ``rel="first"``, the last page
without a next link; ``overstate_total_by`` states a total larger than what it sends.

Vendor layouts and quirks: ``api_prefix`` serves the collections under a path (Infinite Campus:
``/campus/api``), ``token_path`` and ``token_query`` place the token endpoint and the query it
requires (Infinite Campus: ``/campus/oauth2/token`` with ``appName``); ``client_auth`` is how it
takes the client id and secret (``"basic"``, ``"post"`` as PowerSchool's token endpoint, which
refuses Basic, or ``"either"``); ``session_cookie`` sets a load balancer's cookie with each token
and refuses requests without it (Aeries); ``requires_scope`` refuses a token request that names
no scope (Aeries).

Faults (all on the students collection, by the page's ``offset``): ``storm_429`` (offset -> how
many 429s, with ``Retry-After: retry_after`` when set), ``fail_500_once`` (offsets that fail once),
``malformed_at`` (offsets answered with broken JSON), ``missing_key_at`` (offsets answered without
``users``), ``die_after_offset`` (every request after that page answers 503) and
``kill_after_offset`` (the server process stops after that page) and ``stall_from_offset`` (pages
from that offset on are held until the test sets it back to None: a sync caught mid-way). ``requests`` logs every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import operator
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from authlib.common.encoding import to_bytes
from authlib.oauth1.rfc5849.signature import (
    SIGNATURE_TYPE_HEADER,
    generate_signature_base_string,
)
from authlib.oauth1.rfc5849.util import escape
from authlib.oauth1.rfc5849.wrapper import OAuth1Request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

V1P2 = "/ims/oneroster/rostering/v1p2"
V1P1 = "/ims/oneroster/v1p1"
SCOPE_V1P2 = "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"
SCOPE_V1P1 = "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly"
KNOWN_SCOPES = {
    SCOPE_V1P2,
    "https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly",
    SCOPE_V1P1,
    "https://purl.imsglobal.org/spec/or/v1p1/scope/roster.readonly",
}
DEFAULT_LIMIT = 100
OAUTH1_TIMESTAMP_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Person:
    """One user, independent of the OneRoster version it is written in."""

    sourced_id: str
    role: str = "student"
    status: str = "active"
    enabled: Any = "true"  # as the server sends it: "true", "FALSE", a JSON boolean...
    identifier: str | None = None
    master_identifier: str | None = None
    given_name: str = "Given"
    family_name: str = "Family"
    username: str | None = None
    grades: tuple[str, ...] = ("7",)
    orgs: tuple[str, ...] = ("sch-oak",)
    primary_org: str | None = None
    other_roles: tuple[tuple[str, str], ...] = ()  # (role, org) of secondary roles
    end_date: str | None = None
    modified: str = "2026-08-15T09:30:00.000Z"

    def v1p2(self) -> dict[str, Any]:
        primary_org = self.primary_org or self.orgs[0]
        roles = [
            {
                "roleType": "primary" if org == primary_org else "secondary",
                "role": self.role,
                "org": _ref("orgs", org, "org"),
                **({"endDate": self.end_date} if self.end_date else {}),
            }
            for org in self.orgs
        ]
        roles += [
            {"roleType": "secondary", "role": role, "org": _ref("orgs", org, "org")}
            for role, org in self.other_roles
        ]
        user = {
            "sourcedId": self.sourced_id,
            "status": self.status,
            "dateLastModified": self.modified,
            "metadata": {},
            "userMasterIdentifier": self.master_identifier,
            "username": self.username or self.sourced_id,
            "userIds": [],
            "enabledUser": self.enabled,
            "givenName": self.given_name,
            "familyName": self.family_name,
            "roles": roles,
            "primaryOrg": _ref("orgs", primary_org, "org"),
            "identifier": self.identifier,
            "grades": list(self.grades),
            "agents": [],
            "userProfiles": [],
        }
        return {name: value for name, value in user.items() if value is not None}

    def v1p1(self) -> dict[str, Any]:
        user = {
            "sourcedId": self.sourced_id,
            "status": self.status,
            "dateLastModified": self.modified,
            "metadata": {},
            "username": self.username or self.sourced_id,
            "userIds": [],
            "enabledUser": self.enabled,
            "givenName": self.given_name,
            "familyName": self.family_name,
            "middleName": "",
            "role": self.role,
            "identifier": self.identifier or "",
            "email": "",
            "sms": "",
            "phone": "",
            "agents": [],
            "orgs": [_ref("orgs", org, "org") for org in self.orgs],
            "grades": list(self.grades),
        }
        return user


def _ref(collection: str, sourced_id: str, kind: str) -> dict[str, str]:
    return {"href": f"{V1P2}/{collection}/{sourced_id}", "sourcedId": sourced_id, "type": kind}


def sample_students() -> list[Person]:
    """The roster fixture. Counted: s-001, s-002, s-005 = s-006 (one person), s-007, s-008: 5."""
    return [
        # In two schools, counted once.
        Person("s-001", identifier="ST-1001", master_identifier="STATE-1001",
               orgs=("sch-oak", "sch-river"), given_name="Ava", family_name="Garcia"),
        Person("s-002", identifier="ST-1002", master_identifier="STATE-1002",
               orgs=("sch-river",), grades=("3",)),
        # Being deleted: not counted.
        Person("s-003", status="tobedeleted", identifier="ST-1003", master_identifier="STATE-1003"),
        # Disabled account: not counted.
        Person("s-004", enabled="false", identifier="ST-1004", master_identifier="STATE-1004"),
        # The same person under two ids (a transfer between schools): counted once.
        Person("s-005", identifier="ST-1005", master_identifier="STATE-1005",
               end_date="2027-06-15"),
        Person("s-006", identifier="ST-1005", master_identifier="STATE-1005",
               orgs=("sch-river",)),
        # Letter case and a JSON boolean are read exactly.
        Person("s-007", enabled="TRUE", identifier="ST-1007", master_identifier="STATE-1007"),
        Person("s-008", enabled=True, identifier="ST-1008"),
    ]  # fmt: skip


SAMPLE_ACTIVE_STUDENTS = 5
SAMPLE_INACTIVE_STUDENTS = 2  # s-003 (tobedeleted) and s-004 (disabled)


def sample_teachers() -> list[Person]:
    return [
        Person("t-001", role="teacher", identifier="EMP-1", grades=()),
        # A district administrator who also teaches: listed among teachers by some servers.
        Person("t-002", role="districtAdministrator", identifier="EMP-2", grades=(),
               other_roles=(("teacher", "sch-oak"),)),
    ]  # fmt: skip


def numbered_students(count: int, *, prefix: str = "n-") -> list[Person]:
    return [
        Person(f"{prefix}{number:05d}", identifier=f"{prefix.upper()}{number:05d}")
        for number in range(1, count + 1)
    ]


@dataclass
class Seen:
    """One request the server received, and how it answered."""

    method: str
    path: str
    query: dict[str, str]
    offset: int | None
    limit: int | None
    status: int
    at: float


@dataclass
class _Token:
    value: str
    issued_at: float
    scope: str
    uses: int = 0


@dataclass
class FakeOneRoster:
    students: list[Person] = field(default_factory=sample_students)
    teachers: list[Person] = field(default_factory=sample_teachers)
    client_id: str = "district-client"
    client_secret: str = "district-secret"
    v1p1_auth: str = "oauth1"  # or "oauth2"
    oauth1_signature_methods: tuple[str, ...] = ("HMAC-SHA256",)
    token_lifetime_requests: int | None = None
    token_lifetime_seconds: float = 3600
    token_503: int = 0  # how many token requests fail with 503 first
    max_page_size: int | None = None
    link_paging: bool = False
    link_host: str | None = None  # e.g. "https://elsewhere.example": next links on another server
    overstate_total_by: int = 0
    api_prefix: str = ""
    token_path: str = "/token"
    token_query: dict[str, str] = field(default_factory=dict)
    client_auth: str = "basic"  # "basic", "post" or "either"
    session_cookie: bool = False
    requires_scope: bool = False
    ignores_offset: bool = False  # a broken server that always answers the first page
    total_count_header: str | None = "X-Total-Count"
    storm_429: dict[int, int] = field(default_factory=dict)
    retry_after: str | None = None
    fail_500_once: set[int] = field(default_factory=set)
    malformed_at: set[int] = field(default_factory=set)
    missing_key_at: set[int] = field(default_factory=set)
    die_after_offset: int | None = None
    kill_after_offset: int | None = None
    stall_from_offset: int | None = None  # pages from here wait until it is set back to None
    requests: list[Seen] = field(default_factory=list)
    tokens_issued: int = 0
    granted_scopes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._tokens: dict[str, _Token] = {}
        self._nonces: set[tuple[str, str]] = set()
        self._dead = False
        self._cursors: dict[str, int] = {}
        self._cookies: set[str] = set()
        prefix = self.api_prefix
        self.app = Starlette(
            routes=[
                Route(self.token_path, self.token, methods=["POST"]),
                Route(f"{prefix}{V1P2}/{{collection}}", self.collection_v1p2, methods=["GET"]),
                Route(f"{prefix}{V1P1}/{{collection}}", self.collection_v1p1, methods=["GET"]),
            ]
        )

    # Changes, as the SIS makes them: each stamps dateLastModified with the time.

    def add(self, person: Person, *, teacher: bool = False) -> None:
        people = self.teachers if teacher else self.students
        people.append(replace(person, modified=_now()))

    def change(self, sourced_id: str, **changes: Any) -> None:
        for people in (self.students, self.teachers):
            for index, person in enumerate(people):
                if person.sourced_id == sourced_id:
                    people[index] = replace(person, **changes, modified=_now())
                    return
        raise KeyError(sourced_id)

    def delete(self, sourced_id: str) -> None:
        """Mark the user tobedeleted, as OneRoster servers do before forgetting them."""
        self.change(sourced_id, status="tobedeleted")

    def forget(self, sourced_id: str) -> None:
        """Drop the user without a trace (no tobedeleted record): only a full sync notices."""
        self.students = [p for p in self.students if p.sourced_id != sourced_id]
        self.teachers = [p for p in self.teachers if p.sourced_id != sourced_id]

    def filters(self, path_end: str = "/students") -> list[str | None]:
        """The filter of each request to a collection, in order (None for none)."""
        return [seen.query.get("filter") for seen in self.requests if seen.path.endswith(path_end)]

    # What tests ask about.

    def offsets(self, path_end: str = "/students", *, status: int | None = None) -> list[int]:
        """The offsets requested from a collection, in order (optionally only those answered
        with ``status``)."""
        return [
            seen.offset
            for seen in self.requests
            if seen.path.endswith(path_end)
            and seen.offset is not None
            and (status is None or seen.status == status)
        ]

    def issue_token(self) -> str:
        """A token issued out of band, as a OneRoster proxy hands one to an application."""
        value = secrets.token_urlsafe(24)
        self._tokens[value] = _Token(value, time.monotonic(), SCOPE_V1P2)
        return value

    def kill(self) -> None:
        """Stop the server now, as if its process died."""
        self._dead = True
        self.app.state.served.stop()

    # The token endpoint.

    async def token(self, request: Request) -> Response:
        # RFC 6749 section 4.4.2: an application/x-www-form-urlencoded body.
        if not request.headers.get("Content-Type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return self._log(request, JSONResponse({"error": "invalid_request"}, status_code=400))
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        if self.token_503 > 0:
            self.token_503 -= 1
            return self._log(request, JSONResponse({"error": "unavailable"}, status_code=503))
        for name, value in self.token_query.items():
            if request.query_params.get(name) != value:
                return self._log(
                    request,
                    JSONResponse(
                        {"error": "invalid_request", "error_description": f"unknown {name}"},
                        status_code=400,
                    ),
                )
        basic = _basic_credentials(request.headers.get("Authorization"))
        posted = (form.get("client_id"), form.get("client_secret"))
        client = {"basic": basic, "post": posted}.get(self.client_auth, basic or posted)
        if self.client_auth == "post" and basic is not None:
            client = None  # PowerSchool's endpoint: credentials in the body, never Basic
        if client != (self.client_id, self.client_secret):
            return self._log(
                request,
                JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed.",
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="oneroster"'},
                ),
            )
        if form.get("grant_type") != "client_credentials":
            return self._log(
                request, JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            )
        if self.requires_scope and not form.get("scope"):
            return self._log(request, JSONResponse({"error": "invalid_scope"}, status_code=400))
        requested = str(form.get("scope") or SCOPE_V1P2).split()
        if not requested or not set(requested) <= KNOWN_SCOPES:
            return self._log(request, JSONResponse({"error": "invalid_scope"}, status_code=400))
        value = secrets.token_urlsafe(24)
        self._tokens[value] = _Token(value, time.monotonic(), " ".join(requested))
        self.tokens_issued += 1
        self.granted_scopes.append(" ".join(requested))
        body = {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": int(self.token_lifetime_seconds),
            "scope": " ".join(requested),
        }
        response = JSONResponse(body, headers={"Cache-Control": "no-store"})
        if self.session_cookie:
            node = secrets.token_hex(8)
            self._cookies.add(node)
            response.set_cookie("ARRAffinity", node, httponly=True)
        return self._log(request, response)

    # The rostering collections.

    async def _stall(self, request: Request) -> None:
        """Hold a students page at or after ``stall_from_offset`` until the test lifts it."""
        offset = _int(request.query_params.get("offset"), 0)
        students = request.path_params["collection"] == "students"
        while students and self.stall_from_offset is not None and offset >= self.stall_from_offset:
            await asyncio.sleep(0.05)

    async def collection_v1p2(self, request: Request) -> Response:
        await self._stall(request)
        return self._collection(request, version="1.2", problem=self._bearer_problem(request))

    async def collection_v1p1(self, request: Request) -> Response:
        if self.v1p1_auth == "oauth2":
            problem = self._bearer_problem(request)
        else:
            problem = self._oauth1_problem(request)
        return self._collection(request, version="1.1", problem=problem)

    def _collection(self, request: Request, *, version: str, problem: str | None) -> Response:
        collection = request.path_params["collection"]
        offset = _int(request.query_params.get("offset"), 0)
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            offset = self._cursors.get(cursor, -1)
        limit = _int(request.query_params.get("limit"), DEFAULT_LIMIT)
        students = collection == "students"

        def answer(response: Response) -> Response:
            return self._log(request, response, offset=offset, limit=limit)

        if self._dead:
            return answer(JSONResponse({"imsx_codeMajor": "failure"}, status_code=503))
        if problem is not None:
            return answer(
                JSONResponse(
                    {"imsx_codeMajor": "failure", "imsx_description": problem},
                    status_code=401,
                    headers={
                        "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{problem}"'
                    },
                )
            )
        if collection not in ("students", "teachers"):
            return answer(JSONResponse({"imsx_codeMajor": "failure"}, status_code=404))
        if students and self.storm_429.get(offset, 0) > 0:
            self.storm_429[offset] -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return answer(
                JSONResponse({"imsx_codeMajor": "failure"}, status_code=429, headers=headers)
            )
        if students and offset in self.fail_500_once:
            self.fail_500_once.discard(offset)
            return answer(Response("Internal Server Error", status_code=500))
        if offset < 0 or limit < 1:
            return answer(JSONResponse({"imsx_codeMajor": "failure"}, status_code=400))
        people = list(self.students if students else self.teachers)
        if "filter" in request.query_params:
            keep = _filter(request.query_params["filter"])
            if keep is None:
                return answer(
                    JSONResponse(
                        {"imsx_codeMajor": "failure", "imsx_description": "invalid filter"},
                        status_code=400,
                    )
                )
            people = [person for person in people if keep(person)]
        sort = request.query_params.get("sort")
        if sort == "sourcedId":
            people.sort(key=lambda person: person.sourced_id)
        if self.max_page_size is not None:
            limit = min(limit, self.max_page_size)
        start = 0 if self.ignores_offset else offset
        page = people[start : start + limit]
        headers = {}
        if self.total_count_header:
            headers[self.total_count_header] = str(len(people) + self.overstate_total_by)
        if self.link_paging:
            headers["Link"] = self._links(
                request, offset=offset + len(page), limit=limit, more=start + limit < len(people)
            )
        if students and offset in self.malformed_at:
            response: Response = Response(
                '{"users": [{"sourcedId": "s-0', media_type="application/json", headers=headers
            )
        elif students and offset in self.missing_key_at:
            response = JSONResponse({"data": []}, headers=headers)
        else:
            users = [person.v1p2() if version == "1.2" else person.v1p1() for person in page]
            response = JSONResponse({"users": users}, headers=headers)
        if students and self.die_after_offset is not None and offset >= self.die_after_offset:
            self._dead = True
        if students and self.kill_after_offset is not None and offset >= self.kill_after_offset:
            self._dead = True
            self.app.state.served.request_stop()
        return answer(response)

    def _links(self, request: Request, *, offset: int, limit: int, more: bool) -> str:
        """RFC 8288 links to the first page and, while records remain, the next one."""
        here = self.link_host or f"{request.url.scheme}://{request.url.netloc}"
        first = f'<{here}{request.url.path}?limit={limit}>; rel="first"'
        if not more:
            return first
        cursor = secrets.token_urlsafe(8)
        self._cursors[cursor] = offset
        return f'<{here}{request.url.path}?cursor={cursor}&limit={limit}>; rel="next", {first}'

    def _bearer_problem(self, request: Request) -> str | None:
        if self.session_cookie and request.cookies.get("ARRAffinity") not in self._cookies:
            return "no session cookie: this node does not know the token"
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return "no bearer token"
        token = self._tokens.get(header[len("bearer ") :].strip())
        if token is None:
            return "unknown token"
        token.uses += 1
        if time.monotonic() - token.issued_at > self.token_lifetime_seconds:
            return "the token has expired"
        if self.token_lifetime_requests is not None and token.uses > self.token_lifetime_requests:
            return "the token has expired"
        return None

    def _oauth1_problem(self, request: Request) -> str | None:
        try:
            signed = OAuth1Request(request.method, str(request.url), headers=request.headers)
        except Exception as error:
            return f"malformed OAuth header ({error})"
        params = signed.oauth_params
        if signed.signature_type != SIGNATURE_TYPE_HEADER:
            return "OAuth parameters must be in the Authorization header"
        if params.get("oauth_consumer_key") != self.client_id:
            return "unknown consumer key"
        if params.get("oauth_signature_method") not in self.oauth1_signature_methods:
            return f"signature method {params.get('oauth_signature_method')!r} not accepted"
        timestamp = params.get("oauth_timestamp", "")
        if (
            not timestamp.isdigit()
            or abs(time.time() - int(timestamp)) > OAUTH1_TIMESTAMP_WINDOW_SECONDS
        ):
            return "stale or missing timestamp"
        nonce = params.get("oauth_nonce")
        if not nonce or (timestamp, nonce) in self._nonces:
            return "nonce reused"
        digest = {"HMAC-SHA256": hashlib.sha256, "HMAC-SHA1": hashlib.sha1}[
            params["oauth_signature_method"]
        ]
        key = escape(self.client_secret) + "&"
        expected = base64.b64encode(
            hmac.new(
                to_bytes(key), to_bytes(generate_signature_base_string(signed)), digest
            ).digest()
        ).decode("ascii")
        if not hmac.compare_digest(expected, params.get("oauth_signature", "")):
            return "invalid signature"
        self._nonces.add((timestamp, nonce))
        return None

    def _log(
        self,
        request: Request,
        response: Response,
        *,
        offset: int | None = None,
        limit: int | None = None,
    ) -> Response:
        self.requests.append(
            Seen(
                request.method,
                request.url.path,
                dict(request.query_params),
                offset,
                limit,
                response.status_code,
                time.time(),
            )
        )
        return response


_FILTER = re.compile(r"^\s*(\w+)\s*(>=|<=|!=|>|<|=)\s*'([^']*)'\s*$")
_COMPARE = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    "!=": operator.ne,
}


def _filter(text: str) -> Callable[[Person], bool] | None:
    """The users a OneRoster filter keeps, or None for a filter this server cannot read."""
    match = _FILTER.match(text)
    if match is None:
        return None
    field_name, word, value = match.groups()
    compare = _COMPARE[word]
    if field_name == "status":
        return lambda person: compare(person.status, value)
    if field_name != "dateLastModified":
        return None
    try:
        since = _instant(value)
    except ValueError:
        return None
    return lambda person: compare(_instant(person.modified), since)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        return -1
