"""Depth and alias limits for GraphQL documents.

Strawberry's QueryDepthLimiter skips every introspection field (so ``__schema { types { fields {
type { fields ... }}}}}`` is never limited), and both it and MaxAliasesLimiter walk a fragment once
per spread, which takes exponential time on ``fragment F2 { ...F1 ...F1 }`` chains. These rules
count every field and look at each fragment once.
"""

from __future__ import annotations

from collections.abc import Callable

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

# Type wrappers (lists, non-null) nest by ``ofType``; they add no cost, so they add no depth and
# the standard introspection query used by GraphiQL and code generators stays within the limit.
FREE_FIELDS = frozenset({"ofType"})


class _DocumentShape:
    """Depth and alias count of a document's operations, each fragment measured once."""

    def __init__(self, context: ValidationContext) -> None:
        document = context.document
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
    return GraphQLError(message, extensions={"code": "QUERY_TOO_COMPLEX"})


def depth_and_alias_rule(*, max_depth: int, max_aliases: int) -> type[ValidationRule]:
    """The validation rule enforcing both limits. Build it once per schema: the validation cache
    is keyed by the rule classes, so a new class per request would make every request miss it."""

    class DepthAndAliasLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            shape = _DocumentShape(context)
            try:
                depth, aliases = shape.depth(), shape.aliases()
            except RecursionError:
                context.report_error(_too_complex("The query is nested too deeply."))
                return
            if depth > max_depth:
                context.report_error(
                    _too_complex(
                        f"The query is nested {depth} levels deep; at most {max_depth} are "
                        "allowed. Ask for less nested data."
                    )
                )
            if aliases > max_aliases:
                counted = f"{aliases}" if aliases < 1_000_000 else "more than 1000000"
                context.report_error(
                    _too_complex(
                        f"The query uses {counted} aliases; at most {max_aliases} are allowed. "
                        "Send fewer aliased fields."
                    )
                )

    return DepthAndAliasLimits
