"""Intake rules: how roster sources read what districts really deliver, written once.

Strict where it changes the count, forgiving everywhere else. The built-in sources share these
rules, so a OneRoster file, a OneRoster server and any third-party source read a boolean, a role
word or a header the same way:

- booleans are true/false, 1/0 or yes/no in any letter case (``flag``);
- a role word of either OneRoster version means what it means in its own version (``principal``
  in a 1.1 file is staff, ``administrator`` in a 1.2 file too); ``ext:`` roles are extensions,
  passed on as they are: the host counts nobody by one (``oneroster_role``);
- column names match regardless of letter case and surrounding spaces; unknown columns are
  ignored, with the known column they look like when there is one (``match_columns``);
- files are UTF-8 with or without a byte-order mark; UTF-16 and UTF-32 (with a byte-order mark)
  and Windows-1252 are recognised and named (``detect_encoding``).

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import codecs
import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
BOOLEAN_WORDS: dict[str, bool] = {
    **{word: True for word in TRUE_WORDS},
    **{word: False for word in FALSE_WORDS},
}
BOOLEAN_CHOICES = "true, false, 1, 0, yes or no"

ONEROSTER_V1P1_ROLES = (
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
)
ONEROSTER_V1P2_ROLES = (
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
)
# Every role word of either version, by its lower-case form: each keeps its meaning in a file of
# the other version (the host knows them all).
ONEROSTER_ROLES: dict[str, str] = {
    word.lower(): word for word in (*ONEROSTER_V1P1_ROLES, *ONEROSTER_V1P2_ROLES)
}
EXTENSION_ROLE_PREFIX = "ext:"


def flag(value: Any) -> bool | None:
    """A boolean as sources write it: a JSON boolean, or true/false, 1/0, yes/no in any letter
    case and with spaces around; None for anything else (a blank included)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return BOOLEAN_WORDS.get(value.strip().lower())
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None


def is_extension_role(word: str) -> bool:
    """Whether ``word`` is a OneRoster extension role (``ext:counselor``, any letter case)."""
    return word[:4].lower() == EXTENSION_ROLE_PREFIX


def oneroster_role(value: Any) -> str | None:
    """A OneRoster role word of either version in its standard spelling (``Principal`` ->
    ``principal``, ``districtadministrator`` -> ``districtAdministrator``), an ``ext:`` role as it
    is written, or None for a blank or a word neither version has."""
    if not isinstance(value, str):
        return None
    word = value.strip()
    if is_extension_role(word) and len(word) > len(EXTENSION_ROLE_PREFIX):
        return word
    return ONEROSTER_ROLES.get(word.lower())


def oneroster_role_choices(version: str) -> str:
    """The role words of a version, for messages (the other version's are accepted too)."""
    words = ONEROSTER_V1P1_ROLES if version == "1.1" else ONEROSTER_V1P2_ROLES
    return ", ".join(words)


# --- Headers -------------------------------------------------------------------------------------


