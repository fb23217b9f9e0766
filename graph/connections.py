"""Relay cursor connections over the keyset pages of licensing.storage.paging.

strawberry's ``relay.Connection`` gives the shape (``edges { cursor node }``, ``pageInfo`` with
all four fields); its ``relay.connection`` field would page a Python iterable, so the fields here
take ``first/after/last/before`` themselves and hand them to a keyset read in SQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from strawberry import relay

from graph.errors import ClientError
from licensing.domain.error_codes import ErrorCode
from licensing.problems import Problem
from licensing.storage.paging import KeysetList, Page, PageRequest, encode

Row = TypeVar("Row")
NodeT = TypeVar("NodeT", bound=relay.Node)

FIRST = "The first n items after `after` (default {default}, at most {maximum})."
AFTER = "A cursor: the items after it."
LAST = "The last n items before `before` (at most {maximum}); not with `first`."
BEFORE = "A cursor: the items before it."


def argument_descriptions(keyset: KeysetList) -> dict[str, str]:
    return {
        "first": FIRST.format(default=keyset.default_size, maximum=keyset.max_size),
        "after": AFTER,
        "last": LAST.format(maximum=keyset.max_size),
        "before": BEFORE,
    }


async def read_page(read: Awaitable[Page[Row]]) -> Page[Row]:
    """The page, or the caller's mistake (a size out of range, a cursor not from this list)
    as INVALID_ARGUMENT."""
    try:
        return await read
    except ValueError as error:
        raise ClientError(Problem(ErrorCode.INVALID_ARGUMENT, str(error))) from None


def page_parts(
    page: Page[Row],
    keyset: KeysetList,
    node_of: Callable[[Row], NodeT],
    key_of: Callable[[Row], int],
) -> tuple[list[relay.Edge[NodeT]], relay.PageInfo]:
    """The page's edges and its pageInfo."""
    edges = [relay.Edge(cursor=encode(keyset, key_of(row)), node=node_of(row)) for row in page.rows]
    page_info = relay.PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return edges, page_info


def page_request(
    first: int | None, after: str | None, last: int | None, before: str | None
) -> PageRequest:
    return PageRequest(first=first, after=after, last=last, before=before)


# Counts the rows of a whole connection; run only when its totalCount is asked for.
Counter = Callable[[], Awaitable[int]]
