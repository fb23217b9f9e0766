"""The schema: roots joined from their modules, with the limits that protect the server."""

from __future__ import annotations

import logging
from functools import cache

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graph.conditional import VersionedAnswers
from graph.cost import QueryCost
from graph.errors import mask_internal_errors
from graph.fanout import SharedEventExecutor
from graph.limits import DocumentLimits
from graph.mutations.force_license_update import ForceLicenseUpdateMutation
from graph.mutations.local_students import LocalStudentsMutation
from graph.mutations.roster_sync import RosterSyncMutation
from graph.mutations.set_threshold import SetThresholdMutation
from graph.outage import DatabaseOutageStatus
from graph.persisted import PersistedDocuments
from graph.queries import Query
from graph.queries.history import HistoryQuery
from graph.queries.local_students import LocalStudentsQuery
from graph.queries.nodes import NodeQuery
from graph.queries.operations import OperationsQuery
from graph.strawberry_compat import SchemaWithoutSubscriptionsOverHttp
from graph.subscriptions import Subscription
from licensing.settings import GraphQLLimits

logger = logging.getLogger("licensing.graphql")

Mutation = merge_types(
    "Mutation",
    (SetThresholdMutation, ForceLicenseUpdateMutation, LocalStudentsMutation, RosterSyncMutation),
)


class LicensingSchema(SchemaWithoutSubscriptionsOverHttp):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Callers' mistakes (FORBIDDEN, validation) are answered, not logged with a traceback;
        # unexpected errors are logged where they are masked (graph.errors).
        for error in errors:
            logger.debug("GraphQL error: %s", error.message)


def build_schema(limits: GraphQLLimits | None = None) -> strawberry.Schema:
    """The schema with these limits. Built once per process for each set of limits (it is
    immutable, and building it walks every type): apps made with the same limits share it."""
    return _schema_with((limits or GraphQLLimits()).model_dump_json())


@cache
def _schema_with(limits_json: str) -> strawberry.Schema:
    limits = GraphQLLimits.model_validate_json(limits_json)
    return LicensingSchema(
        query=merge_types(
            "Query", (Query, OperationsQuery, HistoryQuery, LocalStudentsQuery, NodeQuery)
        ),
        mutation=Mutation,
        subscription=Subscription,
        # Runs a subscription event once for all the subscriptions receiving it (graph/fanout.py).
        execution_context_class=SharedEventExecutor,
        # Factories: strawberry builds fresh extensions per request (the caches are shared).
        extensions=[
            # First, so its parse hook runs before the parsing: refuses a large document the
            # token's budget cannot pay for. After validation, before any resolver: refuses
            # costly operations, charges budgets.
            lambda: QueryCost(maximum=limits.max_query_cost, max_tokens=limits.max_tokens),
            # A document sent by its hash comes parsed and validated: DocumentLimits and
            # strawberry's validation leave it alone.
            PersistedDocuments,
            # Parses, checks depth, aliases and field merges, then validates (cached; a large
            # document in a worker thread).
            lambda: DocumentLimits(
                max_tokens=limits.max_tokens,
                max_depth=limits.max_depth,
                max_aliases=limits.max_aliases,
                max_field_merges=limits.max_field_merges,
            ),
            # Outside the masking (its exit runs after): answers an outage with 503.
            DatabaseOutageStatus,
            # Whether a GET query's answer may carry its ETag (graph/conditional.py).
            VersionedAnswers,
            mask_internal_errors,
        ],
    )


@cache
def printed_schema(schema: strawberry.Schema) -> str:
    """A schema's SDL, printed once (printing walks every type)."""
    return schema.as_str()


def schema_sdl() -> str:
    """The SDL checked in as schema.graphql."""
    return printed_schema(build_schema()) + "\n"
