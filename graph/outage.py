"""How every entry point answers while the database is unavailable (db/outage.py): HTTP 503 with
the code DATABASE_UNAVAILABLE and ``Retry-After``, never a 500 or a masked internal error.

- An HTTP request that meets the outage before its answer has started (signing in, /session, the
  report download, /readyz) is answered by ``DatabaseOutageAnswers``.
- A GraphQL operation whose resolvers meet it gets the coded error in its answer
  (graph/errors.py) and ``DatabaseOutageStatus`` makes that answer a 503.
- A websocket is refused (before it is accepted) or closed with 1013 "Try Again Later".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from db.outage import RETRY_AFTER_SECONDS, is_database_unavailable
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem

logger = logging.getLogger("licensing.database")

DATABASE_UNAVAILABLE = Problem(
    ErrorCode.DATABASE_UNAVAILABLE,
    f"The database is unavailable for a moment; nothing was changed. Try again in "
    f"{RETRY_AFTER_SECONDS} seconds.",
)
# The websocket close code for "the server cannot serve now; reconnect later" (RFC 6455 registry).
TRY_AGAIN_LATER = 1013


def outage_headers() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def outage_extensions() -> dict[str, Any]:
    return {"code": DATABASE_UNAVAILABLE.code, "retryAfterSeconds": RETRY_AFTER_SECONDS}


def database_unavailable_error(original: BaseException | None = None) -> GraphQLError:
    """The GraphQL error for an operation that met the outage (the cause is only logged)."""
    logger.warning("Database unavailable: %s", _summary(original))
    return GraphQLError(DATABASE_UNAVAILABLE.message, extensions=outage_extensions())


def database_unavailable_response() -> JSONResponse:
    # Imported here: graph.http imports this module's neighbours, not the other way round.
    from graph.responses import error_response

    return error_response(
        503, DATABASE_UNAVAILABLE.code, DATABASE_UNAVAILABLE.message, headers=outage_headers()
    )


class DatabaseOutageStatus(SchemaExtension):
    """Over HTTP, an answer that carries DATABASE_UNAVAILABLE is sent as 503 with Retry-After."""

    def on_operation(self) -> Iterator[None]:
        try:
            yield
        except GraphQLError as error:
            # Raised by an extension before execution (graph/errors.py names the outage).
            if _is_outage(error):
                self._answer_unavailable()
            raise
        result = self.execution_context.result
        if result is not None and any(_is_outage(error) for error in result.errors or ()):
            self._answer_unavailable()

    def _answer_unavailable(self) -> None:
        response = getattr(self.execution_context.context, "response", None)
        if response is not None:  # over a websocket the error alone tells the client
            response.status_code = 503
            response.headers.update(outage_headers())


def _is_outage(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == DATABASE_UNAVAILABLE.code


class DatabaseOutageAnswers:
    """ASGI middleware: an outage raised out of the application becomes the 503 answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent: set[str] = set()

        async def tracking_send(message: Message) -> None:
            sent.add(message["type"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            logger.warning("Database unavailable: %s", _summary(error))
            if scope["type"] == "http":
                if "http.response.start" in sent:
                    raise  # the answer is half sent: only dropping the connection tells the client
                await database_unavailable_response()(scope, receive, send)
            elif {"websocket.close", "websocket.http.response.start"} & sent:
                return  # already closed or refused
            elif "websocket.accept" in sent or "websocket.http.response" not in scope.get(
                "extensions", {}
            ):
                await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": ""})
            else:
                await database_unavailable_response()(scope, receive, send)


def _summary(error: BaseException | None) -> str:
    """The error's class and first line, for the server's log (no SQL or parameters)."""
    if error is None:
        return "unknown"
    original = getattr(error, "orig", None) or error
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first_line}"[:300]
