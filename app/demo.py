"""The demo district: the product doc's "Approaching License Limit" scenario, ready to explore.

1000 licensed seats with an alert threshold of 50, and a local roster of 960 active students
(one of them in two schools), students who graduated, transferred, withdrew or were disabled,
staff, and devices. Its license is a real signed file, verified like any other.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import select

from db.models import Device, District
from db.session import stored_id
from licensing.orchestration.service import LicensingService
from licensing.settings import Settings
from licensing.storage import signing
from licensing.storage.districts import create_district
from licensing.storage.roster import collect_records, refresh_usage
from licensing.storage.roster_changes import apply_roster
from plugins.manager import source_options
from plugins.records import DistrictRef

DEMO_SLUG = "demo"
DEMO_NAME = "Riverside Unified School District"
DEMO_LEGAL_NAME = "Riverside Unified School District No. 12"
DEMO_TIME_ZONE = "America/Chicago"
DEMO_SEATS = 1000
DEMO_THRESHOLD = 50
DEMO_KEY_ID = "demo"
DEMO_CREATED = date(2023, 8, 1)

ACTIVE_STUDENTS = 960
INACTIVE_STUDENTS = {"graduated": 45, "transferred": 25, "withdrawn": 15}
DISABLED_STUDENTS = 3
STAFF = {"teacher": 38, "administrator": 4}
DEVICES = 1150
SCHOOLS = ("Riverside Elementary", "Oak Hill Middle School", "Riverside High School")
GIVEN_NAMES = ("Ava", "Liam", "Mia", "Noah", "Emma", "Mateo", "Zoe", "Ethan", "Layla", "Omar")
FAMILY_NAMES = ("Garcia", "Nguyen", "Smith", "Patel", "Johnson", "Kim", "Lopez", "Brown")


@dataclass(frozen=True)
class DemoPaths:
    signing_key: Path
    public_key: Path
    roster_csv: Path


def demo_paths(settings: Settings) -> DemoPaths:
    return DemoPaths(
        signing_key=settings.data_dir / "demo-signing-key.pem",
        public_key=settings.trusted_keys_dir / f"{DEMO_KEY_ID}.pub",
        roster_csv=settings.data_dir / "demo-roster.csv",
    )


def demo_exists(service: LicensingService) -> bool:
    with service.database.read() as session:
        return session.exec(select(District).where(District.slug == DEMO_SLUG)).first() is not None


def default_expiry(today: date) -> date:
    """The June 30 that ends the school year after next renewal season: always months away."""
    expiry = date(today.year + 1, 6, 30)
    return expiry if expiry - today > timedelta(days=180) else date(today.year + 2, 6, 30)


async def create_demo(service: LicensingService) -> None:
    """Create the demo district with its signed license, settings, roster and devices."""
    settings = service.settings
    paths = demo_paths(settings)
    now = service.clock()
    private_key = (
        signing.load_signing_key(paths.signing_key)
        if paths.signing_key.exists()
        else signing.generate_signing_key(paths.signing_key, paths.public_key)
    )
    issue_license_file(
        settings,
        private_key=private_key,
        district_slug=DEMO_SLUG,
        terms=signing.LicenseTerms(
            license_id="M1T1-DEMO-0001",
            district=DEMO_SLUG,
            licensed_to=DEMO_NAME,
            legal_entity_name=DEMO_LEGAL_NAME,
            total=DEMO_SEATS,
            created_on=DEMO_CREATED,
            expires_on=default_expiry(now.astimezone(UTC).date()),
            deactivated=False,
            overage_allowance=0.05,
            issued_at=now,
        ),
    )
    write_demo_roster(paths.roster_csv)
    # Read as ``licensing roster import`` reads a file: through the registered local source.
    local = service.plugins.roster_source("local")
    records = await collect_records(
        local.fetch_students(
            district=DistrictRef(slug=DEMO_SLUG, official_name=DEMO_NAME, time_zone=DEMO_TIME_ZONE),
            options=source_options(local, {"path": str(paths.roster_csv)}),
        )
    )
    with service.database.write() as session:
        district = create_district(
            session,
            slug=DEMO_SLUG,
            official_name=DEMO_NAME,
            legal_entity_name=DEMO_LEGAL_NAME,
            time_zone=DEMO_TIME_ZONE,
            threshold=DEMO_THRESHOLD,
            now=now,
        )
        district_id = stored_id(district)
        apply_roster(
            session,
            district_id=district_id,
            source="local",
            records=records,
            replace=True,
            now=now,
        )
        # One multi-row insert: as 1,150 ORM objects they took a tenth of the demo's set-up.
        session.execute(
            insert(Device),
            [
                {
                    "district_id": district_id,
                    "serial_number": f"RUSD-{number:05d}",
                    "model": "Chromebook 3100",
                    "assigned_person_key": f"S{number:06d}" if number <= ACTIVE_STUDENTS else None,
                }
                for number in range(1, DEVICES + 1)
            ],
        )
        refresh_usage(session, district_id=district_id, now=now)
    outcome = await service.license_updater.refresh(district_id=district_id, actor="demo setup")
    if outcome.problem is not None:
        raise RuntimeError(f"The demo license was refused: {outcome.problem.message}")
    service.read_district_state(district_id)  # raises the demo's alerts


def issue_license_file(
    settings: Settings,
    *,
    private_key: signing.Ed25519PrivateKey,
    district_slug: str,
    terms: signing.LicenseTerms,
    key_id: str = DEMO_KEY_ID,
) -> Path:
    """Sign ``terms`` and write them where the district's license file source reads."""
    signed = signing.sign_license(terms, private_key=private_key, key_id=key_id)
    path = settings.license_file_for(district_slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signed.to_envelope())
    return path


