"""Opaque page cursors: a kind and a row id, so a cursor from one list is refused by another."""

from __future__ import annotations

import base64
import binascii


def encode_cursor(kind: str, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{row_id}".encode()).decode("ascii")


def decode_cursor(kind: str, cursor: str, *, where: str) -> int:
    """The row id in ``cursor``; ValueError naming ``where`` for a cursor it did not issue."""
    try:
        found, _, number = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().partition(":")
        if found != kind or not number.isdigit():
            raise ValueError
        return int(number)
    except (ValueError, UnicodeError, binascii.Error):
        raise ValueError(f"{cursor!r} is not a cursor from {where}.") from None
