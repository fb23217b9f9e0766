"""Registered GraphQL documents for automatic persisted queries, shared by every worker and host.

A document registered on first use belongs to the district that sent it and is found by that
district only: a hash reveals nothing of another district's documents. Documents the operator
registers (``licensing queries register``) belong to no district and are found by every one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import PersistedQuery


class RegistrationRefused(Exception):
    """The district already has as many registered documents as it may."""


@dataclass(frozen=True)
class RegisteredDocument:
    sha256: str
    document: str
    district_id: int | None
    registered_by: str
    registered_at: datetime


def find_document(session: Session, *, sha256: str, district_id: int) -> RegisteredDocument | None:
    """The document with this hash the district may run (its own or the operator's), or None.
    Served by the unique (district_id, sha256) and operator sha256 indexes."""
    row = session.exec(
        select(PersistedQuery)
        .where(
            PersistedQuery.sha256 == sha256,
            or_(
                col(PersistedQuery.district_id) == district_id,
                col(PersistedQuery.district_id).is_(None),
            ),
        )
        .limit(1)
    ).first()
    return _registered(row) if row is not None else None


def _registered(row: PersistedQuery) -> RegisteredDocument:
    return RegisteredDocument(
        sha256=row.sha256,
        document=row.document,
        district_id=row.district_id,
        registered_by=row.registered_by,
        registered_at=row.registered_at,
    )


def register_document(
    session: Session,
    *,
    sha256: str,
    document: str,
    district_id: int | None,
    registered_by: str,
    now: datetime,
    max_per_district: int | None = None,
) -> bool:
    """Register ``document`` under ``sha256`` for the district (None: for every district), in the
    caller's transaction. False when it was registered already. RegistrationRefused when the
    district has ``max_per_district`` documents (the caller takes the district's lock first, so
    concurrent registrations cannot pass the limit together)."""
    owner = (
        col(PersistedQuery.district_id).is_(None)
        if district_id is None
        else col(PersistedQuery.district_id) == district_id
    )
    exists = session.exec(
        select(PersistedQuery.id).where(PersistedQuery.sha256 == sha256, owner)
    ).first()
    if exists is not None:
        return False
    if max_per_district is not None and district_id is not None:
        held = session.exec(select(func.count()).select_from(PersistedQuery).where(owner)).one()
        if held >= max_per_district:
            raise RegistrationRefused(
                f"This district has registered {held} documents, the most allowed."
            )
    try:
        with session.begin_nested():
            session.add(
                PersistedQuery(
                    district_id=district_id,
                    sha256=sha256,
                    document=document,
                    registered_by=registered_by[:200],
                    registered_at=now,
                )
            )
    except IntegrityError:  # another worker registered it meanwhile
        return False
    return True


def registered_documents(session: Session) -> list[RegisteredDocument]:
    """Every registered document, the operator's first, then by district and time."""
    rows = session.exec(
        select(PersistedQuery).order_by(
            col(PersistedQuery.district_id).is_not(None),
            col(PersistedQuery.district_id),
            col(PersistedQuery.id),
        )
    ).all()
    return [_registered(row) for row in rows]
