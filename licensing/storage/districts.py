"""Districts: each has its own license, roster, settings and tokens, and sees nothing else."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, select

from db.models import District, LicenseSettings
from db.session import Database, stored_id
from licensing.domain.rules import DEFAULT_THRESHOLD
from licensing.storage.roster import refresh_usage
from plugins.records import DistrictRef

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class DistrictError(ValueError):
    """The district cannot be created as asked; the message says why."""


def create_district(
    session: Session,
    *,
    slug: str,
    official_name: str,
    time_zone: str,
    now: datetime,
    legal_entity_name: str | None = None,
    threshold: int = DEFAULT_THRESHOLD,
) -> District:
    """A new district with default settings and zero counts, in the caller's transaction."""
    if not SLUG_PATTERN.match(slug):
        raise DistrictError(
            f"{slug!r} is not a valid slug: use 1-64 lowercase letters, digits and dashes."
        )
    if not official_name.strip():
        raise DistrictError("The district needs its official name.")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DistrictError(
            f"{time_zone!r} is not an IANA time zone such as America/Chicago."
        ) from None
    if session.exec(select(District).where(District.slug == slug)).first() is not None:
        raise DistrictError(f"There is already a district {slug!r}.")
    district = District(
        slug=slug,
        official_name=official_name.strip(),
        legal_entity_name=(legal_entity_name or "").strip() or None,
        time_zone=time_zone,
        created_at=now,
    )
    session.add(district)
    session.flush()
    session.add(
        LicenseSettings(district_id=stored_id(district), students_remaining_threshold=threshold)
    )
    refresh_usage(session, district_id=stored_id(district), now=now)
    return district


def add_district(
    database: Database,
    *,
    slug: str,
    official_name: str,
    time_zone: str,
    now: datetime,
    legal_entity_name: str | None = None,
) -> int:
    """Create a district in its own transaction (see ``create_district``); its id."""
    with database.write() as session:
        district = create_district(
            session,
            slug=slug,
            official_name=official_name,
            legal_entity_name=legal_entity_name,
            time_zone=time_zone,
            now=now,
        )
        return stored_id(district)


def district_ref(district: District) -> DistrictRef:
    """What plugins are told about a district."""
    return DistrictRef(
        slug=district.slug, official_name=district.official_name, time_zone=district.time_zone
    )


def district_time_zone(session: Session, *, district_id: int) -> str:
    """The district's IANA time zone; LookupError when there is no such district."""
    zone = session.exec(select(District.time_zone).where(District.id == district_id)).first()
    if zone is None:
        raise LookupError(f"no district {district_id}")
    return zone
