"""Keyset paging in both directions over one id column, in the manner of Relay's cursor
connections: ``first``/``after`` forwards, ``last``/``before`` backwards.

A page is one indexed range read of at most ``size + 1`` rows, however far into the list it
is (never an OFFSET, never the whole table), and the neighbour on the other side is one
``EXISTS``-style read of a single row: so ``hasPreviousPage`` and ``hasNextPage`` are exact
whichever way the client pages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, literal, select
from sqlmodel import Session

from licensing.storage import cursors

Row = TypeVar("Row")


@dataclass(frozen=True)
class PageRequest:
    """What a client asked for: ``first`` items after ``after``, or the ``last`` items before
    ``before`` (``after`` and ``before`` may bound either). Neither size: the list's default."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True)
class Page(Generic[Row]):
    """Rows in the list's order, whether the client paged forwards or backwards."""

    rows: list[Row]
    has_next_page: bool
    has_previous_page: bool


@dataclass(frozen=True)
class KeysetList:
    """How one list is ordered and how its cursors read.

    ``descending``: the list runs from the highest id down (newest first), so "after" a cursor
    means a smaller id."""

    cursor_kind: str
    where: str  # names the list in the error for a cursor it did not issue
    descending: bool
    default_size: int
    max_size: int


def page_size(request: PageRequest, keyset: KeysetList) -> int:
    """How many items the request asks for; ValueError for a size out of range or both."""
    if request.first is not None and request.last is not None:
        raise ValueError("Pass first or last, not both.")
    for name, size in (("first", request.first), ("last", request.last)):
        if size is not None and not 1 <= size <= keyset.max_size:
            raise ValueError(f"{name} must be between 1 and {keyset.max_size}, not {size}.")
    return request.first or request.last or keyset.default_size


def encode(keyset: KeysetList, row_id: int) -> str:
    return cursors.encode_cursor(keyset.cursor_kind, row_id)


def keyset_page(
    session: Session,
    *,
    keyset: KeysetList,
    base: Select[Any],
    conditions: Sequence[ColumnElement[bool]],
    key: ColumnElement[int],
    request: PageRequest,
    row_of: Callable[[Any], Row],
) -> Page[Row]:
    """One page of ``base`` (a select of the list's rows) restricted by ``conditions``, ordered
    by ``key``. ValueError for a size out of range or a cursor this list did not issue."""
    size = page_size(request, keyset)
    after = (
        cursors.decode_cursor(keyset.cursor_kind, request.after, where=keyset.where)
        if request.after is not None
        else None
    )
    before = (
        cursors.decode_cursor(keyset.cursor_kind, request.before, where=keyset.where)
        if request.before is not None
        else None
    )

    def beyond(value: int) -> ColumnElement[bool]:
        """Rows after ``value`` in the list's order."""
        return key < value if keyset.descending else key > value

    def short_of(value: int) -> ColumnElement[bool]:
        """Rows before ``value`` in the list's order."""
        return key > value if keyset.descending else key < value

    bounds = [*conditions]
    if after is not None:
        bounds.append(beyond(after))
    if before is not None:
        bounds.append(short_of(before))
    forwards = request.last is None
    list_order = key.desc() if keyset.descending else key.asc()
    reverse_order = key.asc() if keyset.descending else key.desc()
    fetched = session.execute(
        base.where(*bounds).order_by(list_order if forwards else reverse_order).limit(size + 1)
    ).all()
    more = len(fetched) > size
    kept = list(fetched[:size])
    if not forwards:
        kept.reverse()

    def any_row(condition: ColumnElement[bool], nearest_first: Any) -> bool:
        # Ordered from the cursor outwards: the planner reads the key's index from there (one
        # row) rather than whatever order it finds cheapest for "any row".
        found = session.execute(
            select(literal(1)).where(*conditions, condition).order_by(nearest_first).limit(1)
        )
        return found.first() is not None

    if forwards:
        # Something lies before the page when the client started past a row that is there.
        has_previous = after is not None and any_row(~beyond(after), reverse_order)
        has_next = more
    else:
        has_previous = more
        has_next = before is not None and any_row(~short_of(before), list_order)
    return Page(
        rows=[row_of(values) for values in kept],
        has_next_page=has_next,
        has_previous_page=has_previous,
    )
