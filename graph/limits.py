"""Limits on GraphQL documents: the work of reading one is bounded before it is done.

Depth and aliases: strawberry's QueryDepthLimiter skips every introspection field (so
``__schema { types { fields { type { fields ... }}}}}`` is never limited), and both it and
MaxAliasesLimiter walk a fragment once per spread, which takes exponential time on
``fragment F2 { ...F1 ...F1 }`` chains. These rules count every field and look at each fragment
once.

Parsing and validation (``DocumentLimits``): graphql-core's check that fields with the same
response name can be merged compares every pair of them, so ``{ __typename __typename ... }``
(2,000 times) or ``{ license { display } }`` (440 times) took seconds of one core, on the event
loop, before the query's cost was known. So, before validation:

- identical selections side by side are merged into one (GraphQL's answer is the same: it merges
  them anyway), which makes repeated copies cost nothing to check or run;
- what is left is measured with one linear walk: the pairs of different selections that share a
  response name (``field_merges``). A document with more than ``graphql.max_field_merges`` is
  refused (``QUERY_TOO_COMPLEX``) without being validated;
- a document longer than ``THREAD_DOCUMENT_CHARACTERS`` is parsed and validated in a worker thread
  (at most ``DOCUMENT_THREADS`` at once), so a large one never holds the event loop, while the
  small ones every client sends run in place.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from anyio import CapacityLimiter, to_thread
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    Source,
    Token,
    parse,
)
from strawberry.extensions import SchemaExtension

from graph.strawberry_compat import graphql_core_schema, validate_document
from licensing.domain.error_codes import ErrorCode

# Documents longer than this are parsed and validated in a worker thread: about 1 ms of work in
# place (the Licensing tab's queries are a few hundred characters).
THREAD_DOCUMENT_CHARACTERS = 2_000
# Worker threads for large documents, apart from the threads that read the database: a flood of
# large documents waits for these instead of taking every thread the other requests need.
DOCUMENT_THREADS = 2
_document_threads: CapacityLimiter | None = None
# Parsed (and merged) and validated documents kept, by their text: the same query sent again
# is neither parsed nor validated again.
DOCUMENT_CACHE_SIZE = 256

# Type wrappers (lists, non-null) nest by ``ofType``; they add no cost, so they add no depth and
# the standard introspection query used by GraphiQL and code generators stays within the limit.
FREE_FIELDS = frozenset({"ofType"})


class _DocumentShape:
    """Depth and alias count of a document's operations, each fragment measured once."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.operations = [
            definition
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode)
        ]
        self._fragment_depths: dict[str, int] = {}
        self._fragment_aliases: dict[str, int] = {}

    def depth(self) -> int:
        return max((self._depth(op.selection_set) for op in self.operations), default=0)

    def aliases(self) -> int:
        return sum(self._aliases(op.selection_set) for op in self.operations)

    def _depth(self, selection_set: SelectionSetNode | None) -> int:
        deepest = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                level = 0 if selection.name.value in FREE_FIELDS else 1
                deepest = max(deepest, level + self._depth(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, self._depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(
                    deepest, self._fragment(selection, self._fragment_depths, self._depth)
                )
        return deepest

    def _aliases(self, selection_set: SelectionSetNode | None) -> int:
        count = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                count += (1 if selection.alias else 0) + self._aliases(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                count += self._aliases(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                count += self._fragment(selection, self._fragment_aliases, self._aliases)
        return count

    def _fragment(
        self,
        spread: FragmentSpreadNode,
        memo: dict[str, int],
        measure: Callable[[SelectionSetNode | None], int],
    ) -> int:
        name = spread.name.value
        if name not in memo:
            fragment = self.fragments.get(name)
            memo[name] = 0  # unknown or cyclic fragments are reported by the standard rules
            if fragment is not None:
                memo[name] = measure(fragment.selection_set)
        return memo[name]


def _too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": ErrorCode.QUERY_TOO_COMPLEX})


def depth_and_alias_errors(
    document: DocumentNode, *, max_depth: int, max_aliases: int
) -> list[GraphQLError]:
    """The document's depth and alias count over the limits, as errors (none when within)."""
    shape = _DocumentShape(document)
    try:
        depth, aliases = shape.depth(), shape.aliases()
    except RecursionError:
        return [_too_complex("The query is nested too deeply.")]
    errors = []
    if depth > max_depth:
        errors.append(
            _too_complex(
                f"The query's depth is {depth} levels of nested fields; at most {max_depth} "
                "are allowed. Ask for less nested data."
            )
        )
    if aliases > max_aliases:
        counted = f"{aliases}" if aliases < 1_000_000 else "more than 1000000"
        errors.append(
            _too_complex(
                f"The query uses {counted} aliases; at most {max_aliases} are allowed. "
                "Send fewer aliased fields."
            )
        )
    return errors


# --- Before validation: merging identical selections, measuring what is left ---------------------


def merge_identical_selections(document: DocumentNode) -> DocumentNode:
    """``document`` with identical selections side by side kept once.

    Two fields or inline fragments are identical when they read the same tokens (whitespace
    and commas aside) after their own repeats are merged; fragment spreads are kept as written. The answer is the same: GraphQL merges fields with the
    same response name, and identical ones add nothing to each other. Linear in the document:
    each selection's key is a small number standing for its content. Nodes are immutable, so a
    selection set that loses repeats is replaced, and so are the nodes above it."""
    keys: dict[tuple[object, ...], int] = {}

    def merged_selection(selection: SelectionNode) -> tuple[SelectionNode, int]:
        children: tuple[int, ...] = ()
        # Fields and inline fragments have a selection set; a fragment spread has none.
        if (
            isinstance(selection, FieldNode | InlineFragmentNode)
            and selection.selection_set is not None
        ):
            new_set, children = merged_set(selection.selection_set)
            if new_set is not selection.selection_set:
                selection = replace(selection, selection_set=new_set)
        own = (type(selection).__name__, _tokens_outside(selection), children)
        return selection, keys.setdefault(own, len(keys))

    def merged_set(selection_set: SelectionSetNode) -> tuple[SelectionSetNode, tuple[int, ...]]:
        kept: list[SelectionNode] = []
        seen: dict[int, None] = {}
        changed = False
        for selection in selection_set.selections:
            new, key = merged_selection(selection)
            changed = changed or new is not selection
            if isinstance(selection, FragmentSpreadNode):
                # Kept as written: each spread is charged (graph/cost.py), and validation
                # compares a fragment once however often it is spread.
                kept.append(new)
            elif key in seen:
                changed = True
            else:
                seen[key] = None
                kept.append(new)
        if changed:
            selection_set = replace(selection_set, selections=tuple(kept))
        return selection_set, tuple(seen)

    definitions = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            new_set, _ = merged_set(definition.selection_set)
            if new_set is not definition.selection_set:
                definition = replace(definition, selection_set=new_set)
        definitions.append(definition)
    return replace(document, definitions=tuple(definitions))


def _tokens_outside(selection: Node) -> tuple[object, ...]:
    """The selection's tokens before its selection set (alias, name, arguments, directives,
    type condition): what, besides its children, says what it selects."""
    loc = selection.loc
    if loc is None:  # pragma: no cover - parsed documents always have locations
        return (id(selection),)
    selection_set = getattr(selection, "selection_set", None)
    stop = (
        selection_set.loc.start_token if selection_set is not None and selection_set.loc else None
    )
    tokens: list[object] = []
    token: Token | None = loc.start_token
    while token is not None and token is not stop:
        tokens.append((token.kind, token.value))
        if token is loc.end_token:
            break
        token = token.next
    return tuple(tokens)


def field_merges(document: DocumentNode) -> int:
    """How many pairs of selections validation must compare because they share a response name
    in one selection set (fields of inline fragments and of each fragment spread there count in
    it, as graphql-core counts them). Each fragment is measured once."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    expanded: dict[str, Counter[str]] = {}

    def fields_of(selection_set: SelectionSetNode | None, counts: Counter[str]) -> None:
        spreads: set[str] = set()
        _collect(selection_set, counts, spreads)
        for name in spreads:
            counts.update(fragment_fields(name))

    def fragment_fields(name: str) -> Counter[str]:
        if name not in expanded:
            expanded[name] = Counter()  # unknown or cyclic fragments are validation errors
            fragment = fragments.get(name)
            if fragment is not None:
                counts: Counter[str] = Counter()
                fields_of(fragment.selection_set, counts)
                expanded[name] = counts
        return expanded[name]

    merges = 0
    pending: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        selection_set = pending.pop()
        counts: Counter[str] = Counter()
        fields_of(selection_set, counts)
        merges += sum(count * (count - 1) // 2 for count in counts.values())
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode) and selection.selection_set is not None:
                pending.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                pending.extend(
                    inner.selection_set
                    for inner in selection.selection_set.selections
                    if isinstance(inner, FieldNode) and inner.selection_set is not None
                )
    return merges


def _collect(
    selection_set: SelectionSetNode | None, counts: Counter[str], spreads: set[str]
) -> None:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            counts[(selection.alias or selection.name).value] += 1
        elif isinstance(selection, InlineFragmentNode):
            _collect(selection.selection_set, counts, spreads)
        elif isinstance(selection, FragmentSpreadNode):
            spreads.add(selection.name.value)


# GraphQL's tokens as graphql-core's ``max_tokens`` counts them (comments included), for a count
# about thirty times cheaper than parsing: a document over the limit is refused without being
# parsed. Anything else is one token: the parser would refuse it anyway.
_TOKEN = re.compile(
    r"""
    "{3}(?:\\"{3}|[^"]|"(?!""))*"{3}
    | "(?:[^"\\\n\r]|\\.)*"
    | \#[^\n\r]*
    | \.\.\.
    | -?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?
    | [_A-Za-z][_0-9A-Za-z]*
    | [^\s,\ufeff]
    """,
    re.VERBOSE,
)


def refuse_over_token_limit(query: str, max_tokens: int) -> None:
    """Raise the parser's own error when ``query`` has more than ``max_tokens`` tokens, having
    counted them without parsing; a shorter document is left to the parser."""
    if len(query) <= max_tokens:
        return  # every token is at least one character
    for count, token in enumerate(_TOKEN.finditer(query), start=1):
        if count > max_tokens:
            raise GraphQLSyntaxError(
                Source(query),
                token.start(),
                f"Document contains more than {max_tokens} tokens. Parsing aborted.",
            )


@dataclass(frozen=True)
class PreparedDocument:
    """A query's document as written (what depth, aliases and cost count), the same with
    identical selections merged (what the standard rules validate and what runs: the same verdict
    and answer, without comparing or resolving repeats), and the field merges left in it."""

    written: DocumentNode
    merged: DocumentNode
    merges: int


@dataclass(frozen=True)
class PersistedDocument:
    """A document a client sent by its hash (graph/persisted.py): its text and, when it
    parsed, the prepared document; ``valid`` when it is within the limits and valid for the
    schema, so it runs without being parsed or validated again."""

    sha256: str
    text: str
    prepared: PreparedDocument | None  # None: it did not parse
    valid: bool


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def prepared_document(query: str, max_tokens: int) -> PreparedDocument:
    """``query`` parsed (at most ``max_tokens`` tokens), merged and measured; cached by text."""
    refuse_over_token_limit(query, max_tokens)
    written = parse(query, max_tokens=max_tokens)
    try:
        merged = merge_identical_selections(written)
        return PreparedDocument(written, merged, field_merges(merged))
    except RecursionError:
        return PreparedDocument(written, written, 0)  # the depth limit refuses it


_validated = lru_cache(maxsize=DOCUMENT_CACHE_SIZE)(validate_document)


def document_threads() -> CapacityLimiter:
    global _document_threads
    if _document_threads is None:
        _document_threads = CapacityLimiter(DOCUMENT_THREADS)
    return _document_threads


def too_many_merges(merges: int, maximum: int) -> GraphQLError:
    return _too_complex(
        f"The query asks for fields of the same name {merges} times over in different ways "
        f"(pairs of selections to merge); at most {maximum} are allowed. Ask for each field "
        "once, with all the subfields you need."
    )


class DocumentLimits(SchemaExtension):
    """Parses (with ``max_tokens``), merges, measures and validates each document, a large one in
    a worker thread. The depth and alias limits and the field merges are checked first, and a
    document over them is refused without being validated. Takes the place of strawberry's
    MaxTokensLimiter, ParserCache and ValidationCache."""

    def __init__(
        self, *, max_tokens: int, max_depth: int, max_aliases: int, max_field_merges: int
    ) -> None:
        super().__init__()
        self.max_tokens = max_tokens
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_field_merges = max_field_merges
        self.prepared: PreparedDocument | None = None

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        query = context.query
        if context.graphql_document is None and query:
            if is_large_document(query):
                self.prepared = await to_thread.run_sync(
                    prepared_document, query, self.max_tokens, limiter=document_threads()
                )
            else:
                self.prepared = prepared_document(query, self.max_tokens)
            context.graphql_document = self.prepared.written
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        prepared = self.prepared
        if prepared is not None and context.pre_execution_errors is None:
            schema: GraphQLSchema = graphql_core_schema(context.schema)
            rules = tuple(context.validation_rules)
            if is_large_document(context.query):
                context.pre_execution_errors = await to_thread.run_sync(
                    self._errors, schema, prepared, rules, limiter=document_threads()
                )
            else:
                context.pre_execution_errors = self._errors(schema, prepared, rules)
            if not context.pre_execution_errors:
                # The merged document runs: the same answer, without resolving repeats. Cost is
                # still counted on the document as written (graph/cost.py).
                context.graphql_document = prepared.merged
        yield

    def _errors(
        self, schema: GraphQLSchema, prepared: PreparedDocument, rules: tuple[Any, ...]
    ) -> list[GraphQLError]:
        return document_errors(
            schema,
            prepared,
            rules,
            max_depth=self.max_depth,
            max_aliases=self.max_aliases,
            max_field_merges=self.max_field_merges,
        )


def document_errors(
    schema: GraphQLSchema,
    prepared: PreparedDocument,
    rules: tuple[Any, ...],
    *,
    max_depth: int,
    max_aliases: int,
    max_field_merges: int,
) -> list[GraphQLError]:
    """Why the document may not run: over the depth, alias or merge limits (checked first,
    so such a document is never validated), or invalid for the schema; [] when it may."""
    limits = depth_and_alias_errors(prepared.written, max_depth=max_depth, max_aliases=max_aliases)
    if limits:
        return limits
    if prepared.merges > max_field_merges:
        return [too_many_merges(prepared.merges, max_field_merges)]
    return _validated(schema, prepared.merged, rules)


def is_large_document(query: str | None) -> bool:
    """Whether reading ``query`` is work worth a worker thread (and a check of the budget)."""
    return query is not None and len(query) > THREAD_DOCUMENT_CHARACTERS
