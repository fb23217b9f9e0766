"""Opaque page cursors: a kind and a row id, so a cursor from one list is refused by another."""

from __future__ import annotations

import base64
import binascii

from licensing.storage.row_ids import fits_row_id


def encode_cursor(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode("ascii")


def decode_cursor(kind: str, cursor: str, *, where: str) -> int:
    """The row id in ``cursor``; ValueError naming ``where`` for a cursor it did not issue
    (including one whose id could not be a row's: the database would refuse it)."""
    try:
        found, _, number = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition(":")
        # isdigit() alone would let through other scripts' digits and numbers of any length.
        if found != kind or not (number.isascii() and number.isdigit()) or len(number) > 10:
            raise ValueError
        row_id = int(number)
        if not fits_row_id(row_id):
            raise ValueError
        return row_id
    except (ValueError, UnicodeError, binascii.Error):
        raise ValueError(f"{cursor!r} is not a cursor from {where}.") from None
