"""The /graphql endpoint: body-size limit and bearer-token sign-in before strawberry runs.

Websockets (graphql-transport-ws only, for the live subscriptions) sign in with the same bearer
tokens: in the handshake's ``Authorization`` header, or in the ``connection_init`` payload as
``{"Authorization": "Bearer <token>"}``. A bad header refuses the handshake with the HTTP 401
answer; a missing or bad payload token closes the socket with 4403 Forbidden before any data.

Every request signs in through graph/auth.py: a bearer token, or the Licensing tab's session
cookie (a POST signed in by it must pass the CSRF check); a bearer token always wins over the
cookie. The tab's own websocket signs in with the cookie too, when its handshake comes from this
server's origin (graph/auth.py ``websocket_session_principal``); it stays signed in only while the
session lasts. A bad token counts against the client's address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from graphql import GraphQLError
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from graph.answers import AnswerKey, AnswerSnapshots, Snapshot, answer_key, snapshot_body
from graph.auth import (
    SESSION_COOKIE,
    authenticate_token,
    bearer_secret,
    client_address,
    sign_in,
    versioned_sign_in,
    websocket_session_principal,
)
from graph.conditional import conditional_headers, entity_tag, none_match
from graph.context import GraphContext
from graph.errors import ClientError, refusal_for
from graph.limits import PersistedDocument
from graph.persisted import (
    PersistedQueries,
    PersistedQueryRefusal,
    document_hash,
    persisted_query_hash,
)
from graph.rate_limit import cost_extensions, rate_limited_response, token_budgets
from graph.responses import error_response
from graph.strawberry_compat import UNSET, GraphQLView, HTTPException, UnsetType
from graph.subscriptions import signed_out
from licensing.domain.error_codes import ErrorCode
from licensing.orchestration.service import DistrictState, LicensingService
from licensing.storage.tokens import Principal, SignedIn

PRINCIPAL_SCOPE_KEY = "licensing.principal"
SECRET_SCOPE_KEY = "licensing.token_secret"
PERSISTED_SCOPE_KEY = "licensing.persisted_document"
ETAG_SCOPE_KEY = "licensing.etag"
CONTEXT_SCOPE_KEY = "licensing.context"
SESSION_SCOPE_KEY = "licensing.session_id"
KEPT_ANSWER_SCOPE_KEY = "licensing.kept_answer"
# What a 304 answer draws from the token's budget: it runs nothing, but it is a request.
NOT_MODIFIED_COST = 1

GRAPHIQL_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://unpkg.com; "
    "style-src 'self' 'unsafe-inline' https://unpkg.com; img-src 'self' data: https:; "
    "font-src 'self' data: https://unpkg.com; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# A websocket that has not signed in within this time is closed (4408).
CONNECTION_INIT_TIMEOUT = timedelta(seconds=10)
# Each subscription polls the database; one connection may not run more than this many at once.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 10

# Stands in for the caller until a websocket signs in: no district, no permissions. Strawberry runs
# no operation before the connection is acknowledged, and that happens only once signed in.
NOT_SIGNED_IN = Principal(
    token_id=0, token_name="not signed in", district_id=0, district_slug="", permissions=frozenset()
)


@dataclass(frozen=True)
class PreparedRequest:
    """What strawberry is handed, and the key its answer is kept under (None: never kept)."""

    body: bytes
    answer_key: AnswerKey | None = None
    # A persisted query sent by its hash alone: its text is put into the request only when
    # strawberry is to run it, not for a 304 or a kept answer (for a GET, URL-encoding the
    # text took 7% of a 304's time).
    persisted: tuple[dict[str, Any], PersistedDocument] | None = None

    def strawberry_body(self, request: Request) -> bytes:
        """The body strawberry reads, the persisted document's text put in where it is needed
        (into the query string of a GET, which has no body)."""
        if self.persisted is None:
            return self.body
        params, document = self.persisted
        return _with_document(request, params, document)


@dataclass
class HttpContext(GraphContext):
    """The context of one HTTP request: ``response`` takes the status code and headers that
    code running inside the operation sets (the rate limit's, graph/cost.py)."""

    response: Response


@dataclass
class WebSocketContext(GraphContext):
    """The context of one websocket connection, for every operation it runs.

    It lives as long as the connection, so it reads the district afresh for every operation
    instead of keeping what it read; ``still_signed_in`` lets subscriptions stop when the token
    is revoked, or expires, while the connection is open.
    """

    connection_params: dict[str, object] | None = None
    secret: str | None = field(default=None, repr=False)
    # A connection signed in by the Licensing tab's session cookie: it lasts as long as the session.
    session_id: str | None = field(default=None, repr=False)
    # Where the connection comes from: a bad token in connection_init counts against it.
    client_address: str = ""

    @property
    def signed_in(self) -> bool:
        has_credential = self.secret is not None or self.session_id is not None
        return has_credential and self.principal is not NOT_SIGNED_IN

    def sign_in(self, principal: Principal, secret: str) -> None:
        self.principal = principal
        self.secret = secret

    def sign_in_with_session(self, principal: Principal, session_id: str) -> None:
        self.principal = principal
        self.session_id = session_id

    async def still_signed_in(self) -> bool:
        if self.session_id is not None:
            principal = await self.service.session_principal(self.session_id)
        elif self.secret is not None:
            principal = await self.service.authenticate(self.secret)
        else:
            return False
        return principal is not None and principal.token_id == self.principal.token_id

    async def district_state(self) -> DistrictState:
        return await self.service.district_state(self.principal.district_id)

    def remember_district_state(self, state: DistrictState) -> None:
        """Nothing is kept between operations; the next read sees the new state anyway."""


class LicensingGraphQL(GraphQLView[GraphContext]):
    """Strawberry's ASGI view, with every HTTP request authenticated and size-limited first."""

    def __init__(
        self,
        schema: BaseSchema,
        *,
        service: LicensingService,
        max_body_bytes: int,
        development: bool,
        persisted: PersistedQueries | None = None,
        fingerprint: str = "",
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if development else None,
            allow_queries_via_get=True,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=CONNECTION_INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
        )
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.development = development
        self.persisted = persisted or PersistedQueries(
            schema=schema,
            service=service,
            limits=service.settings.graphql,
            settings=service.settings.persisted_queries,
        )
        # Every entity tag depends on it: a new schema or configuration changes every tag.
        self.fingerprint = fingerprint
        self.answers = AnswerSnapshots(service.settings.graphql.answer_snapshots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await error_response(400, ErrorCode.BAD_REQUEST, "Use HTTP for /graphql.")(
                scope, receive, send
            )
            return
        request = Request(scope, receive)
        if self.development and _wants_ide(request):
            await super().__call__(scope, receive, _with_ide_policy(send))
            return
        body = await _read_limited_body(request, self.max_body_bytes)
        if body is None:
            response = error_response(
                413,
                ErrorCode.REQUEST_TOO_LARGE,
                f"The request body is larger than {self.max_body_bytes} bytes.",
            )
            await response(scope, receive, send)
            return
        # Cost 0: a spent budget is refused now; the operation's cost is drawn once it is known.
        signed_in = await versioned_sign_in(request, self.service, cost=0)
        if isinstance(signed_in, Response):
            await signed_in(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = signed_in.principal
        head = scope["method"] == "HEAD"
        if head:  # answered as GET, without the body
            scope["method"] = "GET"
            request = Request(scope, receive)
        try:
            prepared = await self._prepare(request, body, signed_in)
        except PersistedQueryRefusal as refusal:
            await refusal.response(scope, receive, send)
            return
        if isinstance(prepared, Response):
            await prepared(scope, receive, send)
            return
        if request.method == "GET":
            send = _with_conditional_headers(scope, send, head=head)
        key = prepared.answer_key
        if key is not None:
            kept = self.answers.find(key, now=self.service.clock())
            answer = await self._kept_answer(signed_in.principal, kept) if kept else None
            if answer is not None:
                scope[KEPT_ANSWER_SCOPE_KEY] = True
                await answer(scope, receive, send)
                return
        await super().__call__(scope, _replay(prepared.strawberry_body(request)), send)
        if key is not None:
            self._keep_answer(key, scope.get(CONTEXT_SCOPE_KEY))

    async def _prepare(
        self, request: Request, body: bytes, signed_in: SignedIn
    ) -> PreparedRequest | Response:
        """Before strawberry runs: find a persisted query's document (graph/persisted.py), the
        key its answer is kept under (graph/answers.py) and, for a GET, answer 304 when the
        client's copy is current (graph/conditional.py). A request strawberry will refuse is
        handed over as it is, with no key."""
        principal = signed_in.principal
        params = _request_params(request, body)
        if params is None:
            return PreparedRequest(body)
        query = params.get("query")
        if query is not None and not isinstance(query, str):
            return PreparedRequest(body)
        sha256 = persisted_query_hash(params.get("extensions"))
        persisted: tuple[dict[str, Any], PersistedDocument] | None = None
        if sha256 is None:
            if query and self.persisted.registered_only:
                return error_response(
                    400,
                    ErrorCode.PERSISTED_QUERY_REQUIRED,
                    "This server runs only registered documents: send the document's SHA-256 in "
                    'extensions.persistedQuery ({"version": 1, "sha256Hash": ...}).',
                )
            if not query:
                return PreparedRequest(body)
            sha256 = document_hash(query)
        else:
            document = await self.persisted.document(principal, sha256, query)
            request.scope[PERSISTED_SCOPE_KEY] = document
            if query is None:
                persisted = (params, document)
        variables = params.get("variables")
        operation_name = params.get("operationName")
        if (variables is not None and not isinstance(variables, dict)) or (
            operation_name is not None and not isinstance(operation_name, str)
        ):
            # strawberry says what is wrong with them
            return PreparedRequest(body, persisted=persisted)
        key = answer_key(
            principal=principal,
            version=signed_in.version,
            document_sha256=sha256,
            operation_name=operation_name,
            variables=variables,
        )
        if request.method != "GET":
            return PreparedRequest(body, key, persisted)
        tag = entity_tag(
            fingerprint=self.fingerprint,
            principal=principal,
            version=signed_in.version,
            document_sha256=sha256,
            operation_name=operation_name,
            variables=variables,
        )
        request.scope[ETAG_SCOPE_KEY] = tag
        if none_match(request.headers.get("if-none-match"), tag):
            return await self._not_modified(principal, tag)
        return PreparedRequest(body, key, persisted)

    async def _kept_answer(self, principal: Principal, kept: Snapshot) -> Response | None:
        """The kept answer, charged its operation's cost; None when the budget cannot pay it
        (the operation then runs, and is refused as any would be)."""
        budgets = token_budgets(self.service)
        receipt = None
        headers: dict[str, str] = {}
        if budgets is not None:
            receipt = await budgets.draw_async(principal.token_id, kept.cost)
            if not receipt.allowed:
                return None
            headers = receipt.headers()
        maximum = self.service.settings.graphql.max_query_cost
        body = snapshot_body(kept, cost_extensions(kept.cost, maximum, receipt))
        return Response(body, media_type="application/json", headers=headers)

    def _keep_answer(self, key: AnswerKey, context: object) -> None:
        """Keep the answer strawberry just sent, when the operation allows it (graph/answers.py)."""
        if (
            not isinstance(context, HttpContext)
            or context.keepable_data is None
            or context.operation_cost is None
            or context.response.status_code not in (None, 200)
        ):
            return
        expiries = [s.unchanged_until for s in context.states_read if s.unchanged_until]
        self.answers.keep(
            key,
            context.keepable_data,
            cost=context.operation_cost,
            expires_at=min(expiries) if expiries else None,
        )

    async def _not_modified(self, principal: Principal, tag: str) -> Response:
        """304: the client's copy is current. Nothing runs; the request still draws a point."""
        headers = {name.decode(): value.decode() for name, value in conditional_headers(tag)}
        budgets = token_budgets(self.service)
        if budgets is not None:
            receipt = await budgets.draw_async(principal.token_id, NOT_MODIFIED_COST)
            if not receipt.allowed:
                return rate_limited_response(receipt)
            headers |= receipt.headers()
        return Response(status_code=304, headers=headers)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Sign in from the handshake's header when it has one, else from the Licensing tab's
        session cookie (same origin only); otherwise strawberry accepts the socket and
        ``on_ws_connect`` signs in from the connection_init payload."""
        websocket = WebSocket(scope, receive, send)
        if "authorization" in websocket.headers:
            principal = await self._principal(websocket)
            if isinstance(principal, Response):
                await _refuse_handshake(websocket, principal)
                return
            scope[PRINCIPAL_SCOPE_KEY] = principal
            scope[SECRET_SCOPE_KEY] = bearer_secret(websocket.headers["authorization"])
        elif websocket.cookies.get(SESSION_COOKIE):
            principal = await websocket_session_principal(websocket, self.service)
            if isinstance(principal, Response):
                await _refuse_handshake(websocket, principal)
                return
            scope[PRINCIPAL_SCOPE_KEY] = principal
            scope[SESSION_SCOPE_KEY] = websocket.cookies[SESSION_COOKIE]
        await super().__call__(scope, receive, send)

    async def on_ws_connect(self, context: Any) -> UnsetType | dict[str, object] | None:
        if not isinstance(context, WebSocketContext):  # pragma: no cover - websockets only
            raise ConnectionRejectionError()
        if context.signed_in:
            return UNSET
        secret = bearer_secret(_authorization_param(context.connection_params))
        principal = await authenticate_token(context.client_address, self.service, secret)
        if isinstance(principal, Response) or secret is None:  # (no secret: always a Response)
            # graphql-transport-ws closes the socket with 4403 Forbidden; nothing is sent.
            raise ConnectionRejectionError()
        context.sign_in(principal, secret)
        return UNSET

    async def _principal(self, request: HTTPConnection) -> Principal | Response:
        return await sign_in(request, self.service)

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry expects an object (or a batch list) and fails with a 500 on a bare value.
        parsed = _strict_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(
                400, 'Send a JSON object such as {"query": "{ license { display } }"}.'
            )
        return parsed

    def refused_http_request(self, status_code: int, reason: str) -> Response:
        # Strawberry answers its own refusals (bad JSON, content type, batch, GET mutation) in
        # plain text; they are answered as JSON with a code, like every other error.
        answer = refusal_for(status_code, reason)
        return error_response(
            answer.status_code, answer.code, answer.message, headers=answer.headers
        )

    async def refusal_before_ws_operation(self, context: Any) -> GraphQLError | None:
        # The connection's token is checked again before every operation: once it is revoked
        # or has expired, the connection runs nothing more.
        if isinstance(context, WebSocketContext) and not await context.still_signed_in():
            return ClientError(signed_out(context.principal, self.service.clock()))
        return None

    async def get_context(self, request: Any, response: Any) -> GraphContext:
        if request.scope["type"] == "websocket":
            context = WebSocketContext(
                principal=NOT_SIGNED_IN,
                service=self.service,
                client_address=client_address(request),
            )
            principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
            if principal is not None and SESSION_SCOPE_KEY in request.scope:
                context.sign_in_with_session(principal, request.scope[SESSION_SCOPE_KEY])
            elif principal is not None:
                context.sign_in(principal, request.scope[SECRET_SCOPE_KEY])
            return context
        # Only the GraphiQL page (development mode) comes here without signing in; strawberry
        # builds a context for it too, but runs no operation.
        principal = request.scope.get(PRINCIPAL_SCOPE_KEY, NOT_SIGNED_IN)
        http_context = HttpContext(
            principal=principal,
            service=self.service,
            response=response,
            persisted=request.scope.get(PERSISTED_SCOPE_KEY),
            etag=request.scope.get(ETAG_SCOPE_KEY),
        )
        request.scope[CONTEXT_SCOPE_KEY] = http_context
        return http_context


def _authorization_param(params: Mapping[str, object] | None) -> object:
    """The connection_init payload's ``Authorization`` entry, whatever its letter case."""
    for key, value in (params or {}).items():
        if isinstance(key, str) and key.lower() == "authorization":
            return value
    return None


async def _refuse_handshake(websocket: WebSocket, response: Response) -> None:
    """Answer the handshake with the HTTP response (401) when the server can, else with 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008)


def _with_ide_policy(send: Send) -> Send:
    """The GraphiQL page (development mode only) runs inline scripts and loads its code from
    unpkg.com: its own, looser Content-Security-Policy, which app/security_headers.py keeps.
    Framing stays refused."""

    async def send_with_policy(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            headers.append((b"content-security-policy", GRAPHIQL_POLICY.encode("ascii")))
            message["headers"] = headers
        await send(message)

    return send_with_policy


def _wants_ide(request: Request) -> bool:
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and "text/html" in request.headers.get("accept", "")
    )


async def _read_limited_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is longer than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _strict_json(data: str | bytes) -> Any:
    """The request's JSON, or a 400 saying what is wrong with it.

    Strict where Python's json module is lenient (NaN, unpaired surrogate escapes) and a 400
    where it raises something other than a JSON error (bytes that are not UTF-8, numbers of more
    than 4300 digits, nesting past the recursion limit), which strawberry would answer with 500.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        raise HTTPException(
            400, f"The request body is not valid UTF-8 (at byte {error.start})."
        ) from None
    try:
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise HTTPException(
            400,
            f"The request body is not valid JSON ({error.msg} at line {error.lineno}, column "
            f'{error.colno}): send {{"query": "..."}}.',
        ) from None
    except ValueError:  # a number too long to convert
        raise HTTPException(400, "A number in the request has too many digits.") from None
    except RecursionError:
        raise HTTPException(400, "The request's JSON is nested too deeply.") from None
    if "\\u" in text and _has_unpaired_surrogate(parsed):
        raise HTTPException(
            400,
            "The request contains an unpaired surrogate escape (\\ud800 to \\udfff), "
            "which is not Unicode text.",
        )
    return parsed


def _refuse_constant(name: str) -> Any:
    raise HTTPException(400, f"{name} is not a JSON number: send numbers as digits.")


def _has_unpaired_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _request_params(request: Request, body: bytes) -> dict[str, Any] | None:
    """The GraphQL request's fields (query, variables, operationName, extensions), or None when
    strawberry will refuse the request anyway (and say why)."""
    try:
        if request.method == "GET":
            params: dict[str, Any] = dict(request.query_params)
            for name in ("variables", "extensions"):
                if params.get(name):
                    params[name] = _strict_json(params[name])
            return params
        if "application/json" not in request.headers.get("content-type", ""):
            return None
        parsed = _strict_json(body)
    except HTTPException:
        return None
    return parsed if isinstance(parsed, dict) else None


def _with_document(request: Request, params: dict[str, Any], document: PersistedDocument) -> bytes:
    """The request as strawberry reads it, with the persisted document's text in ``query``: the
    query string of a GET (the body is empty), the JSON body of a POST."""
    if request.method == "GET":
        items = [(k, v) for k, v in request.query_params.multi_items() if k != "query"]
        request.scope["query_string"] = urlencode([*items, ("query", document.text)]).encode()
        return b""
    return json.dumps({**params, "query": document.text}).encode("utf-8")


def _with_conditional_headers(scope: Scope, send: Send, *, head: bool) -> Send:
    """A GET answer says how it may be kept (``Cache-Control``, ``Vary``) and, when the
    operation allows it (graph/conditional.py), carries its ``ETag``. HEAD sends no body."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            context = scope.get(CONTEXT_SCOPE_KEY)
            # A kept answer (graph/answers.py) is always one that may carry its tag.
            allowed = scope.get(KEPT_ANSWER_SCOPE_KEY, False) or (
                isinstance(context, GraphContext) and context.etag_allowed
            )
            tag = scope.get(ETAG_SCOPE_KEY) if allowed and message["status"] == 200 else None
            headers = list(message.get("headers", ()))
            present = {name.lower() for name, _value in headers}
            headers.extend(h for h in conditional_headers(tag) if h[0] not in present)
            message["headers"] = headers
        elif message["type"] == "http.response.body" and head:
            message = {**message, "body": b""}
        await send(message)

    return send_with_headers


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
