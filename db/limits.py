"""What a column can hold, read from the table definitions, so that values are checked against
the same limits on SQLite (which would store anything) and PostgreSQL (which would refuse it with
an error quoting the SQL)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, SmallInteger, String
from sqlalchemy.types import TypeDecorator
from sqlmodel import SQLModel

# The largest value of each integer column type, as PostgreSQL stores it.
_INTEGER_MAXIMA: tuple[tuple[type, int], ...] = (
    (SmallInteger, 2**15 - 1),
    (BigInteger, 2**63 - 1),
    (Integer, 2**31 - 1),  # last: SmallInteger and BigInteger are Integers too
)


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
    column_type = model.__table__.c[field].type  # type: ignore[attr-defined]
    # SQLModel's text columns (AutoString) wrap the String they are stored as.
    return column_type.impl if isinstance(column_type, TypeDecorator) else column_type