def write_demo_roster(path: Path) -> None:
    """A local-roster CSV with the demo's people; the same file format administrators import."""
    chooser = random.Random(2026)
    this_year = datetime.now(UTC).year
    rows: list[dict[str, str]] = []

    def person(identifier: str, **values: str) -> dict[str, str]:
        given, family = chooser.choice(GIVEN_NAMES), chooser.choice(FAMILY_NAMES)
        username = f"{given}.{family}.{identifier}".lower()
        return {
            "id": identifier,
            "given_name": given,
            "family_name": family,
            "username": username,
            **values,
        }

    def student(number: int, status: str, **values: str) -> dict[str, str]:
        grade = (number % 13) or 13
        school = SCHOOLS[0] if grade <= 5 else SCHOOLS[1] if grade <= 8 else SCHOOLS[2]
        return person(
            f"S{number:06d}",
            role="student",
            status=status,
            grade="KG" if grade == 13 else str(grade),
            school=school,
            graduation_year=str(this_year + (12 - grade if grade != 13 else 13)),
            **values,
        )

    number = 0
    for _ in range(ACTIVE_STUDENTS):
        number += 1
        rows.append(student(number, "active"))
    # The same student in a second school: one person, counted once.
    rows.append({**rows[6], "school": SCHOOLS[1]})
    for status, count in INACTIVE_STUDENTS.items():
        for _ in range(count):
            number += 1
            row = student(number, status)
            if status == "graduated":
                row["graduation_year"] = str(this_year - 1)
            rows.append(row)
    for _ in range(DISABLED_STUDENTS):
        number += 1
        rows.append(student(number, "active", enabled="false"))
    staff_number = 0
    for role, count in STAFF.items():
        for _ in range(count):
            staff_number += 1
            rows.append(
                person(
                    f"T{staff_number:04d}",
                    role=role,
                    status="active",
                    school=chooser.choice(SCHOOLS),
                )
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        # The local roster's columns these rows use, in their order.
        columns = list(dict.fromkeys(column for row in rows for column in row))
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
