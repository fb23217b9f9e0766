"""OneRoster REST: students from a district's SIS over the IMS OneRoster 1.2 or 1.1 REST binding.

1.2 reads ``GET <service>/students`` where the service is ``<base>/ims/oneroster/rostering/v1p2``,
with an OAuth 2 client-credentials token (scope
``https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly``); 1.1 reads
``<base>/ims/oneroster/v1p1/students``, signed with OAuth 1.0a (HMAC-SHA256) or with an OAuth 2
token where the SIS offers one. ``base_url`` is read as the administrator pasted it: a server's
address, the service URL, or one endpoint's URL (``.../users``) all name the same service
(``oneroster_profiles.locate_service``), and a ``profile`` supplies what a vendor documents (token
endpoint, how the credentials are sent, version, page size, pacing).

Paging: ``limit``, ``offset`` and ``sort=sourcedId`` from offset 0, until an empty page; when the
server sends ``Link: <...>; rel="next"`` that link is followed instead, until a page comes without
one. A short page alone never ends a collection (servers cap the page size silently).
``X-Total-Count`` (or ``x-count``) is passed on once as a ``ServerCount`` and checked at the end: a
collection that delivered fewer records than its server reported fails the sync.

Delta syncs: after a first full sync the host hands back the source's cursor, and each
collection is read with ``filter=dateLastModified>'<cursor>'`` (the OneRoster 1.1 and 1.2 filter
syntax): only the records modified since, returned as a ``RosterDelta``. A record the server
marks ``tobedeleted`` is passed on as it is, exactly as a full listing gives it (kept, never
counted), so a delta and a full sync store the same record. The cursor is the time the sync
started by the server's own clock (the ``Date`` header of its first answer; the host's clock
when it sends none) minus ``DELTA_OVERLAP``: not the newest ``dateLastModified`` seen, because
a record changed on a page already read while later pages were being read has a timestamp
older than the newest one seen and would be missed for ever; the overlap covers a SIS whose
database clock differs a little from its web server's and changes committed after they were
stamped. Records read twice are applied twice, which changes nothing. A person who leaves the
collection without a ``tobedeleted`` record (a student who becomes a teacher) is seen by the
weekly full sync (``full_sync_every_days``), which corrects whatever the deltas missed.

OAuth 2 tokens come from authlib's ``AsyncOAuth2Client`` (client-credentials grant, the profile's
``token_endpoint_auth_method``), built with the host's client options, so every request,
the token's included, goes through the project's timeouts and retries (``plugins.http``): HTTP 429
and 5xx are retried with backoff, full jitter and ``Retry-After``, one page at a time, so a failed
page is asked for again where it was and the sync never starts over. When a page still cannot be
had, the source raises ``SourceError`` and the host keeps the previous roster: a partial roster is
never delivered.

Options (``[districts.<slug>.roster_sources.<name>.options]``; docs/plugins.md and docs/vendors/):

- ``profile``: ``generic`` (default), ``powerschool``, ``infinite_campus``, ``classlink``,
  ``skyward`` or ``aeries``;
- ``base_url`` (required): the address as the SIS shows it;
- ``version``: ``"1.2"`` or ``"1.1"``; by default the one the address names, else the profile's;
- ``auth``: ``"oauth2"``, ``"oauth1"`` (1.1 only) or ``"bearer"`` (a fixed token, as some
  OneRoster proxies issue); by default ``bearer`` when only a token is given, else the profile's;
- ``client_id``, ``client_secret``: the credentials for ``oauth2`` and ``oauth1``;
- ``token``: the fixed token for ``bearer``;
- ``token_url``: the OAuth 2 token endpoint, the profile's by default (``<base>/token``);
- ``app_name``: Infinite Campus's appName, when its token URL is not given;
- ``token_endpoint_auth_method``: ``"client_secret_basic"`` or ``"client_secret_post"``;
- ``scope``: the OAuth 2 scope, roster-core.readonly of the version by default;
- ``signature_method``: OAuth 1.0a's, ``"HMAC-SHA256"`` (default) or ``"HMAC-SHA1"``;
- ``page_size``: records per request, the profile's (1000) by default;
- ``requests_per_minute``: at most this many requests a minute (none by default);
- ``include_staff``: also read ``/teachers`` (never counted; shown as staff), false by default;
- ``delta_syncs``: read only the records modified since the last sync, true by default (false
  for a server that does not filter by ``dateLastModified``: every sync is then a full one);
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
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from authlib.common.encoding import to_bytes
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth1 import ClientAuth
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.signature import generate_signature_base_string
from authlib.oauth1.rfc5849.util import escape
from pydantic import model_validator

from manage1to1_plugins import (
    DistrictRef,
    PluginHost,
    RosterDelta,
    RosterFileError,
    RosterItem,
    RosterSource,
    RowProblem,
    ServerCount,
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
from manage1to1_plugins.intake import BOOLEAN_CHOICES, flag, is_extension_role
from plugins.builtin.oneroster_profiles import (
    CLIENT_AUTH_METHODS,
    PATHS,
    PROFILES,
    VendorProfile,
    default_token_url,
    locate_service,
    profile_named,
)

with warnings.catch_warnings():
    # authlib would rather build its client on httpx2; this project's one HTTP library (and every
    # transport of plugins.http) is httpx, which authlib still supports.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

if not issubclass(AsyncOAuth2Client, httpx.AsyncClient):  # pragma: no cover - an environment fault
    raise ImportError(
        "authlib's AsyncOAuth2Client is not an httpx.AsyncClient here (is httpx2 installed?); "
        "the OneRoster REST source needs it to be."
    )

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
MAX_REPORTED_PROBLEMS = 1000
TOTAL_COUNT_HEADERS = ("X-Total-Count", "x-count")
# A token is renewed this long before the server says it expires, so it never lapses mid-request.
TOKEN_EXPIRY_MARGIN_SECONDS = 30.0
# A delta re-reads this much before the last sync's start (see the module's docstring).
DELTA_OVERLAP = timedelta(minutes=10)
HOW_CREDENTIALS_TRAVEL = {
    "client_secret_basic": "in HTTP Basic authentication (client_secret_basic)",
    "client_secret_post": "as form fields of the request (client_secret_post)",
}


@dataclass(frozen=True)
class OneRosterConfig:
    """The options, checked and with their defaults: what one reading of the server uses."""

    profile: VendorProfile
    base_url: str
    service_url: str
    version: str
    auth: str
    client_id: str | None
    client_secret: str | None
    token: str | None
    token_url: str
    client_auth_method: str
    scope: str
    signature_method: str
    page_size: int
    requests_per_minute: int | None
    include_staff: bool
    person_key_fields: tuple[str, ...]
    delta_syncs: bool = True

    @classmethod
    def read(cls, options: Mapping[str, Any]) -> OneRosterConfig:
        """The options as given, or SourceError naming the one that is wrong."""
        profile = profile_named(options.get("profile"))
        version = _text(options.get("version"))
        if version is not None and version not in PATHS:
            raise SourceError(
                f'OneRoster REST: version {version!r} is not supported (use "1.2" or "1.1").'
            )
        location = locate_service(options.get("base_url"), profile=profile, version=version)
        version = location.version
        client_id = _text(options.get("client_id"))
        client_secret = _text(options.get("client_secret"))
        token = _text(options.get("token"))
        auth = str(options.get("auth") or "").strip().lower()
        if not auth:
            if token and not client_id:
                auth = "bearer"
            else:
                auth = profile.v1p1_auth if version == "1.1" else "oauth2"
        if auth not in AUTH_METHODS:
            raise SourceError(
                f"OneRoster REST: auth {auth!r} is not one of {', '.join(AUTH_METHODS)}."
            )
        if auth == "oauth1" and version != "1.1":
            raise SourceError(
                "OneRoster REST: OAuth 1.0a signing is OneRoster 1.1's; 1.2 uses OAuth 2 "
                '(auth = "oauth2").'
            )
        if auth in ("oauth2", "oauth1") and not (client_id and client_secret):
            raise SourceError(f"OneRoster REST: auth {auth!r} needs client_id and client_secret.")
        if auth == "bearer" and not token:
            raise SourceError('OneRoster REST: auth "bearer" needs the token in option token.')
        client_auth_method = str(
            options.get("token_endpoint_auth_method") or profile.client_auth_method
        ).strip()
        if client_auth_method not in CLIENT_AUTH_METHODS:
            raise SourceError(
                f"OneRoster REST: token_endpoint_auth_method {client_auth_method!r} is not one of "
                f"{', '.join(CLIENT_AUTH_METHODS)}."
            )
        token_url = ""
        if options.get("token_url"):
            token_url = _checked_url(options.get("token_url"), "token_url")
        elif auth == "oauth2":
            token_url = default_token_url(
                profile, location, app_name=_text(options.get("app_name"))
            )
        signature_method = str(options.get("signature_method") or "HMAC-SHA256").upper()
        if signature_method not in SIGNATURE_METHODS:
            raise SourceError(
                f"OneRoster REST: signature_method {signature_method!r} is not one of "
                f"{', '.join(SIGNATURE_METHODS)}."
            )
        page_size = options.get("page_size")
        page_size = profile.page_size if page_size is None else page_size
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise SourceError(
                f"OneRoster REST: page_size must be a whole number above 0, not {page_size!r}."
            )
        pace = options.get("requests_per_minute")
        pace = profile.requests_per_minute if pace is None else pace
        if pace is not None and (isinstance(pace, bool) or not isinstance(pace, int) or pace < 1):
            raise SourceError(
                f"OneRoster REST: requests_per_minute must be a whole number above 0, not {pace!r}."
            )
        include_staff = options.get("include_staff", False)
        if not isinstance(include_staff, bool):
            raise SourceError(
                f"OneRoster REST: include_staff must be true or false, not {include_staff!r}."
            )
        delta_syncs = options.get("delta_syncs", True)
        if not isinstance(delta_syncs, bool):
            raise SourceError(
                f"OneRoster REST: delta_syncs must be true or false, not {delta_syncs!r}."
            )
        fields = options.get("person_key_fields") or PERSON_KEY_FIELDS[version]
        if not isinstance(fields, (list, tuple)) or not all(isinstance(n, str) for n in fields):
            raise SourceError(
                "OneRoster REST: person_key_fields must be a list of field names, "
                'e.g. ["userMasterIdentifier", "identifier"].'
            )
        return cls(
            profile=profile,
            base_url=location.base_url,
            service_url=location.service_url,
            version=version,
            auth=auth,
            client_id=client_id,
            client_secret=client_secret,
            token=token,
            token_url=token_url,
            client_auth_method=client_auth_method,
            scope=_text(options.get("scope")) or SCOPES[version],
            signature_method=signature_method,
            page_size=page_size,
            requests_per_minute=pace,
            include_staff=include_staff,
            person_key_fields=tuple(fields),
            delta_syncs=delta_syncs,
        )


class OneRosterRestOptions(SourceOptions):
    """The options of a OneRoster REST roster source (see the module's docstring)."""

    profile: str | None = None
    base_url: str | None = None
    version: str | None = None
    auth: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token: str | None = None
    token_url: str | None = None
    app_name: str | None = None
    token_endpoint_auth_method: str | None = None
    scope: str | None = None
    signature_method: str | None = None
    page_size: int | None = None
    requests_per_minute: int | None = None
    include_staff: bool = False
    delta_syncs: bool = True
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
    description = (
        f"Students from the SIS's OneRoster 1.2 or 1.1 REST API (profiles: {', '.join(PROFILES)})."
    )
    options_model: ClassVar[type[SourceOptions]] = OneRosterRestOptions

    def __init__(self, host: PluginHost) -> None:
        self.host = host

    def fetch_students(
        self,
        *,
        district: DistrictRef,
        options: OneRosterRestOptions | Mapping[str, Any],
        sync_state: SyncState | None = None,
    ) -> AsyncIterator[RosterItem] | RosterDelta:
        given = OneRosterRestOptions.parse(options).model_dump(exclude_none=True)
        config = OneRosterConfig.read(given)
        since = sync_state.cursor if sync_state and config.delta_syncs else None
        if since is not None and _timestamp(since) is None:
            since = None  # not a cursor this source wrote: read everything
        records = _Sync(self.host, config, since=since).records()
        return RosterDelta(records) if since is not None else records


class _Sync:
    """One reading of the roster: one HTTP client, one token, the problems found so far."""

    def __init__(self, host: PluginHost, config: OneRosterConfig, *, since: str | None) -> None:
        self.host = host
        self.config = config
        self.since = since  # read only what was modified after this (a delta)
        self.started_at: datetime | None = None  # by the server's clock, from its first answer
        self.position = 0
        self.problems: list[RowProblem] = []
        self.token_status: int | None = None  # the last token response's, for messages
        self.next_request_at = 0.0

    def _client(self) -> httpx.AsyncClient:
        config = self.config
        headers = {"Accept": "application/json"}
        if config.auth == "oauth1":
            signer = _OneRosterOAuth1(
                config.client_id, config.client_secret, signature_method=config.signature_method
            )
            transport = _SigningTransport(self.host.network_transport(), signer)
            return self.host.create_client(headers=headers, transport=transport)
        if config.auth == "bearer":
            headers["Authorization"] = f"Bearer {config.token}"
            return self.host.create_client(headers=headers)
        # authlib's OAuth 2 client is an httpx.AsyncClient: it is built from the host's own
        # client options (timeouts, per-attempt deadline, retries honouring Retry-After, user
        # agent), so the token request and every page keep the operator's [http] policy. Its one
        # POST is the token request, which is safe to repeat, so POST is retried like a GET.
        client = AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_endpoint_auth_method=config.client_auth_method,
            scope=config.scope,
            token_endpoint=config.token_url,
            grant_type="client_credentials",
            leeway=TOKEN_EXPIRY_MARGIN_SECONDS,
            **self.host.client_options(
                headers=headers,
                retry=self.host.retry_policy(methods=("GET", "HEAD", "OPTIONS", "POST")),
            ),
        )
        client.register_compliance_hook("access_token_response", self._note_token_response)
        return client

    def _note_token_response(self, response: httpx.Response) -> httpx.Response:
        self.token_status = response.status_code
        return response

    async def records(self) -> AsyncIterator[RosterItem]:
        async with self._client() as client:
            if isinstance(client, AsyncOAuth2Client):
                await self._fetch_token(client)
            # A delta's total is of its changes: only a whole listing's is the roster's.
            count = self.since is None
            async for item in self._read(client, "students", role="student", count=count):
                yield item
            if self.config.include_staff:
                async for item in self._read(client, "teachers", role="teacher", count=False):
                    yield item
        if self.problems:
            raise RosterFileError(self.config.service_url, self.problems)
        started = self.started_at or self.host.clock()
        yield SyncCursor(_filter_time(started - DELTA_OVERLAP))

    def _params(self, offset: int) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            "limit": self.config.page_size,
            "offset": offset,
            "sort": "sourcedId",
        }
        if self.since is not None:
            params["filter"] = f"dateLastModified>'{self.since}'"
        return params

    def _note_start(self, response: httpx.Response) -> None:
        if self.started_at is None:
            self.started_at = _server_time(response) or self.host.clock()

    async def _read(
        self, client: httpx.AsyncClient, collection: str, *, role: str, count: bool
    ) -> AsyncIterator[StudentRecord | ServerCount]:
        """Every record of one collection, page by page; a ServerCount first when ``count``.

        Pages follow ``Link: rel="next"`` while the server sends it; otherwise ``offset`` moves
        on by what each page held, until an empty page. A server that pages by links and sends
        none has said the collection ends."""
        url = f"{self.config.service_url}/{collection}"
        params: dict[str, str | int] | None = self._params(0)
        offset = 0
        received = 0
        reported: tuple[int, str] | None = None  # the largest total a page stated, and its header
        counted = False
        by_links = False
        followed: set[str] = set()
        previous_first: Any = None
        while True:
            where = f"{url} (offset {offset})" if params is not None else url
            page, response = await self._page(client, url, params, where)
            self._note_start(response)
            stated = _total_count(response)
            if stated is not None:
                if count and not counted:
                    counted = True
                    yield ServerCount(stated[0])
                if reported is None or stated[0] > reported[0]:
                    reported = stated
            first = _first_id(page)
            if params is not None and offset > 0 and first is not None and first == previous_first:
                # A server that ignores offset would otherwise be read for ever.
                raise SourceError(
                    f"The OneRoster server answered {where} with the page it gave before (it "
                    "does not page with offset); nothing was changed."
                )
            previous_first = first
            for user in page:
                self.position += 1
                record = self._record(user, role=role)
                if record is not None:
                    yield record
            received += len(page)
            if not page:
                break
            following = response.links.get("next", {}).get("url")
            if following:
                url = self._next_page_url(response, following)
                if url in followed:
                    raise SourceError(
                        f"The OneRoster server sent {url} as the next page twice; nothing was "
                        "changed."
                    )
                followed.add(url)
                params = None
                by_links = True
                continue
            if by_links or "link" in response.headers:
                break
            offset += len(page)
            params = self._params(offset)
        if reported is not None and received < reported[0]:
            total, header = reported
            raise SourceError(
                f"The OneRoster server {self.config.service_url}/{collection} reported {total} "
                f"{collection} ({header}) but sent {received}: the listing is incomplete, so "
                "nothing was applied and the previous roster is kept."
            )

    def _next_page_url(self, response: httpx.Response, link: str) -> str:
        """The next link as an absolute URL, on the service's own server only: the credentials
        are never sent to another host."""
        url = urljoin(str(response.url), link)
        service, target = urlsplit(self.config.service_url), urlsplit(url)
        if (target.scheme, target.netloc) != (service.scheme, service.netloc):
            raise SourceError(
                f"The OneRoster server's next page is on another server ({target.scheme}://"
                f"{target.netloc}, not {service.scheme}://{service.netloc}); its credentials "
                "are not sent there, and nothing was changed."
            )
        return url

    async def _pace(self) -> None:
        """At most ``requests_per_minute`` requests a minute, when the option is set."""
        if self.config.requests_per_minute is None:
            return
        now = time.monotonic()
        if now < self.next_request_at:
            await anyio.sleep(self.next_request_at - now)
        self.next_request_at = max(now, self.next_request_at) + 60 / self.config.requests_per_minute

    async def _fetch_token(self, client: AsyncOAuth2Client) -> None:
        try:
            token = await client.fetch_token()
        except (OAuthError, httpx.HTTPStatusError, ValueError) as error:
            raise self._token_failure(error) from None
        except httpx.HTTPError as error:
            raise SourceError(
                f"The OneRoster token endpoint {self.config.token_url} did not answer: "
                f"{_describe(error)}. Nothing was changed."
            ) from None
        access_token = token.get("access_token")
        token_type = str(token.get("token_type", "bearer"))
        if not isinstance(access_token, str) or not access_token or token_type.lower() != "bearer":
            raise SourceError(
                f"The OneRoster token endpoint {self.config.token_url} answered without a bearer "
                "access_token. Nothing was changed."
            )

    def _token_failure(self, error: Exception) -> SourceError:
        config = self.config
        status = self.token_status
        refusal = None
        if isinstance(error, httpx.HTTPStatusError):
            status = error.response.status_code
        elif isinstance(error, OAuthError):
            refusal = error.error
        reason = ", ".join(part for part in (f"HTTP {status}" if status else "", refusal) if part)
        how = HOW_CREDENTIALS_TRAVEL[config.client_auth_method]
        if status == 405:
            advice = (
                "does not take token requests: token_url is probably not the token endpoint "
                "(paste the token URL your SIS shows, or choose the SIS's profile)"
            )
        elif status == 404:
            advice = "does not exist: check token_url (or the SIS's profile)"
        elif status == 401 or refusal == "invalid_client":
            other = next(
                method for method in CLIENT_AUTH_METHODS if method != config.client_auth_method
            )
            advice = (
                f"refused the client id and secret, sent {how}: check client_id and "
                f"client_secret (a SIS that wants them sent the other way takes "
                f'token_endpoint_auth_method = "{other}", or its profile)'
            )
        elif refusal == "invalid_scope":
            advice = f"refused the scope {config.scope!r}: check option scope"
        elif refusal == "unauthorized_client":
            advice = "does not let this client use the client-credentials grant"
        elif status is not None and (status == 429 or status >= 500):
            advice = "kept failing after every retry"
        else:
            advice = "did not issue a token"
        return SourceError(
            f"The OneRoster token endpoint {config.token_url} {advice} ({reason or 'no token'}). "
            "Nothing was changed."
        )

    async def _get(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: dict[str, str | int] | None,
        where: str,
    ) -> httpx.Response:
        await self._pace()
        try:
            return await client.get(url, params=params)
        except (OAuthError, httpx.HTTPStatusError, ValueError) as error:
            if not isinstance(client, AsyncOAuth2Client):
                raise
            # The OAuth 2 client renews a token about to expire before the request: that failed.
            raise self._token_failure(error) from None
        except httpx.HTTPError as error:
            raise SourceError(
                f"The OneRoster server did not answer {where}: {_describe(error)}. "
                "Nothing was changed; the previous roster is kept."
            ) from None
        except OAuth1Error as error:
            raise SourceError(f"OneRoster REST: cannot sign {where}: {error}.") from None

    async def _page(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: dict[str, str | int] | None,
        where: str,
    ) -> tuple[list[Any], httpx.Response]:
        response = await self._get(client, url, params, where)
        if response.status_code == 401 and isinstance(client, AsyncOAuth2Client):
            # The token expired (or was revoked) since it was issued: one new token, same page.
            await self._fetch_token(client)
            response = await self._get(client, url, params, where)
        _check_status(response, where, self.config)
        try:
            body = response.json()
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SourceError(
                f"The OneRoster server's answer to {where} is not JSON ({error}); "
                "nothing was changed."
            ) from None
        collection = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
        users = None
        if isinstance(body, dict):
            users = body.get("users", body.get(collection))
        if not isinstance(users, list):
            raise SourceError(
                f"The OneRoster server's answer to {where} has no "
                f'"users" list; nothing was changed.'
            )
        return users, response

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


