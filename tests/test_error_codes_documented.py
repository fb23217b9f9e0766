"""docs/limits.md documents every code the service answers with, each with its HTTP status, and
documents no code the service does not have."""

from __future__ import annotations

import re
from pathlib import Path

from licensing.domain.error_codes import ErrorCode

LIMITS = Path(__file__).resolve().parents[1] / "docs" / "limits.md"
# A row of an error-code table: | `CODE` | HTTP status(es) | when |
ROW = re.compile(r"^\| `(?P<code>[A-Z_]+)` \| (?P<http>[^|]*)\|", re.MULTILINE)
STATUSES = re.compile(r"^\d{3}(, \d{3})*$")


def documented_codes(text: str) -> dict[str, str]:
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return {row["code"]: row["http"].strip() for row in ROW.finditer(section)}


def test_every_error_code_has_a_row_with_its_http_status() -> None:
    documented = documented_codes(LIMITS.read_text())
    missing = sorted(code.value for code in ErrorCode if code.value not in documented)
    assert missing == [], f"docs/limits.md has no row for {missing}"
    without_status = sorted(code for code, http in documented.items() if not STATUSES.match(http))
    assert without_status == [], f"docs/limits.md gives no HTTP status for {without_status}"


def test_the_docs_name_no_code_the_service_does_not_have() -> None:
    unknown = sorted(set(documented_codes(LIMITS.read_text())) - {code.value for code in ErrorCode})
    assert unknown == []


def test_a_code_missing_from_the_docs_is_caught() -> None:
    text = LIMITS.read_text()
    without_sync_held = "\n".join(
        line for line in text.splitlines() if not line.startswith("| `SYNC_HELD`")
    )
    assert "SYNC_HELD" not in documented_codes(without_sync_held)
    assert "SYNC_HELD" in documented_codes(text)