def column_key(name: str) -> str:
    """How a column name is compared: letter case and surrounding spaces do not matter."""
    return name.strip().lower()


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` most looks like (a misspelling), or None when none is close."""
    by_key = {column_key(candidate): candidate for candidate in known}
    found = difflib.get_close_matches(column_key(name), list(by_key), n=1, cutoff=0.8)
    return by_key[found[0]] if found else None


@dataclass(frozen=True)
class HeaderMatch:
    """A header read against the columns a file may have.

    ``indexes``: each known column found, by its standard name, to its position (the first one
    when a column appears twice). ``unknown``: the other columns, each with the known column it
    looks like (None when none). ``missing``: known columns not found. ``repeated``: known
    columns that appear more than once."""

    indexes: dict[str, int]
    unknown: list[tuple[str, str | None]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)


def match_columns(
    header: Sequence[str], known: Sequence[str], *, extension_prefix: str | None = None
) -> HeaderMatch:
    """Read ``header`` against the ``known`` column names. Columns starting with
    ``extension_prefix`` (any letter case) are extensions: neither known nor unknown. Done once
    per file; the rows are then read by position."""
    by_key = {column_key(name): name for name in known}
    prefix = column_key(extension_prefix) if extension_prefix else None
    indexes: dict[str, int] = {}
    unknown: list[tuple[str, str | None]] = []
    repeated: list[str] = []
    for position, written in enumerate(header):
        key = column_key(written)
        name = by_key.get(key)
        if name is None:
            if prefix and key.startswith(prefix):
                continue
            if key:
                unknown.append((written, None))
            continue
        if name in indexes:
            if name not in repeated:
                repeated.append(name)
            continue
        indexes[name] = position
    missing = [name for name in known if name not in indexes]
    unknown = [(written, closest(written, missing)) for written, _ in unknown]
    return HeaderMatch(indexes=indexes, unknown=unknown, missing=missing, repeated=repeated)


# --- Encodings -----------------------------------------------------------------------------------

SNIFF_BYTES = 64 * 1024

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),  # before UTF-16: it starts with UTF-16's mark
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", None),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


@dataclass(frozen=True)
class Encoding:
    """How to read a file: the Python codec, and the encoding's name for administrators when it
    is not UTF-8 (None for UTF-8, with or without a byte-order mark)."""

    codec: str
    name: str | None = None


class UnreadableText(ValueError):
    """The bytes are not text in any encoding this service recognises."""


def detect_encoding(sample: bytes) -> Encoding:
    """The encoding of a text file, from its first bytes (``SNIFF_BYTES`` are enough).

    A byte-order mark names UTF-8, UTF-16 or UTF-32; UTF-16 without one shows as a zero byte
    beside every ASCII character. Otherwise text that is valid UTF-8 is UTF-8, and anything else
    is Windows-1252 (the Latin-1 superset spreadsheets on Windows save), or ISO-8859-1 when it
    holds a byte Windows-1252 leaves undefined. Raises UnreadableText for bytes that are no text
    (many zero bytes outside UTF-16, or a zip archive: a spreadsheet or a binary file)."""
    for mark, codec, name in _BOMS:
        if sample.startswith(mark):
            return Encoding(codec, name)
    if sample.startswith(b"PK\x03\x04"):
        raise UnreadableText("it is a zip archive (a spreadsheet saved as .xlsx?), not CSV text")
    zeros = sample.count(0)
    if zeros > len(sample) // 4:  # text has none, or a stray one; UTF-16 has one in two bytes
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) >= len(odd) * 0.9 and even.count(0) == 0:
            return Encoding("utf-16-le", "UTF-16 (little-endian, no byte-order mark)")
        if even.count(0) >= len(even) * 0.9 and odd.count(0) == 0:
            return Encoding("utf-16-be", "UTF-16 (big-endian, no byte-order mark)")
        raise UnreadableText(
            "it is mostly zero bytes: it is not a text file (a spreadsheet saved in its own "
            "format?)"
        )
    if sample.isascii():
        return Encoding("utf-8-sig")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return single_byte_encoding(sample)
    return Encoding("utf-8-sig")


def single_byte_encoding(data: bytes) -> Encoding:
    """Windows-1252 when it can read ``data``, else ISO-8859-1 (which reads any byte)."""
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return Encoding("latin-1", "ISO-8859-1 (Latin-1)")
    return Encoding("cp1252", "Windows-1252 (Latin-1)")


def starts_valid_utf8(data: bytes) -> bool:
    """Whether the first non-ASCII byte of ``data`` begins a valid UTF-8 sequence (True when
    there is none): the text before a later invalid byte was then UTF-8, not plain ASCII."""
    found = _NON_ASCII.search(data)
    if found is None:
        return True
    start = found.start()
    for length in (2, 3, 4):
        try:
            data[start : start + length].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return True
    return False


_NON_ASCII = re.compile(rb"[\x80-\xff]")