def _server_time(response: httpx.Response) -> datetime | None:
    """The server's clock when it answered (its ``Date`` header), or None."""
    try:
        moment = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _filter_time(moment: datetime) -> str:
    """A time as a OneRoster filter compares it: ISO 8601 in UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


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
    listed = [entry for entry in user.get("roles") or () if isinstance(entry, dict)]
    roles = [entry for entry in listed if not is_extension_role(str(entry.get("role", "")))]
    if not roles and listed:
        # Only extension roles: the user is passed on with one, and the host counts nobody by it.
        roles = listed[:1]
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
        schools=tuple(schools),
        primary_school=primary_school,
        enrollment_end=end,
        **_fields_alike_in_both_versions(user, key_fields=key_fields),
    )


def _record_v1p1(user: Any, *, role: str, key_fields: Sequence[str]) -> StudentRecord:
    """A OneRoster 1.1 user: one ``role`` word and an ``orgs`` list of {href, sourcedId, type}."""
    source_id = _source_id(user)
    schools = _unique(_org_id(org) for org in user.get("orgs") or ())
    return StudentRecord(
        source_id=source_id,
        role=_text(user.get("role")) or role,
        schools=tuple(schools),
        **_fields_alike_in_both_versions(user, key_fields=key_fields),
    )


def _fields_alike_in_both_versions(user: Any, *, key_fields: Sequence[str]) -> dict[str, Any]:
    """The record's fields that OneRoster 1.1 and 1.2 users give the same way. The role and the
    schools (and 1.2's primary school and enrollment end) differ: each version's reader reads
    those."""
    return {
        "status": _status(user),
        "enabled": _enabled(user),
        "person_key": _person_key(user, key_fields),
        "given_name": _text(user.get("givenName")),
        "family_name": _text(user.get("familyName")),
        "username": _text(user.get("username")),
        "grade": _grades(user.get("grades")),
        "last_modified": _timestamp(user.get("dateLastModified")),
        "raw_status": _text(user.get("status")),
    }


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
    """``enabledUser`` read by the intake rule: a JSON boolean, or true/false, 1/0, yes/no in
    any letter case."""
    value = user.get("enabledUser")
    if value is None:
        return True
    enabled = flag(value)
    if enabled is None:
        raise _BadRecord(
            "enabledUser",
            f"enabledUser {value!r} of {user.get('sourcedId')!r} is not {BOOLEAN_CHOICES}",
        )
    return enabled


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


def _total_count(response: httpx.Response) -> tuple[int, str] | None:
    """The server's stated total and the header that stated it."""
    for name in TOTAL_COUNT_HEADERS:
        value = response.headers.get(name, "").strip()
        if value.isdigit():
            return int(value), name
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
    if status in (404, 405):
        raise SourceError(
            f"The OneRoster server has no {where} ({reason}): check base_url (paste the OneRoster "
            f"address your SIS shows) and version ({config.version}). Nothing was changed."
        )
    if status == 429 or status >= 500:
        raise SourceError(
            f"The OneRoster server kept failing {where} ({reason}) after every retry. "
            "Nothing was changed; the previous roster is kept."
        )
    raise SourceError(f"The OneRoster server answered {where} with {reason}. Nothing was changed.")


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
