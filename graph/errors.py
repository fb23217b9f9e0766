"""Errors the API reports as they are; anything else is masked so no internals leak.

Every error in an answer carries ``extensions.code``: the caller's mistakes the resolvers report
have their own (``ClientError``); a document that does not parse is ``GRAPHQL_PARSE_FAILED``, one
the schema refuses ``GRAPHQL_VALIDATION_FAILED``, variables of the wrong kind ``BAD_USER_INPUT``,
and a masked failure ``INTERNAL_SERVER_ERROR``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from graphql import (
    GRAPHQL_MAX_INT,
    FloatValueNode,
    GraphQLError,
    IntValueNode,
    OperationDefinitionNode,
)
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

from db.outage import is_database_unavailable
from graph.outage import database_unavailable_error
from graph.strawberry_compat import (
    HTTP_REFUSALS,
    StrawberryRefusal,
    provided_operation_name,
    strawberry_refusal,
)
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem

logger = logging.getLogger("licensing.graphql")

INTERNAL_ERROR_MESSAGE = "Internal error. The request was not completed; please try again."


class ClientError(GraphQLError):
    """An error meant for the caller, with a stable ``extensions.code``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message, extensions={"code": problem.code})


def is_internal(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False
    if is_database_unavailable(original):
        return True  # replaced by DATABASE_UNAVAILABLE (anonymise_error), logged there
    logger.error("Unexpected error in %s", error.path, exc_info=original)
    return True


def _with_code(error: GraphQLError, code: ErrorCode) -> GraphQLError:
    if (error.extensions or {}).get("code"):
        return error
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": code},
    )


def _readable_literal_error(error: GraphQLError) -> GraphQLError:
    """A number literal too long for Python to convert fails inside graphql-core with a
    ValueError (which would be masked): it is answered as the caller's mistake instead."""
    nodes = error.nodes or []
    if not (isinstance(error.original_error, ValueError) and nodes):
        return error
    literal = nodes[0]
    if not isinstance(literal, IntValueNode | FloatValueNode):
        return error
    return GraphQLError(
        f"A number in the query has {len(literal.value)} characters; an Int is at most "
        f"{GRAPHQL_MAX_INT} and a Float at most about 1.8e308.",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        extensions={"code": ErrorCode.GRAPHQL_VALIDATION_FAILED},
    )


def _refuse_unnamed_choice(execution_context: ExecutionContext) -> None:
    """Strawberry runs the first of several operations when no operationName is sent; the
    GraphQL specification makes that an error, and a caller should not get a guess."""
    document = execution_context.graphql_document
    if document is None:
        return
    operations = sum(isinstance(node, OperationDefinitionNode) for node in document.definitions)
    # The name as the caller sent it (the public ``operation_name`` fills in the first
    # operation's). Unknown: no check.
    provided = provided_operation_name(execution_context)
    if operations > 1 and provided is None:
        raise GraphQLError(
            f"The document has {operations} operations: send the name of the one to run as "
            "operationName.",
            extensions={"code": ErrorCode.OPERATION_NAME_REQUIRED},
        )


