"""Everything that leans on strawberry beyond its documented API, in one place.

Written for strawberry-graphql 0.341.2 (pyproject.toml bounds it below the next minor). The rest
of graph/ uses strawberry's public API (``strawberry.Schema``, ``strawberry.type``,
``SchemaExtension``, ``BasePermission``, the ASGI view's documented hooks) and, for anything
more, only the names here. When strawberry changes, tests/api/test_strawberry_seam.py says so;
this module is what to update.

What is private here, and why:
- ``schema._schema``: the graphql-core schema, which validation and cost measuring walk.
- ``_provided_operation_name``: the operationName as the caller sent it (the public
  ``operation_name`` fills in the document's first operation).
- ``validate_document``: strawberry's validation with its own extra rules, which the document
  cache (graph/limits.py) runs in place of strawberry's.
- ``Schema.execute``'s signature, copied to keep subscriptions off the single-answer (HTTP) path.
- The graphql-transport-ws handler, subclassed to run a check before every operation.
- The ASGI view's ``run`` and the handler class it uses, to answer strawberry's plain-text
  refusals as coded JSON.
- strawberry's English refusal reasons, named by ``StrawberryRefusal``.
- ``StrawberryGraphQLCoreExecutionContext``, strawberry's graphql-core executor, subclassed to run
  a subscription event once for all the subscriptions that receive it (graph/fanout.py).
- The graphql-transport-ws ``Operation`` a subscription runs in (``OperationChannel``), so that
  its resolver can send an update itself rather than through strawberry's per-result steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from enum import Enum
from typing import Any, TypeVar

import strawberry
from cross_web import HTTPException
from graphql import GraphQLError, GraphQLSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.schema import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    StrawberryGraphQLCoreExecutionContext,
    validate_document,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

STRAWBERRY_VERSION = "0.341.2"
# The executor strawberry hands graphql-core (``execution_context_class``), to subclass.
StrawberryExecutor = StrawberryGraphQLCoreExecutionContext

__all__ = [
    "HTTP_REFUSALS",
    "STRAWBERRY_VERSION",
    "UNSET",
    "GraphQLView",
    "HTTPException",
    "OperationChannel",
    "OperationNameUnknown",
    "SchemaWithoutSubscriptionsOverHttp",
    "StrawberryExecutor",
    "StrawberryRefusal",
    "UnsetType",
    "graphql_core_schema",
    "provided_operation_name",
    "strawberry_refusal",
    "validate_document",
]

# Raised inside the operation; strawberry's HTTP view turns them into 400 answers.
HTTP_REFUSALS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def graphql_core_schema(schema: BaseSchema) -> GraphQLSchema:
    """The graphql-core schema strawberry built."""
    return schema._schema  # type: ignore[attr-defined]


class OperationNameUnknown(Enum):
    """strawberry no longer says which operationName the caller sent."""

    UNKNOWN = "unknown"


def provided_operation_name(
    execution_context: ExecutionContext,
) -> str | OperationNameUnknown | None:
    """The operationName as the caller sent it (None: none was sent)."""
    return getattr(execution_context, "_provided_operation_name", OperationNameUnknown.UNKNOWN)


class StrawberryRefusal(Enum):
    """strawberry's reasons (in its own words) for refusing a request before or instead of
    running it."""

    UNSUPPORTED_CONTENT_TYPE = "Unsupported content type"
    INVALID_JSON = "Unable to parse request body as JSON"
    BATCH_NOT_ENABLED = "Batching is not enabled"
    NO_QUERY = "No GraphQL query found in the request"
    NO_OPERATION_TYPE = "Can't get GraphQL operation type"
    MUTATION_OVER_GET = "mutations are not allowed when using GET"
    SUBSCRIPTION_OVER_GET = "subscriptions are not allowed when using GET"
    SUBSCRIPTION_OVER_POST = "subscriptions are not allowed when using POST"


def strawberry_refusal(reason: str) -> StrawberryRefusal | None:
    """Which of strawberry's refusals this reason is; None for any other (our own words)."""
    try:
        return StrawberryRefusal(reason)
    except ValueError:
        return None


