"""The /graphql endpoint: body-size limit and bearer-token sign-in before strawberry runs."""

from __future__ import annotations

from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.schema import BaseSchema

from graph.context import GraphContext
from licensing.service import LicensingService
from licensing.tokens import Principal

PRINCIPAL_SCOPE_KEY = "licensing.principal"


def error_response(status_code: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status_code,
        headers=headers,
    )


class LicensingGraphQL(GraphQL):
    """Strawberry's ASGI view, with every HTTP request authenticated and size-limited first."""

    def __init__(
        self,
        schema: BaseSchema,
        *,
        service: LicensingService,
        max_body_bytes: int,
        development: bool,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if development else None,
            allow_queries_via_get=True,
            subscription_protocols=(),
        )
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.development = development

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await error_response(400, "BAD_REQUEST", "Use HTTP for /graphql.")(scope, receive, send)
            return
        request = Request(scope, receive)
        if self.development and _wants_ide(request):
            await super().__call__(scope, receive, send)
            return
        body = await _read_limited_body(request, self.max_body_bytes)
        if body is None:
            response = error_response(
                413,
                "REQUEST_TOO_LARGE",
                f"The request body is larger than {self.max_body_bytes} bytes.",
            )
            await response(scope, receive, send)
            return
        principal = await self._principal(request)
        if isinstance(principal, Response):
            await principal(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await super().__call__(scope, _replay(body), send)

    async def _principal(self, request: Request) -> Principal | Response:
        """The caller, or the 401 response explaining why they are not signed in."""
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="licensing"'}
        if scheme.lower() != "bearer" or not secret.strip():
            return error_response(
                401,
                "UNAUTHENTICATED",
                "Sign in with an API token: send the header 'Authorization: Bearer <token>'.",
                **challenge,
            )
        principal = await self.service.authenticate(secret.strip())
        if principal is None:
            return error_response(
                401,
                "UNAUTHENTICATED",
                "The API token is not valid or has been revoked.",
                **challenge,
            )
        return principal

    def parse_json(self, data: str | bytes) -> Any:
        # Strawberry expects an object (or a batch list) and fails with a 500 on a bare value.
        parsed = super().parse_json(data)
        if not isinstance(parsed, dict | list):
            raise HTTPException(
                400, 'Send a JSON object such as {"query": "{ license { display } }"}.'
            )
        return parsed

    async def get_context(self, request: Any, response: Any) -> GraphContext:
        return GraphContext(principal=request.scope[PRINCIPAL_SCOPE_KEY], service=self.service)


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


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
