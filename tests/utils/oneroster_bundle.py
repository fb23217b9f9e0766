"""OneRoster 1.1 CSV bundles of any size, written row by row, with the counts the host must make."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from plugins.builtin.oneroster_csv import USERS_V1P1

MANIFEST = [
    ("propertyName", "value"),
    ("manifest.version", "1.0"),
    ("oneroster.version", "1.1"),
    ("file.academicSessions", "absent"),
    ("file.classes", "absent"),
    ("file.enrollments", "absent"),
    ("file.orgs", "absent"),
    ("file.users", "bulk"),
    ("source.systemName", "Test SIS"),
]
SCHOOLS = ("org1", "org2", "org3", "org4")


@dataclass(frozen=True)
class BundleCounts:
    """What the bundle holds, by the host's rule: only active, enabled students count."""

    active_students: int
    inactive_students: int
    disabled_students: int
    staff: int

    @property
    def records(self) -> int:
        return self.active_students + self.inactive_students + self.disabled_students + self.staff


def write_users_bundle(
    folder: Path,
    *,
    active: int,
    inactive: int = 0,
    disabled: int = 0,
    staff: int = 0,
) -> BundleCounts:
    """Write ``manifest.csv`` and ``users.csv`` into ``folder`` (replacing what is there).

    Student ids are the same from one bundle to the next (``stu-00000001``, ...), as a SIS keeps
    them, so a second bundle written over the first is the same roster, grown or shrunk.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(MANIFEST)
    with open(folder / "users.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(USERS_V1P1)
        number = 0
        for status, enabled, count in (
            ("active", "true", active),
            ("tobedeleted", "true", inactive),
            ("active", "false", disabled),
        ):
            for _ in range(count):
                number += 1
                writer.writerow(_user(f"stu-{number:08d}", "student", status, enabled, number))
        for staff_number in range(1, staff + 1):
            writer.writerow(_user(f"staff-{staff_number:06d}", "teacher", "active", "true", 0))
    return BundleCounts(
        active_students=active, inactive_students=inactive, disabled_students=disabled, staff=staff
    )


def _user(source_id: str, role: str, status: str, enabled: str, number: int) -> list[str]:
    fields = {
        "sourcedId": source_id,
        "status": status,
        "dateLastModified": "2026-08-15T09:30:00.000Z",
        "enabledUser": enabled,
        "orgSourcedIds": SCHOOLS[number % len(SCHOOLS)],
        "role": role,
        "username": source_id,
        "givenName": "Given",
        "familyName": f"Family{number % 97}",
        "grades": f"{number % 12 + 1:02d}" if role == "student" else "",
    }
    return [fields.get(column, "") for column in USERS_V1P1]
