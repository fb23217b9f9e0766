"""Reading the fields that sources send: text, dates, times and server addresses, one way.

Built-in plugins share these so that every source reads "2026-08-15T09:30:00Z", a blank value or
a plain-http address the same way; third-party plugins may use them too.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

from plugins.http import certificate_failure
from plugins.records import SourceError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def text(value: Any) -> str | None:
    """The value as stripped text; None for nothing, blanks and structured values."""
    if value is None or isinstance(value, dict | list):
        return None
    stripped = str(value).strip()
    return stripped or None


def timestamp(value: Any) -> datetime | None:
    """An ISO 8601 date and time in UTC (UTC when it names no zone; a bare date is midnight
    UTC); None when it is missing or unreadable."""
    written = text(value)
    if written is None:
        return None
    try:
        parsed = datetime.fromisoformat(written.replace("Z", "+00:00"))
    except ValueError:
        only_day = day(written)
        if only_day is None:
            return None
        parsed = datetime(only_day.year, only_day.month, only_day.day)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def day(value: Any) -> date | None:
    """An ISO 8601 date (a date and time is taken for its date); None when unreadable."""
    written = text(value)
    if written is None:
        return None
    try:
        return date.fromisoformat(written[:10])
    except ValueError:
        return None


# What to do about a certificate the ssl module refused, by OpenSSL's verify code. Any other
# refusal means that this machine does not trust the certificate's issuer.
_CERTIFICATE_ADVICE: dict[int | None, str] = {
    9: "the certificate is not valid yet: check this machine's clock and the server's",
    10: "the certificate has expired: the server's operator must renew it",
    62: "the certificate does not name the host in the address: use the host name it names",
    64: "the certificate does not name the IP address used: use the host name it names",
}
_UNTRUSTED_ISSUER_ADVICE = (
    "if a private certificate authority signed it, set SSL_CERT_FILE to that authority's "
    "certificate"
)


def describe_error(error: Exception) -> str:
    """An exception as "Type: message", for messages shown to administrators; a server whose
    TLS certificate is not trusted is said in those words, with what to do about the reason."""
    untrusted = certificate_failure(error)
    if untrusted is not None:
        # verify_message and verify_code are set by the ssl module's own checks, not on an
        # error made elsewhere.
        why = getattr(untrusted, "verify_message", None) or untrusted.strerror
        advice = _CERTIFICATE_ADVICE.get(
            getattr(untrusted, "verify_code", None), _UNTRUSTED_ISSUER_ADVICE
        )
        return (
            f"the server's TLS certificate is not trusted ({why or 'certificate verify failed'}); "
            f"{advice}"
        )
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def is_loopback(host: str) -> bool:
    """True for this machine's own addresses, where plain http never crosses a network: the
    names localhost (and localhost.localdomain) and any loopback IP address (127.0.0.0/8, ::1).
    The one test of loopback in the project."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_base_url(value: Any, *, where: str, carries: str) -> str:
    """A server's base URL without its trailing slash: http(s), and https unless loopback.

    ``where`` names the setting in messages (e.g. "Clever: base_url"); ``carries`` says what
    would travel unencrypted over plain http (e.g. "the token").
    """
    written = text(value)
    if not written:
        raise SourceError(
            f"{where} is missing: give the server's address, e.g. https://sis.example.org."
        )
    parts = urlsplit(written)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"{where} {written!r} is not an http(s) URL.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise SourceError(
            f"{where} {written!r} is plain http; {carries} travel only over https "
            "(plain http is accepted only on this machine's loopback)."
        )
    return written.rstrip("/")