class MaskAndCodeErrors(MaskErrors):
    """Masks unexpected errors, then gives each error without a code the code of its stage."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_internal, error_message=INTERNAL_ERROR_MESSAGE)
        self._executing = False

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        if is_database_unavailable(error.original_error):
            outage = database_unavailable_error(error.original_error)
            return GraphQLError(
                outage.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions=outage.extensions,
            )
        return _with_code(super().anonymise_error(error), ErrorCode.INTERNAL_SERVER_ERROR)

    def on_validate(self) -> Iterator[None]:
        _refuse_unnamed_choice(self.execution_context)
        yield
        # In place: strawberry already holds this list (and the validation cache keeps it).
        errors = self.execution_context.pre_execution_errors
        if errors:
            errors[:] = [_readable_literal_error(error) for error in errors]

    def on_execute(self) -> Iterator[None]:
        self._executing = True
        yield

    def on_operation(self) -> Iterator[None]:
        self._executing = False
        try:
            yield from super().on_operation()
        except GraphQLError as error:
            # The parser cache parses inside its hook, so a syntax error arrives here as an
            # exception; strawberry answers it as it is, without this extension's code.
            stage = ErrorCode.GRAPHQL_PARSE_FAILED
            if self.execution_context.graphql_document is not None:
                stage = ErrorCode.GRAPHQL_VALIDATION_FAILED
            raise _with_code(error, stage) from None
        except HTTP_REFUSALS:
            raise  # answered by the HTTP layer with 400
        except Exception as error:
            if is_database_unavailable(error):
                raise database_unavailable_error(error) from None
            # Strawberry would answer an exception from another extension with its text.
            logger.error("Unexpected error before execution", exc_info=error)
            raise GraphQLError(
                INTERNAL_ERROR_MESSAGE, extensions={"code": ErrorCode.INTERNAL_SERVER_ERROR}
            ) from None
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        if self.execution_context.graphql_document is None:
            stage = ErrorCode.GRAPHQL_PARSE_FAILED
        elif self._executing:
            # Before any field runs, execution checks the variables and picks the operation.
            stage = ErrorCode.BAD_USER_INPUT
        else:
            stage = ErrorCode.GRAPHQL_VALIDATION_FAILED
        result.errors = [
            error if error.path else _with_code(error, stage) for error in result.errors
        ]


def mask_internal_errors() -> MaskErrors:
    return MaskAndCodeErrors()


@dataclass(frozen=True)
class Refusal:
    """How a request refused before GraphQL runs is answered."""

    status_code: int
    code: ErrorCode
    message: str
    headers: dict[str, str] = field(default_factory=dict)


_CODES_BY_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.REQUEST_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}
# Strawberry's reasons for refusing a request, in words a caller can act on.
_REFUSALS = {
    StrawberryRefusal.UNSUPPORTED_CONTENT_TYPE: Refusal(
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        "Send the request as JSON with the header 'Content-Type: application/json' "
        "(or run a query with GET /graphql?query=...).",
    ),
    StrawberryRefusal.INVALID_JSON: Refusal(
        400, ErrorCode.BAD_REQUEST, 'The request body is not valid JSON: send {"query": "..."}.'
    ),
    StrawberryRefusal.BATCH_NOT_ENABLED: Refusal(
        400,
        ErrorCode.BATCH_NOT_SUPPORTED,
        "Send one operation per request: a JSON array of operations (a batch) is not supported.",
    ),
    StrawberryRefusal.NO_QUERY: Refusal(
        400,
        ErrorCode.BAD_REQUEST,
        'No GraphQL query found in the request: send {"query": "{ license { display } }"}.',
    ),
    StrawberryRefusal.NO_OPERATION_TYPE: Refusal(
        400,
        ErrorCode.BAD_REQUEST,
        "Say which operation to run: the document has several (or none), so send the name of "
        "one as operationName.",
    ),
    StrawberryRefusal.MUTATION_OVER_GET: Refusal(
        405,
        ErrorCode.METHOD_NOT_ALLOWED,
        "Mutations must be sent with POST; GET runs queries only.",
        {"Allow": "POST"},
    ),
    StrawberryRefusal.SUBSCRIPTION_OVER_GET: Refusal(
        400,
        ErrorCode.BAD_REQUEST,
        "GraphQL subscriptions are not allowed over HTTP: open a websocket to /graphql "
        "(graphql-transport-ws).",
    ),
    StrawberryRefusal.SUBSCRIPTION_OVER_POST: Refusal(
        400,
        ErrorCode.BAD_REQUEST,
        "GraphQL subscriptions are not allowed over HTTP: open a websocket to /graphql "
        "(graphql-transport-ws).",
    ),
}


def refusal_for(status_code: int, reason: str) -> Refusal:
    """The answer to a request the HTTP layer refused with this status and reason."""
    refused_by = strawberry_refusal(reason)
    known = _REFUSALS.get(refused_by) if refused_by else None
    if known is not None:
        return known
    return Refusal(status_code, _CODES_BY_STATUS.get(status_code, ErrorCode.BAD_REQUEST), reason)
