"""What a GraphQL operation costs, known before it runs, and the extension that charges it.

The cost counts the objects an operation can make the server fetch, in the manner of Shopify's
calculated query cost and GitHub's node limit (docs/limits.md explains it to integrators):

- a scalar or enum field, or a list of them, costs nothing: it comes with its object;
- an object field costs 1 plus its fields; a mutation costs 10 plus its fields;
- a list of objects costs the most items it can return times (1 + the fields of each), so a list
  inside a list multiplies. The most items is its argument (``days``), or ``LIST_SIZES``;
- a connection (a field taking ``first`` or ``last``) costs 1 plus its fields, its ``edges`` and
  its ``nodes`` each holding ``first`` (or ``last``) items (the page size's maximum when it asks
  for more, its default when neither is given); an edge costs only its fields (its ``node`` is
  the object), so a page costs about a point a row;
- ``nodes(ids:)`` costs as many objects as it is given ids; ``node(id:)`` is one object;
- a list of cheap stored rows (``ListSize.items_per_point``, e.g. ``auditLog``, ``usageHistory``)
  counts a point per so many items, rounded up, in place of a point per item;
- ``__typename`` costs nothing and introspection (``__schema``, ``__type``) 1.

Calibration: a point stands for about ``POINT_MILLISECONDS`` of time as a client sees it, and the costs are
chosen so that this holds across operations (bench/neighbour.py measures points per millisecond
for each; docs/limits.md shows the figures). Two kinds of work do not grow with what a query
returns, and are charged on top:

- a field that scans the district's roster (``ROSTER_SCANS``, e.g. ``countReview``) costs a point
  per ``STUDENTS_PER_POINT`` students the district has, read from its maintained counts. The
  per-query maximum does not apply to it (the district's size is not the caller's choice), but the
  budget pays it: in a large district such a query needs a full bucket and empties it;
- merging different selections that share a response name (graph/limits.py) costs a point per
  ``MERGES_PER_POINT`` pairs.

A document refused before it runs (it does not parse, is too long, too complex, invalid, or too
costly) costs a point per ``REFUSED_BYTES_PER_POINT`` bytes of its text, at least 1: reading it
was the work.

An operation costs at least 1. Variables are resolved, so the cost is computed per request (a
walk over the document, far cheaper than running it); each fragment is measured once per page
size it is spread under however often it is spread, so fragment chains stay cheap to measure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension

from graph.context import GraphContext
from graph.http import HttpContext
from graph.limits import is_large_document, prepared_document
from graph.nodes import MAX_NODE_IDS
from graph.rate_limit import (
    COSTLY_RETRY_AFTER_SECONDS,
    CostlyOperationSlot,
    Receipt,
    cost_extensions,
    token_budgets,
)
from graph.strawberry_compat import graphql_core_schema
from licensing.domain.error_codes import ErrorCode
from licensing.domain.forecast import MAX_PROJECTION_DAYS
from licensing.domain.rules import AlertKind
from licensing.storage.audit import DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE
from licensing.storage.count_review import ReviewReason
from licensing.storage.data_sources import INTAKE_SAMPLE
from licensing.storage.deactivated_students import DEFAULT_PAGE_SIZE as DEFAULT_DEACTIVATED_PAGE
from licensing.storage.deactivated_students import MAX_PAGE_SIZE as MAX_DEACTIVATED_PAGE
from licensing.storage.history import MAX_HISTORY_DAYS
from licensing.storage.student_report import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

QUERY_TOO_COSTLY = ErrorCode.QUERY_TOO_COSTLY
# Measured on SQLite (bench/neighbour.py, as the client sees it, HTTP included): the dashboard
# query's 9 points take about 10 ms, a page of 100 students (101 points) about 120 ms.
POINT_MILLISECONDS = 1.0
# countReview reads every roster record of the district when it counts (the first read after a
# change of the roster; later reads answer from the kept review): about 0.95 s at 200,000
# students on SQLite, so a point per 25 students (8,000 points: charged several times its time,
# as a full bucket's worth is the point of the charge), on every read alike.
STUDENTS_PER_POINT = 25
# A page of 100 audit entries or 800 days of usage history takes about as long as the dashboard
# (each row is one narrow stored record): a point per 10 of them, rounded up.
CHEAP_ROWS_PER_POINT = 10
ROSTER_SCANS = frozenset({"Query.countReview"})
# Validation compares each pair of different selections with one response name: about 16
# microseconds a pair, so a point per 5 (graph/limits.py refuses more than max_field_merges).
MERGES_PER_POINT = 5
# Parsing takes about 1.5 microseconds a byte of dense GraphQL: a point per 64 bytes.
REFUSED_BYTES_PER_POINT = 64
OBJECT_COST = 1
MUTATION_COST = 10
INTROSPECTION_COST = 1
# A list of objects not in LIST_SIZES, such as a mutation payload's `errors`.
DEFAULT_LIST_SIZE = 10
# LicensingService.alert_history returns at most this many resolved alerts.
RESOLVED_ALERTS_SHOWN = 200


@dataclass(frozen=True)
class ListSize:
    """The most items a list field (or a connection's page) can return."""

    maximum: int
    # An Int argument asking for fewer, e.g. `days`.
    argument: str | None = None
    # Int arguments of which one asks for fewer (a connection's `first` or `last`); without
    # either, `default` items.
    either: tuple[str, ...] = ()
    default: int | None = None
    # A list argument asking for as many items as it holds, e.g. the `ids` of nodes.
    length_of: str | None = None
    # A Boolean argument that, when true, adds `flag_adds` items.
    flag: str | None = None
    flag_adds: int = 0
    # Cheap rows are counted a point per this many, rounded up (1: a point each).
    items_per_point: int = 1

    def items(self, arguments: Mapping[str, object]) -> int:
        count = self.maximum
        asking = [self.argument] if self.argument is not None else list(self.either)
        if self.either and self.default is not None:
            count = min(self.default, self.maximum)
        for name in asking:
            asked = arguments.get(name)
            if isinstance(asked, int) and not isinstance(asked, bool):
                count = max(0, min(asked, self.maximum))
                break
        if self.length_of is not None:
            listed = arguments.get(self.length_of)
            if isinstance(listed, list):
                count = min(len(listed), self.maximum)
        if self.flag is not None and arguments.get(self.flag) is True:
            count += self.flag_adds
        return count

    def charged_items(self, arguments: Mapping[str, object]) -> int:
        """How many items the cost counts: ``items``, a point per ``items_per_point``."""
        return -(-self.items(arguments) // self.items_per_point)


# A connection's page size is its `first` or its `last`.
PAGE_ARGUMENTS = ("first", "last")

# By schema coordinate ("Type.field"). Every list of objects and every connection in the schema
# is here or falls to DEFAULT_LIST_SIZE (tests/api/test_query_cost.py checks the connections).
LIST_SIZES: dict[str, ListSize] = {
    "Query.activeStudents": ListSize(
        maximum=MAX_PAGE_SIZE, either=PAGE_ARGUMENTS, default=DEFAULT_PAGE_SIZE
    ),
    "Query.deactivatedStudents": ListSize(
        maximum=MAX_DEACTIVATED_PAGE, either=PAGE_ARGUMENTS, default=DEFAULT_DEACTIVATED_PAGE
    ),
    "Query.auditLog": ListSize(
        maximum=MAX_AUDIT_PAGE,
        either=PAGE_ARGUMENTS,
        default=DEFAULT_AUDIT_PAGE,
        items_per_point=CHEAP_ROWS_PER_POINT,
    ),
    # As many objects as ids: each one of some Node type.
    "Query.nodes": ListSize(maximum=MAX_NODE_IDS, length_of="ids"),
    "Query.usageHistory": ListSize(
        maximum=MAX_HISTORY_DAYS, argument="days", items_per_point=CHEAP_ROWS_PER_POINT
    ),
    # One open alert of each kind at most, and the resolved ones when asked for.
    "Query.alerts": ListSize(
        maximum=len(AlertKind), flag="includeResolved", flag_adds=RESOLVED_ALERTS_SHOWN
    ),
    "Subscription.alertsChanged": ListSize(maximum=len(AlertKind)),
    "Query.countReview": ListSize(maximum=len(ReviewReason)),
    # One per roster source and a few per district: no fixed bound, so an estimate.
    "Query.dataSources": ListSize(maximum=DEFAULT_LIST_SIZE),
    "Query.scheduledJobs": ListSize(maximum=DEFAULT_LIST_SIZE),
    # A sample of stored rows, each narrow.
    # The forecast's projection: a computed row per day, as narrow as a usage day.
    "Forecast.projection": ListSize(
        maximum=MAX_PROJECTION_DAYS, argument="days", items_per_point=CHEAP_ROWS_PER_POINT
    ),
    "IntakeIssues.sample": ListSize(maximum=INTAKE_SAMPLE, items_per_point=CHEAP_ROWS_PER_POINT),
}


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> int:
    """The cost of the document's operation named ``operation_name`` (or its only one)."""
    return measure_operation(
        schema, document, operation_name=operation_name, variables=variables
    ).cost


@dataclass(frozen=True)
class OperationMeasure:
    cost: int
    # How many times the operation reads a field in ROSTER_SCANS.
    roster_scans: int = 0


def measure_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> OperationMeasure:
    """The operation's cost as ``operation_cost`` counts it, and its roster scans."""
    operations = [
        definition
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode)
        and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        )
    ]
    if len(operations) != 1:
        return OperationMeasure(1)  # execution reports the missing or ambiguous operation
    operation = operations[0]
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    if root is None:
        return OperationMeasure(1)
    values = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    values.update(variables or {})
    walk = _CostWalk(schema, document, values, mutation_root=schema.mutation_type)
    cost = max(1, walk.selection_set(operation.selection_set, root, page_size=None))
    return OperationMeasure(cost, roster_scans=walk.roster_scans)