class SchemaWithoutSubscriptionsOverHttp(strawberry.Schema):
    """A schema whose ``execute`` (the single-answer path the HTTP view takes) runs no
    subscription: one answer cannot carry one, so strawberry refuses it with 400 instead of
    failing inside. Subscriptions run over the websocket (``subscribe``)."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed - {OperationType.SUBSCRIPTION},
            operation_extensions=operation_extensions,
        )


# The graphql-transport-ws operation whose task is running (each operation has its own task, so
# its own copy of the context).
_running_operation: ContextVar[Operation[Any, None] | None] = ContextVar(
    "running_operation", default=None
)


class _CheckedTransportWSHandler(BaseGraphQLTransportWSHandler[Any, None]):
    """graphql-transport-ws, asking the view before every operation of a signed-in connection
    whether to refuse it (``GraphQLView.refusal_before_ws_operation``); each operation's task
    knows its operation (``OperationChannel.running``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The ``extensions`` of each running operation's first ``next`` message, by id.
        self.first_extensions: dict[str, Any] = {}

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        view = self.view
        if self.connection_acknowledged and isinstance(view, GraphQLView):
            error = await view.refusal_before_ws_operation(self.context)
            if error is not None:
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [error.formatted]}
                )
                return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Any, None]) -> None:
        _running_operation.set(operation)
        try:
            await super().run_operation(operation)
        finally:
            self.first_extensions.pop(operation.id, None)

    async def send_message(self, message: Message) -> None:
        if message["type"] == "next":
            extensions = message["payload"].get("extensions")
            if extensions is not None and message["id"] not in self.first_extensions:
                self.first_extensions[message["id"]] = extensions
        await super().send_message(message)


class OperationChannel:
    """The running graphql-transport-ws operation, so that its resolver may send it ``next``
    messages itself: its id, the ``extensions`` its first message carried (later messages carry
    the same, as strawberry's would), and its websocket."""

    def __init__(
        self, operation: Operation[Any, None], handler: _CheckedTransportWSHandler
    ) -> None:
        self.operation = operation
        self.handler = handler

    @classmethod
    def running(cls) -> OperationChannel | None:
        """The operation of the running task, when it is a websocket operation of this view."""
        operation = _running_operation.get()
        if operation is None or not isinstance(operation.handler, _CheckedTransportWSHandler):
            return None
        return cls(operation, operation.handler)

    @property
    def id(self) -> str:
        return self.operation.id

    @property
    def first_extensions(self) -> Any:
        """The ``extensions`` of the operation's first ``next`` message (None: none, or none
        sent yet)."""
        return self.handler.first_extensions.get(self.operation.id)

    async def send_text(self, message: str) -> bool:
        """Send a message, JSON already; nothing once the operation has completed. False when
        the websocket has closed (the connection's handler then ends the operation)."""
        if self.operation.completed:
            return True
        adapter = self.handler.websocket
        assert isinstance(adapter, ASGIWebSocketAdapter)  # the view is strawberry's ASGI view
        try:
            await adapter.ws.send_text(message)
        except (WebSocketDisconnect, OSError, RuntimeError):
            # OSError: the server's (uvicorn's ClientDisconnected); RuntimeError: starlette's
            # answer to a send on a socket it has seen close.
            return False
        return True


ViewContext = TypeVar("ViewContext")


class GraphQLView(GraphQL[ViewContext, None]):
    """strawberry's ASGI view with two hooks it lacks: a check before every websocket operation,
    and the answer to a request strawberry refuses (which it answers in plain text)."""

    graphql_transport_ws_handler_class = _CheckedTransportWSHandler

    async def refusal_before_ws_operation(self, context: Any) -> GraphQLError | None:
        """The error to answer an operation of this signed-in connection with; None runs it."""
        return None

    def refused_http_request(self, status_code: int, reason: str) -> Response | None:
        """The answer to an HTTP request strawberry (or ``parse_json``) refused with this status
        and reason; None keeps strawberry's plain-text answer."""
        return None

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        except HTTPException as refused:
            if not isinstance(request, Request):
                raise
            answer = self.refused_http_request(refused.status_code, refused.reason)
            if answer is None:
                raise
            return answer
