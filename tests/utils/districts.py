"""Build districts with signed licenses and rosters through the same code paths as production."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from db.models import Device, District
from licensing.orchestration.service import LicensingService
from licensing.storage import signing
from licensing.storage.districts import create_district as create_district_row
from licensing.storage.roster import refresh_usage
from licensing.storage.roster_changes import apply_roster
from licensing.storage.tokens import Permission, create_token
from plugins.records import StudentRecord

TEST_KEY_ID = "test"


def new_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


@dataclass
class LicenseIssuer:
    """Stands in for Manage1to1's licensing service: signs license files for a district."""

    service: LicensingService
    key: Ed25519PrivateKey

    def write(
        self,
        slug: str,
        *,
        seats: int = 1000,
        expires_on: date = date(2027, 6, 30),
        created_on: date = date(2023, 8, 1),
        deactivated: bool = False,
        overage_allowance: float = 0.0,
        district: str | None = None,
        licensed_to: str = "Test District",
        legal_entity_name: str | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> bytes:
        terms = signing.LicenseTerms(
            license_id=f"M1T1-{slug.upper()}",
            district=district or slug,
            licensed_to=licensed_to,
            legal_entity_name=legal_entity_name,
            total=seats,
            created_on=created_on,
            expires_on=expires_on,
            deactivated=deactivated,
            overage_allowance=overage_allowance,
            issued_at=self.service.clock(),
        )
        signed = signing.sign_license(terms, private_key=key or self.key, key_id=TEST_KEY_ID)
        path = self.service.settings.license_file_for(slug)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = signed.to_envelope()
        path.write_bytes(data)
        return data


def students(
    count: int, *, start: int = 1, prefix: str = "S", **fields: object
) -> list[StudentRecord]:
    return [
        StudentRecord(source_id=f"{prefix}{number:06d}", **fields)  # type: ignore[arg-type]
        for number in range(start, start + count)
    ]


def create_district(
    service: LicensingService,
    *,
    slug: str,
    roster: Iterable[StudentRecord] = (),
    threshold: int = 50,
    devices: int = 0,
    time_zone: str = "UTC",
    name: str = "Test District",
) -> int:
    now = service.clock()
    with service.database.write() as session:
        district = create_district_row(
            session,
            slug=slug,
            official_name=name,
            time_zone=time_zone,
            threshold=threshold,
            now=now,
        )
        records = list(roster)
        if records:
            apply_roster(
                session,
                district_id=district.id,
                source="local",
                records=records,
                replace=True,
                now=now,
            )
        if devices:
            # Devices never count against the license: the recount, with them in place, shows it.
            for number in range(devices):
                session.add(Device(district_id=district.id, serial_number=f"D{number:06d}"))
            session.flush()
            refresh_usage(session, district_id=district.id, now=now)
        return district.id


def token_for(
    service: LicensingService,
    district_id: int,
    *permissions: Permission,
    name: str = "test",
    expires_at: datetime | None = None,
) -> str:
    with service.database.write() as session:
        district = session.get(District, district_id)
        _token, secret = create_token(
            session,
            district=district,
            name=name,
            permissions=set(permissions),
            now=service.clock(),
            expires_at=expires_at,
        )
    return secret


class TestDistrict:
    __test__ = False  # not a test class, despite its name

    """A district with a license, a roster and tokens, ready for API calls."""

    def __init__(self, service: LicensingService, district_id: int, slug: str) -> None:
        self.service = service
        self.id = district_id
        self.slug = slug
        self.manager_token = token_for(service, district_id, Permission.MANAGE_SETTINGS)
        self.viewer_token = token_for(service, district_id, Permission.VIEW_LICENSE)

    async def refresh_license(self) -> None:
        outcome = await self.service.license_updater.refresh(district_id=self.id, actor="test")
        assert outcome.problem is None, outcome.problem
