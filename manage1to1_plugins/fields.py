"""Reading the fields that sources send, the way the built-in sources read them: stripped text,
ISO 8601 dates and times in UTC, error descriptions (a TLS certificate that is not trusted said in
those words), and server base URLs (https unless loopback).
"""

from __future__ import annotations

from plugins.fields import checked_base_url, day, describe_error, is_loopback, text, timestamp
from plugins.http import certificate_failure

__all__ = [
    "certificate_failure",
    "checked_base_url",
    "day",
    "describe_error",
    "is_loopback",
    "text",
    "timestamp",
]
