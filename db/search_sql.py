"""The roster's search text as SQL: one expression for the search's index and its queries.

A search finds the records whose given name, family name, whole name ("Ava Lopez"), username
or id contains the text, in any letter case. Those are read as one lower-cased text,

    given_name || ' ' || family_name || '|' || username || '|' || source_id

which contains a search text holding no ``|`` exactly when one of them does (the whole name
holds the given and the family name, and no match runs across a ``|``). On PostgreSQL a trigram
index (pg_trgm, GIN) holds that expression, so a search reads the records it matches rather
than the roster; a search text holding ``|`` is matched field by field instead, without it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, Table, func, literal_column

# Between the whole name, the username and the id: a search text holding it cannot use the
# one expression (it could match across two fields there).
SEPARATOR = "|"

_EMPTY = literal_column("''", String)
_SPACE = literal_column("' '", String)
_SEPARATOR = literal_column(f"'{SEPARATOR}'", String)


def whole_name(table: Table) -> ColumnElement[str]:
    """``given family``, either part empty when missing (not lower-cased)."""
    return (
        func.coalesce(table.c.given_name, _EMPTY)
        + _SPACE
        + func.coalesce(table.c.family_name, _EMPTY)
    )


def search_text(table: Table) -> ColumnElement[str]:
    """The lower-cased text a search looks in; its constants are written into the SQL, so the
    statement's expression is the index's on every plan."""
    return func.lower(
        whole_name(table)
        + _SEPARATOR
        + func.coalesce(table.c.username, _EMPTY)
        + _SEPARATOR
        + table.c.source_id
    )