def roster_scan_cost(students: int) -> int:
    """What one read of a ROSTER_SCANS field costs in a district of ``students`` records."""
    return -(-students // STUDENTS_PER_POINT)


def refused_document_cost(query: str | None) -> int:
    """What a document refused before it runs costs: its size."""
    size = len(query.encode("utf-8", "surrogatepass")) if query else 0
    return max(1, -(-size // REFUSED_BYTES_PER_POINT))


class _CostWalk:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: dict[str, Any],
        *,
        mutation_root: GraphQLObjectType | None,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.mutation_root = mutation_root
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.fragment_costs: dict[tuple[str, int | None], int] = {}
        self.roster_scans = 0

    def selection_set(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        *,
        page_size: int | None,
    ) -> int:
        """``page_size``: how many items a list directly in this selection holds (the page of
        the connection whose fields these are), or None."""
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page_size=page_size)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(
                    selection.selection_set, on or parent, page_size=page_size
                )
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page_size=page_size)
        return total

    def fragment(self, name: str, *, page_size: int | None) -> int:
        key = (name, page_size)
        if key not in self.fragment_costs:
            self.fragment_costs[key] = 0  # unknown or cyclic fragments are validation errors
            fragment = self.fragments.get(name)
            on = self.schema.get_type(fragment.type_condition.name.value) if fragment else None
            if fragment is not None and on is not None:
                self.fragment_costs[key] = self.selection_set(
                    fragment.selection_set, on, page_size=page_size
                )
        return self.fragment_costs[key]

    def field(self, node: FieldNode, parent: GraphQLNamedType, *, page_size: int | None) -> int:
        name = node.name.value
        if name == "__typename":
            return 0
        if name.startswith("__"):
            return INTROSPECTION_COST
        definition = getattr(parent, "fields", {}).get(name)
        if definition is None:
            return 0
        item_type = get_named_type(definition.type)
        if is_leaf_type(item_type):
            return 0
        coordinate = f"{parent.name}.{name}"
        if coordinate in ROSTER_SCANS:
            self.roster_scans += 1
        size = LIST_SIZES.get(coordinate)
        items = size.charged_items(self.arguments(node, definition)) if size else None
        if is_list_type(get_nullable_type(definition.type)):
            # A connection's page (its `edges`, its `nodes`) holds `first` or `last` items; an
            # edge only wraps its node, so it costs what its fields cost, and a node is an object:
            # a page costs about a point a row either way.
            own = OBJECT_COST
            if items is None and page_size is not None:
                items, own = page_size, (0 if name == "edges" else OBJECT_COST)
            elif items is None:
                items = DEFAULT_LIST_SIZE
            return items * (own + self.selection_set(node.selection_set, item_type, page_size=None))
        own = MUTATION_COST if parent is self.mutation_root else OBJECT_COST
        return own + self.selection_set(node.selection_set, item_type, page_size=items)

    def arguments(self, node: FieldNode, definition: GraphQLField) -> dict[str, object]:
        """The field's arguments as given (variables resolved), else their defaults."""
        values = {
            name: argument.default_value
            for name, argument in definition.args.items()
            if argument.default_value is not Undefined
        }
        for argument in node.arguments or ():
            value = value_from_ast_untyped(argument.value, self.variables)
            if value is not Undefined:
                values[argument.name.value] = value
        return values


def too_costly(cost: int, maximum: int) -> GraphQLError:
    return GraphQLError(
        f"This query costs {cost} points; at most {maximum} are allowed in one query. Ask for "
        "fewer items (a smaller `first` on connections, fewer `days` of usageHistory) or split "
        "it into several queries. docs/limits.md explains how cost is counted.",
        extensions={"code": QUERY_TOO_COSTLY, "cost": cost, "maximumCost": maximum},
    )


class QueryCost(SchemaExtension):
    """Refuses an operation costing more than ``maximum`` and charges its cost to the caller's
    token budget, after validation and before any resolver runs; the cost and what is left of the
    budget go in the response's ``extensions`` (and, over HTTP, in RateLimit headers). A document
    refused before that is charged by its size (``refused_document_cost``).

    Only operation-level hooks: it adds no work per field.
    """

    def __init__(self, *, maximum: int, max_tokens: int) -> None:
        super().__init__()
        self.maximum = maximum
        self.max_tokens = max_tokens
        self.cost: int | None = None
        self.receipt: Receipt | None = None

    async def on_parse(self) -> AsyncIterator[None]:
        """A large document from a token whose budget cannot pay for reading it is refused
        before it is parsed: parsing holds the interpreter, worker thread or not, so a flood of
        them would slow every district. Checking costs no statement (this worker's copy of the
        level); the refusal is charged the document's size, as any refused document is."""
        execution = self.execution_context
        context = execution.context
        query = execution.query
        if is_large_document(query) and isinstance(context, GraphContext):
            budgets = token_budgets(context.service)
            size = refused_document_cost(query)
            if budgets is not None:
                token_id = context.principal.token_id
                level = (await budgets.draw_async(token_id, 0)).remaining
                if level < size:
                    self.cost = size
                    self.receipt = await budgets.spend_async(token_id, size, retry_for=size)
                    self._publish(self.receipt)
                    raise GraphQLError(
                        self.receipt.refusal_message(),
                        extensions=self.receipt.refusal_extensions(),
                    )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        assert execution.graphql_document is not None
        # Counted as written, though the merged document runs (graph/limits.py). A persisted
        # document (graph/persisted.py) comes prepared; any other is in the document cache.
        persisted = (
            execution.context.persisted if isinstance(execution.context, GraphContext) else None
        )
        prepared = (
            persisted.prepared
            if persisted is not None and persisted.prepared is not None
            else prepared_document(execution.query, self.max_tokens)
            if execution.query
            else None
        )
        written = prepared.written if prepared is not None else execution.graphql_document
        try:
            measured = measure_operation(
                graphql_core_schema(execution.schema),
                written,
                operation_name=execution.operation_name,
                variables=execution.variables,
            )
        except RecursionError:
            raise GraphQLError(
                "The query is nested too deeply to measure its cost.",
                extensions={"code": QUERY_TOO_COSTLY},
            ) from None
        merges = prepared.merges if prepared is not None else 0
        self.cost = measured.cost + merges // MERGES_PER_POINT
        if isinstance(execution.context, GraphContext):
            execution.context.operation_cost = self.cost
        # Raised errors end the operation before execution (strawberry answers them as errors).
        if self.cost > self.maximum:
            raise too_costly(self.cost, self.maximum)
        context = execution.context
        if measured.roster_scans and isinstance(context, GraphContext):
            # The district's maintained counts, read once for the request (the resolvers reuse it).
            usage = (await context.district_state()).usage
            students = usage.active_students + usage.inactive_students
            self.cost += measured.roster_scans * roster_scan_cost(students)
        slot = None
        if measured.roster_scans and isinstance(context, GraphContext):
            slot = CostlyOperationSlot(context.service, context.principal.token_id)
            if not slot.taken:
                # Refused before the draw: charged by its size, as a refused document is.
                self._refuse_busy()
                raise GraphQLError(slot.refusal_message(), extensions=slot.refusal_extensions())
        try:
            budgets = token_budgets(context.service) if isinstance(context, GraphContext) else None
            if budgets is not None:
                token_id = context.principal.token_id
                self.receipt = await budgets.draw_async(token_id, self.cost)
                if not self.receipt.allowed and is_large_document(execution.query):
                    # Reading it was the work, and it was done: a token whose budget is short
                    # of such documents' cost pays for reading each until it cannot.
                    self.receipt = await budgets.spend_async(
                        token_id, refused_document_cost(execution.query), retry_for=self.cost
                    )
                self._publish(self.receipt)
                if not self.receipt.allowed:
                    raise GraphQLError(
                        self.receipt.refusal_message(),
                        extensions=self.receipt.refusal_extensions(),
                    )
            yield
        finally:
            if slot is not None:
                slot.release()

    async def get_results(self) -> dict[str, Any]:
        execution = self.execution_context
        context = execution.context
        budgets = token_budgets(context.service) if isinstance(context, GraphContext) else None
        requested = self.cost or 1
        if self.receipt is None:
            # Refused before execution (a syntax or validation error, too complex or too
            # costly): reading the document was the work, so its size is the charge.
            refused = refused_document_cost(execution.query)
            requested = max(requested, refused) if self.cost is None else requested
            if budgets is not None:
                self.receipt = await budgets.spend_async(context.principal.token_id, refused)
                self._publish(self.receipt)
        return cost_extensions(requested, self.maximum, self.receipt)

    def _refuse_busy(self) -> None:
        """Over HTTP: status 429, and when to retry."""
        context = self.execution_context.context
        if isinstance(context, HttpContext):
            context.response.status_code = 429
            context.response.headers["Retry-After"] = str(COSTLY_RETRY_AFTER_SECONDS)

    def _publish(self, receipt: Receipt) -> None:
        """Over HTTP: the RateLimit headers, and status 429 when the budget could not pay."""
        context = self.execution_context.context
        if isinstance(context, HttpContext):
            context.response.headers.update(receipt.headers())
            if not receipt.allowed:
                context.response.status_code = 429
