"""OneRoster REST: students from a district's SIS over the IMS OneRoster 1.2 or 1.1 REST binding.

1.2 reads ``GET <base_url>/ims/oneroster/rostering/v1p2/students`` with an OAuth 2 client-credentials
token (scope ``https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly``); 1.1 reads
``GET <base_url>/ims/oneroster/v1p1/students``, signed with OAuth 1.0a (HMAC-SHA256) or with an
OAuth 2 token where the SIS offers one. Pages are requested with ``limit``, ``offset`` and
``sort=sourcedId`` until a short page. ``X-Total-Count`` is passed on as a ``ServerCount``, a
cross-check only.

Every request goes through ``plugins.http.create_client``: HTTP 429 and 5xx are retried there with
backoff, full jitter and ``Retry-After``, one page at a time, so a failed page is asked for again at
the same offset and the sync never starts over. When a page still cannot be had, the source raises
``SourceError`` and the host keeps the previous roster: a partial roster is never delivered.

Options (``[districts.<slug>.roster_sources.<name>.options]``):

- ``base_url`` (required): the server's root, without ``/ims/...``;
- ``version``: ``"1.2"`` (default) or ``"1.1"``;
- ``auth``: ``"oauth2"`` (default), ``"oauth1"`` (1.1 only) or ``"bearer"`` (a fixed token, as
  some OneRoster proxies issue);
- ``client_id``, ``client_secret``: the credentials for ``oauth2`` and ``oauth1``;
- ``token``: the fixed token for ``bearer``;
- ``token_url``: the OAuth 2 token endpoint, ``<base_url>/token`` by default;
- ``scope``: the OAuth 2 scope, roster-core.readonly of the version by default;
- ``signature_method``: OAuth 1.0a's, ``"HMAC-SHA256"`` (default) or ``"HMAC-SHA1"``;
- ``page_size``: records per request, 1000 by default;
- ``include_staff``: also read ``/teachers`` (never counted; shown as staff), false by default;
- ``person_key_fields``: the fields that identify a person across sources, first present wins:
  ``["userMasterIdentifier", "identifier"]`` for 1.2, ``["identifier"]`` for 1.1; the
  ``sourcedId`` when none is present.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from authlib.common.encoding import to_bytes
from authlib.oauth1 import ClientAuth
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from pydantic import model_validator

from manage1to1_plugins import (
    DistrictRef,
    PluginHost,
    RosterFileError,
    RosterSource,
    RowProblem,
    ServerCount,
    SourceError,
    SourceOptions,
    StudentRecord,
    hookimpl,
)
from manage1to1_plugins.fields import checked_base_url
from manage1to1_plugins.fields import day as _date
from manage1to1_plugins.fields import describe_error as _describe
from manage1to1_plugins.fields import text as _text
from manage1to1_plugins.fields import timestamp as _timestamp

PATHS = {
    "1.2": "/ims/oneroster/rostering/v1p2",
    "1.1": "/ims/oneroster/v1p1",
}
SCOPES = {
    "1.2": "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
    "1.1": "https://purl.imsglobal.org/spec/or/v1p1/scope/roster-core.readonly",
}
PERSON_KEY_FIELDS = {
    "1.2": ("userMasterIdentifier", "identifier"),
    "1.1": ("identifier",),
}
AUTH_METHODS = ("oauth2", "oauth1", "bearer")
SIGNATURE_METHODS = ("HMAC-SHA256", "HMAC-SHA1")
DEFAULT_PAGE_SIZE = 1000
MAX_REPORTED_PROBLEMS = 1000
TOTAL_COUNT_HEADERS = ("X-Total-Count", "x-count")
# A token is renewed this long before the server says it expires, so it never lapses mid-request.
TOKEN_EXPIRY_MARGIN_SECONDS = 30.0
ENABLED_WORDS = {"true": True, "false": False}


@dataclass(frozen=True)
class OneRosterConfig:
    """The options, checked and with their defaults: what one reading of the server uses."""

    base_url: str
    version: str
    auth: str
    client_id: str | None
    client_secret: str | None
    token: str | None
    token_url: str
    scope: str
    signature_method: str
    page_size: int
    include_staff: bool
    person_key_fields: tuple[str, ...]

    @property
    def root(self) -> str:
        return PATHS[self.version]

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> OneRosterConfig:
        """The options as given, or SourceError naming the one that is wrong."""
        base_url = _checked_url(options.get("base_url"), "base_url")
        version = str(options.get("version") or "1.2").strip()
        if version not in PATHS:
            raise SourceError(
                f'OneRoster REST: version {version!r} is not supported (use "1.2" or "1.1").'
            )
        auth = str(options.get("auth") or "oauth2").strip().lower()
        if auth not in AUTH_METHODS:
            raise SourceError(
                f"OneRoster REST: auth {auth!r} is not one of {', '.join(AUTH_METHODS)}."
            )
        if auth == "oauth1" and version != "1.1":
            raise SourceError(
                "OneRoster REST: OAuth 1.0a signing is OneRoster 1.1's; 1.2 uses OAuth 2 "
                '(auth = "oauth2").'
            )
        client_id = _text(options.get("client_id"))
        client_secret = _text(options.get("client_secret"))
        token = _text(options.get("token"))
        if auth in ("oauth2", "oauth1") and not (client_id and client_secret):
            raise SourceError(f"OneRoster REST: auth {auth!r} needs client_id and client_secret.")
        if auth == "bearer" and not token:
            raise SourceError('OneRoster REST: auth "bearer" needs the token in option token.')
        token_url = (
            _checked_url(options.get("token_url"), "token_url")
            if options.get("token_url")
            else f"{base_url}/token"
        )
        signature_method = str(options.get("signature_method") or "HMAC-SHA256").upper()
        if signature_method not in SIGNATURE_METHODS:
            raise SourceError(
                f"OneRoster REST: signature_method {signature_method!r} is not one of "
                f"{', '.join(SIGNATURE_METHODS)}."
            )
        page_size = options.get("page_size", DEFAULT_PAGE_SIZE)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise SourceError(
                f"OneRoster REST: page_size must be a whole number above 0, not {page_size!r}."
            )
        include_staff = options.get("include_staff", False)
        if not isinstance(include_staff, bool):
            raise SourceError(
                f"OneRoster REST: include_staff must be true or false, not {include_staff!r}."
            )
        fields = options.get("person_key_fields", PERSON_KEY_FIELDS[version])
        if not isinstance(fields, (list, tuple)) or not all(isinstance(n, str) for n in fields):
            raise SourceError(
                "OneRoster REST: person_key_fields must be a list of field names, "
                'e.g. ["userMasterIdentifier", "identifier"].'
            )
        return cls(
            base_url=base_url,
            version=version,
            auth=auth,
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            token_url=token_url,
            scope=_text(options.get("scope")) or SCOPES[version],
            signature_method=signature_method,
            page_size=page_size,
            include_staff=include_staff,
            person_key_fields=tuple(fields),
        )


class OneRosterRestOptions(SourceOptions):
    """The options of a OneRoster REST roster source (see the module's docstring)."""

    base_url: str | None = None
    version: str | None = None
    auth: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    token_url: str | None = None
    scope: str | None = None
    signature_method: str | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    include_staff: bool = False
    person_key_fields: tuple[str, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _as_the_source_reads_them(cls, options: Any) -> Any:
        # The same checks, with the same words, as a fetch makes.
        if isinstance(options, Mapping):
            try:
                OneRosterConfig.read(options)
            except SourceError as error:
                raise ValueError(str(error)) from None
        return options


class OneRosterRestSource:
    name = "oneroster_rest"
    description = "Students from the SIS's OneRoster 1.2 or 1.1 REST API."
    options_model: ClassVar[type[SourceOptions]] = OneRosterRestOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def fetch_students(
        self, *, district: DistrictRef, options: OneRosterRestOptions | Mapping[str, Any]
    ) -> AsyncIterator[StudentRecord | ServerCount]:
        given = OneRosterRestOptions.parse(options).model_dump(exclude_none=True)
        config = OneRosterConfig.read(given)
        return _Sync(self.host, config).records()


class _Sync:
    """One reading of the roster: one HTTP client, one token, the problems found so far."""

    def __init__(self, host: PluginHost, config: OneRosterConfig) -> None:
        self.host = host
        self.config = config
        self.position = 0
        self.problems: list[RowProblem] = []
        self.credentials: _ClientCredentials | None = None

    def _client(self) -> httpx.AsyncClient:
        config = self.config
        transport = None
        if config.auth == "oauth1":
            signer = _OneRosterOAuth1(
                config.client_id, config.client_secret, signature_method=config.signature_method
            )
            transport = _SigningTransport(httpx.AsyncHTTPTransport(), signer)
        headers = {"Accept": "application/json"}
        if config.auth == "bearer":
            headers["Authorization"] = f"Bearer {config.token}"
        return self.host.create_client(
            base_url=config.base_url, headers=headers, transport=transport
        )

    async def records(self) -> AsyncIterator[StudentRecord | ServerCount]:
        async with self._client() as client:
            if self.config.auth == "oauth2":
                self.credentials = _ClientCredentials(client, self.config, self.host)
            endpoint = f"{self.config.root}/students"
            async for item in self._read(client, endpoint, role="student", count=True):
                yield item
            if self.config.include_staff:
                endpoint = f"{self.config.root}/teachers"
                async for item in self._read(client, endpoint, role="teacher", count=False):
                    yield item
        if self.problems:
            raise RosterFileError(f"{self.config.base_url}{self.config.root}", self.problems)

    async def _read(
        self, client: httpx.AsyncClient, path: str, *, role: str, count: bool
    ) -> AsyncIterator[StudentRecord | ServerCount]:
        """Every record of one collection, page by page; a ServerCount first when ``count``."""
        limit = self.config.page_size
        offset = 0
        total: int | None = None
        previous_first: Any = None
        while True:
            page, page_total = await self._page(client, path, offset=offset, limit=limit)
            first = _first_id(page)
            if offset > 0 and first is not None and first == previous_first:
                # A server that ignores offset would otherwise be read for ever.
                raise SourceError(
                    f"The OneRoster server answered {self.config.base_url}{path} at offset "
                    f"{offset} with the page it gave before (it does not page with offset); "
                    "nothing was changed."
                )
            previous_first = first
            if page_total is not None and total is None:
                total = page_total
                if count:
                    yield ServerCount(page_total)
            for user in page:
                self.position += 1
                record = self._record(user, role=role)
                if record is not None:
                    yield record
            offset += len(page)
            if not page:
                return
            if len(page) < limit and (total is None or offset >= total):
                # A short page ends the collection, unless the server's own total says it only
                # capped the page size: then the next page starts where this one stopped.
                return

    async def _page(
        self, client: httpx.AsyncClient, path: str, *, offset: int, limit: int
    ) -> tuple[list[Any], int | None]:
        url = f"{self.config.base_url}{path}"
        where = f"{url} (offset {offset})"
        params: dict[str, str | int] = {"limit": limit, "offset": offset, "sort": "sourcedId"}
        renewed = False
        while True:
            headers = {}
            if self.credentials is not None:
                headers["Authorization"] = f"Bearer {await self.credentials.access_token()}"
            try:
                response = await client.get(path, params=params, headers=headers)
            except httpx.HTTPError as error:
                raise SourceError(
                    f"The OneRoster server did not answer {where}: {_describe(error)}. "
                    "Nothing was changed; the previous roster is kept."
                ) from None
            except OAuth1Error as error:
                raise SourceError(f"OneRoster REST: cannot sign {where}: {error}.") from None
            if response.status_code == 401 and self.credentials is not None and not renewed:
                # The token expired (or was revoked) since it was issued: one new token, same page.
                renewed = True
                await self.credentials.renew()
                continue
            break
        _check_status(response, where, self.config)
        try:
            body = response.json()
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SourceError(
                f"The OneRoster server's answer to {where} is not JSON ({error}); "
                "nothing was changed."
            ) from None
        collection = path.rsplit("/", 1)[-1]
        users = None
        if isinstance(body, dict):
            users = body.get("users", body.get(collection))
        if not isinstance(users, list):
            raise SourceError(
                f"The OneRoster server's answer to {where} has no "
                f'"users" list; nothing was changed.'
            )
        return users, _total_count(response)

    def _record(self, user: Any, *, role: str) -> StudentRecord | None:
        position = self.position
        try:
            if self.config.version == "1.2":
                return _record_v1p2(user, role=role, key_fields=self.config.person_key_fields)
            return _record_v1p1(user, role=role, key_fields=self.config.person_key_fields)
        except _BadRecord as bad:
            if len(self.problems) < MAX_REPORTED_PROBLEMS:
                self.problems.append(RowProblem(position, bad.column, bad.message))
            return None


def _first_id(page: list[Any]) -> Any:
    return page[0].get("sourcedId") if page and isinstance(page[0], dict) else None


class _BadRecord(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def _record_v1p2(user: Any, *, role: str, key_fields: Sequence[str]) -> StudentRecord:
    """A OneRoster 1.2 user: ``roles`` is a list of {roleType, role, org, beginDate, endDate}."""
    source_id = _source_id(user)
    roles = [
        entry
        for entry in user.get("roles") or ()
        if isinstance(entry, dict) and not str(entry.get("role", "")).startswith("ext:")
    ]
    student_roles = [entry for entry in roles if str(entry.get("role", "")).lower() == "student"]
    # A student role wins over any other (the host counts a student who is also staff as a
    # student), then a primary role over a secondary one.
    candidates = student_roles or roles
    chosen = next(
        (entry for entry in candidates if entry.get("roleType") == "primary"),
        candidates[0] if candidates else None,
    )
    primary_school = _org_id(chosen.get("org")) if chosen else None
    primary_school = primary_school or _org_id(user.get("primaryOrg"))
    schools = _unique([primary_school, *(_org_id(entry.get("org")) for entry in roles)])
    # The last of the roles' ends (students' roles for a student): none while one is open.
    ends = [_date(entry.get("endDate")) for entry in candidates]
    end = None if not ends or None in ends else max(day for day in ends if day is not None)
    return StudentRecord(
        source_id=source_id,
        role=str(chosen.get("role")) if chosen and chosen.get("role") else role,
        status=_status(user),
        enabled=_enabled(user),
        person_key=_person_key(user, key_fields),
        given_name=_text(user.get("givenName")),
        family_name=_text(user.get("familyName")),
        username=_text(user.get("username")),
        grade=_grades(user.get("grades")),
        schools=tuple(schools),
        primary_school=primary_school,
        enrollment_end=end,
        last_modified=_timestamp(user.get("dateLastModified")),
        raw_status=_text(user.get("status")),
    )


def _record_v1p1(user: Any, *, role: str, key_fields: Sequence[str]) -> StudentRecord:
    """A OneRoster 1.1 user: one ``role`` word and an ``orgs`` list of {href, sourcedId, type}."""
    source_id = _source_id(user)
    schools = _unique(_org_id(org) for org in user.get("orgs") or ())
    return StudentRecord(
        source_id=source_id,
        role=_text(user.get("role")) or role,
        status=_status(user),
        enabled=_enabled(user),
        person_key=_person_key(user, key_fields),
        given_name=_text(user.get("givenName")),
        family_name=_text(user.get("familyName")),
        username=_text(user.get("username")),
        grade=_grades(user.get("grades")),
        schools=tuple(schools),
        last_modified=_timestamp(user.get("dateLastModified")),
        raw_status=_text(user.get("status")),
    )


def _source_id(user: Any) -> str:
    if not isinstance(user, dict):
        raise _BadRecord(None, f"the record is not a JSON object: {user!r:.80}")
    source_id = user.get("sourcedId")
    if not isinstance(source_id, str) or not source_id.strip():
        raise _BadRecord("sourcedId", "the record has no sourcedId")
    return source_id.strip()


def _status(user: dict[str, Any]) -> str:
    # OneRoster REST always sends a status (active or tobedeleted); none is read as active.
    return _text(user.get("status")) or "active"


def _enabled(user: dict[str, Any]) -> bool:
    """``enabledUser`` read exactly: "true"/"false" in any letter case, or a JSON boolean."""
    value = user.get("enabledUser")
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ENABLED_WORDS:
        return ENABLED_WORDS[value.strip().lower()]
    raise _BadRecord(
        "enabledUser",
        f"enabledUser {value!r} of {user.get('sourcedId')!r} is neither true nor false",
    )


def _person_key(user: dict[str, Any], fields: Sequence[str]) -> str | None:
    for name in fields:
        value = _text(user.get(name))
        if value:
            return value
    return None


def _org_id(org: Any) -> str | None:
    if isinstance(org, dict):
        return _text(org.get("sourcedId"))
    return None


def _grades(value: Any) -> str | None:
    """The first of ``grades`` (a list in JSON; a comma-separated string from some servers)."""
    if isinstance(value, list):
        return next((text for text in map(_text, value) if text), None)
    text = _text(value)
    return _text(text.split(",")[0]) if text else None


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _total_count(response: httpx.Response) -> int | None:
    for name in TOTAL_COUNT_HEADERS:
        value = response.headers.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def _check_status(response: httpx.Response, where: str, config: OneRosterConfig) -> None:
    status = response.status_code
    if status == 200:
        return
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status in (401, 403):
        how = {
            "oauth2": "the client's access token (check client_id, client_secret and that the "
            "client may read rostering data)",
            "oauth1": "the request's OAuth 1.0a signature (check client_id and client_secret)",
            "bearer": "the token (check option token)",
        }[config.auth]
        raise SourceError(
            f"The OneRoster server refused {how}: {reason} for {where}. Nothing was changed."
        )
    if status == 404:
        raise SourceError(
            f"The OneRoster server has no {where} ({reason}): check base_url and version "
            f"({config.version}). Nothing was changed."
        )
    if status == 429 or status >= 500:
        raise SourceError(
            f"The OneRoster server kept failing {where} ({reason}) after every retry. "
            "Nothing was changed; the previous roster is kept."
        )
    raise SourceError(f"The OneRoster server answered {where} with {reason}. Nothing was changed.")


class _ClientCredentials:
    """OAuth 2 client credentials (RFC 6749 section 4.4): one token, reused until it expires."""

    def __init__(self, client: httpx.AsyncClient, config: OneRosterConfig, host: PluginHost):
        self.client = client
        self.config = config
        # Asking for a token again is safe, so the token POST is retried like a GET.
        self.retry = host.retry_policy(methods=("POST",))
        self.token: str | None = None
        self.expires_at: float | None = None
        self.issued = 0

    async def access_token(self) -> str:
        if self.token is None or (
            self.expires_at is not None and time.monotonic() >= self.expires_at
        ):
            await self.renew()
        assert self.token is not None
        return self.token

    async def renew(self) -> None:
        config = self.config
        url = config.token_url
        try:
            response = await self.client.post(
                url,
                data={"grant_type": "client_credentials", "scope": config.scope},
                auth=httpx.BasicAuth(config.client_id or "", config.client_secret or ""),
                extensions={"retry": self.retry},
            )
        except httpx.HTTPError as error:
            raise SourceError(
                f"The OneRoster token endpoint {url} did not answer: {_describe(error)}. "
                "Nothing was changed."
            ) from None
        body = _json_or_none(response)
        refusal = body.get("error") if isinstance(body, dict) else None
        if response.status_code != 200 or refusal:
            reason = f"HTTP {response.status_code}" + (f", {refusal}" if refusal else "")
            if response.status_code == 401 or refusal == "invalid_client":
                advice = "refused the client id and secret: check client_id and client_secret"
            elif refusal == "invalid_scope":
                advice = f"refused the scope {config.scope!r}: check option scope"
            elif refusal == "unauthorized_client":
                advice = "does not let this client use the client-credentials grant"
            else:
                advice = "did not issue a token"
            raise SourceError(
                f"The OneRoster token endpoint {url} {advice} ({reason}). Nothing was changed."
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        token_type = str(body.get("token_type", "bearer")) if isinstance(body, dict) else ""
        if not isinstance(token, str) or not token or token_type.lower() != "bearer":
            raise SourceError(
                f"The OneRoster token endpoint {url} answered without a bearer access_token. "
                "Nothing was changed."
            )
        expires_in = body.get("expires_in")
        self.token = token
        self.expires_at = None
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
            margin = min(TOKEN_EXPIRY_MARGIN_SECONDS, expires_in / 10)
            self.expires_at = time.monotonic() + max(expires_in - margin, 0)
        self.issued += 1


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _sign_hmac_sha256(client: ClientAuth, request: Any) -> str:
    """RFC 5849's HMAC-SHA1 method with SHA-256, as OneRoster 1.1 requires."""
    base_string = generate_signature_base_string(request)
    key = escape(client.client_secret or "") + "&" + escape(client.token_secret or "")
    digest = hmac.new(to_bytes(key), to_bytes(base_string), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class _OneRosterOAuth1(ClientAuth):
    """authlib's OAuth 1.0a client signing, with HMAC-SHA256 added (authlib ships HMAC-SHA1)."""

    # authlib reads this from the class; types-authlib declares it per instance.
    SIGNATURE_METHODS: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        **ClientAuth.SIGNATURE_METHODS,
        "HMAC-SHA256": _sign_hmac_sha256,
    }


class _SigningTransport(httpx.AsyncBaseTransport):
    """Signs every attempt afresh (new nonce and timestamp), below the client's retries, so a
    retried request is never a replay the server must refuse."""

    def __init__(self, inner: httpx.AsyncBaseTransport, signer: ClientAuth) -> None:
        self.inner = inner
        self.signer = signer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _uri, headers, _body = self.signer.sign(request.method, str(request.url), {}, b"")
        request.headers["Authorization"] = headers["Authorization"]
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@hookimpl(trylast=True)
def register_roster_sources(host: PluginHost) -> list[RosterSource]:
    return [OneRosterRestSource(host)]


def _checked_url(value: object, option: str) -> str:
    return checked_base_url(
        value, where=f"OneRoster REST: {option}", carries="credentials and student data"
    )
