"""Reading the fields that sources send, the way the built-in sources read them: stripped text,
ISO 8601 dates and times in UTC, error descriptions, and server base URLs (https unless loopback).
"""

from __future__ import annotations

from plugins.fields import checked_base_url, day, describe_error, is_loopback, text, timestamp

__all__ = ["checked_base_url", "day", "describe_error", "is_loopback", "text", "timestamp"]
