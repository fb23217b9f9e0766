"""What a column can hold, read from the table definitions, so that values are checked against
the same limits on SQLite (which would store anything) and PostgreSQL (which would refuse it with
an error quoting the SQL)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Integer, SmallInteger, String
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

from db.models import table_of

# The largest value of each integer column type, as PostgreSQL stores it.
_INTEGER_MAXIMA: tuple[tuple[type, int], ...] = (
    (SmallInteger, 2**15 - 1),
    (BigInteger, 2**63 - 1),
    (Integer, 2**31 - 1),  # last: SmallInteger and BigInteger are Integers too
)
# PostgreSQL's INTEGER, the type of every id and count column; SQLite's integers are wider, so
# this range holds on both.
INTEGER_RANGE = (-(2**31), 2**31 - 1)


def text_length(model: type[SQLModel], field: str) -> int:
    """The most characters ``model.field`` (a length-limited text column) can hold."""
    column_type = _stored_type(model, field)
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"{model.__name__}.{field} is not a length-limited text column")
    return column_type.length


def integer_maximum(model: type[SQLModel], field: str) -> int:
    """The largest value the integer column ``model.field`` can hold."""
    column_type = _stored_type(model, field)
    for kind, maximum in _INTEGER_MAXIMA:
        if isinstance(column_type, kind):
            return maximum
    raise TypeError(f"{model.__name__}.{field} is not an integer column")


def _stored_type(model: type[SQLModel], field: str) -> object:
    column_type = table_of(model).c[field].type
    # SQLModel's text columns (AutoString) wrap the String they are stored as.
    return column_type.impl if isinstance(column_type, TypeDecorator) else column_type


@dataclass(frozen=True)
class ColumnShape:
    """What one column can hold: its Python type and, for text, the most characters."""

    python_type: type
    max_length: int | None = None


def column_shapes(*models: type[SQLModel]) -> dict[str, ColumnShape]:
    """Column name -> what it holds, read from the tables' own definitions, so a limit is
    written once. For a column several models share, the smallest length wins."""
    shapes: dict[str, ColumnShape] = {}
    for model in models:
        for column in table_of(model).columns:
            stored = column.type
            if isinstance(stored, TypeDecorator):  # sqlmodel's AutoString, UTCDateTime
                stored = stored.impl_instance
            length = getattr(stored, "length", None)
            known = shapes.get(column.name)
            if known is not None and known.max_length is not None:
                length = known.max_length if length is None else min(length, known.max_length)
            shapes[column.name] = ColumnShape(stored.python_type, length)
    return shapes
