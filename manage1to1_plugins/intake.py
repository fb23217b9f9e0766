"""Intake rules shared by roster sources: strict where it changes the count, forgiving everywhere
else. Booleans (``flag``), OneRoster role words of either version (``oneroster_role``), headers
matched regardless of letter case and spaces (``match_columns``), and text encodings
(``detect_encoding``). See docs/plugins.md and docs/roster-sync.md.
"""

from __future__ import annotations

from plugins.intake import (
    BOOLEAN_CHOICES,
    BOOLEAN_WORDS,
    EXTENSION_ROLE_PREFIX,
    ONEROSTER_ROLES,
    ONEROSTER_V1P1_ROLES,
    ONEROSTER_V1P2_ROLES,
    SNIFF_BYTES,
    Encoding,
    HeaderMatch,
    UnreadableText,
    closest,
    column_key,
    detect_encoding,
    flag,
    is_extension_role,
    match_columns,
    oneroster_role,
    oneroster_role_choices,
    single_byte_encoding,
    starts_valid_utf8,
)

__all__ = [
    "BOOLEAN_CHOICES",
    "BOOLEAN_WORDS",
    "EXTENSION_ROLE_PREFIX",
    "ONEROSTER_ROLES",
    "ONEROSTER_V1P1_ROLES",
    "ONEROSTER_V1P2_ROLES",
    "SNIFF_BYTES",
    "Encoding",
    "HeaderMatch",
    "UnreadableText",
    "closest",
    "column_key",
    "detect_encoding",
    "flag",
    "is_extension_role",
    "match_columns",
    "oneroster_role",
    "oneroster_role_choices",
    "single_byte_encoding",
    "starts_valid_utf8",
]
