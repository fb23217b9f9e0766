"""API tokens: random, shown once, stored only as a hash, scoped to one district, revocable, and
optionally expiring (they then stop signing in at that moment, as if revoked)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, bindparam, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from db.models import ApiToken, DashboardSession, District, table_of
from db.session import Database, stored_id
from licensing.domain.audit import AuditAction, AuditOutcome
from licensing.domain.token_expiry import has_expired
from licensing.storage.audit import record_event
from licensing.storage.district_version import DistrictVersion, district_changed, version_at

TOKEN_PREFIX = "m1t1_"
TOKEN_RANDOM_BYTES = 32


class Permission(StrEnum):
    MANAGE_SETTINGS = "MANAGE_SETTINGS"
    VIEW_LICENSE = "VIEW_LICENSE"


# Managing the tab includes seeing it.
IMPLIED_PERMISSIONS = {Permission.MANAGE_SETTINGS: {Permission.VIEW_LICENSE}}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token, its district, what it may do and until when (None: until
    revoked)."""

    token_id: int
    token_name: str
    district_id: int
    district_slug: str
    permissions: frozenset[Permission]
    expires_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.token_id} ({self.token_name})"

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def expired(self, now: datetime) -> bool:
        return has_expired(self.expires_at, now=now)


@dataclass(frozen=True)
class TokenListing:
    id: int
    name: str
    prefix: str
    permissions: list[str]
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class SignedIn:
    """Who is calling, and their district's version, read in the same request."""

    principal: Principal
    version: DistrictVersion


def hash_token(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: no one can guess a preimage.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(
    session: Session,
    *,
    district: District,
    name: str,
    permissions: set[Permission],
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret; the secret is never stored and cannot be shown again. It
    stops working at ``expires_at`` (None: only when revoked)."""
    if not permissions:
        raise ValueError("A token needs at least one permission.")
    if expires_at is not None and expires_at <= now:
        raise ValueError("A token must expire after it is created.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
    token = ApiToken(
        district_id=stored_id(district),
        name=name,
        token_hash=hash_token(secret),
        token_prefix=secret[: len(TOKEN_PREFIX) + 6],
        permissions=",".join(sorted(permission.value for permission in permissions)),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


_token = table_of(ApiToken)
_district = table_of(District)
# Built once: every request signs in. Core columns, so it runs on a bare connection too. The
# district's version comes in the same statement, so the two are consistent
# (licensing/storage/sign_in_cache.py relies on it).
_SIGNED_IN = (
    select_columns(
        _token.c.id,
        _token.c.name,
        _token.c.district_id,
        _token.c.permissions,
        _token.c.expires_at,
        _district.c.slug,
        _district.c.version,
        _district.c.time_zone,
    )
    .join_from(_token, _district, _district.c.id == _token.c.district_id)
    .where(_token.c.token_hash == bindparam("token_hash"), _token.c.revoked_at.is_(None))
)
# Only read to word a refusal: when a presented token that signs no one in expired.
_EXPIRED_AT = select_columns(_token.c.expires_at).where(
    _token.c.token_hash == bindparam("token_hash"),
    _token.c.revoked_at.is_(None),
    _token.c.expires_at.is_not(None),
)
MAX_SECRET_LENGTH = 200


def authenticate(session: Session | Connection, *, secret: str, now: datetime) -> Principal | None:
    """The principal for a presented token, or None when it is unknown, revoked or expired at
    ``now``."""
    row = _signed_in_row(session, secret, now)
    if row is None:
        return None
    token_id, name, district_id, permissions, expires_at, slug, _version, _time_zone = row
    return principal_of(token_id, name, district_id, permissions, slug, expires_at=expires_at)


def authenticate_versioned(
    session: Session | Connection, *, secret: str, now: datetime
) -> SignedIn | None:
    """The principal for a presented token with its district's version at ``now``, read in one
    statement; None when the token is unknown, revoked or expired at ``now``."""
    row = _signed_in_row(session, secret, now)
    if row is None:
        return None
    token_id, name, district_id, permissions, expires_at, slug, counter, time_zone = row
    return SignedIn(
        principal_of(token_id, name, district_id, permissions, slug, expires_at=expires_at),
        version_at(counter, time_zone, now=now),
    )


def _signed_in_row(session: Session | Connection, secret: str, now: datetime) -> Any:
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    row = session.execute(_SIGNED_IN, {"token_hash": hash_token(secret)}).first()
    # Compared here rather than in SQL: the same clock decides as for every cached use.
    if row is None or has_expired(row.expires_at, now=now):
        return None
    return row


def expired_at(session: Session | Connection, *, secret: str, now: datetime) -> datetime | None:
    """When the presented token expired, if it is a token (not revoked) that has expired by
    ``now``; else None. Only for telling a refused caller why."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    expires_at: datetime | None = session.execute(
        _EXPIRED_AT, {"token_hash": hash_token(secret)}
    ).scalar()
    return expires_at if has_expired(expires_at, now=now) else None


def token_principal(token: ApiToken, district_slug: str) -> Principal:
    """Who a live token is: its district, its permissions with those they imply, its expiry."""
    return principal_of(
        stored_id(token),
        token.name,
        token.district_id,
        token.permissions,
        district_slug,
        expires_at=token.expires_at,
    )


def principal_of(
    token_id: int,
    name: str,
    district_id: int,
    permissions: str,
    district_slug: str,
    *,
    expires_at: datetime | None,
) -> Principal:
    """Who a live token is, from its stored columns: its permissions with those they imply."""
    granted = {Permission(word) for word in permissions.split(",") if word}
    for permission in list(granted):
        granted |= IMPLIED_PERMISSIONS.get(permission, set())
    return Principal(
        token_id=token_id,
        token_name=name,
        district_id=district_id,
        district_slug=district_slug,
        permissions=frozenset(granted),
        expires_at=expires_at,
    )


def list_tokens(session: Session, *, district_id: int) -> list[TokenListing]:
    tokens = session.exec(
        select(ApiToken).where(ApiToken.district_id == district_id).order_by(col(ApiToken.id))
    ).all()
    return [
        TokenListing(
            id=stored_id(token),
            name=token.name,
            prefix=token.token_prefix,
            permissions=token.permissions.split(","),
            created_at=token.created_at,
            revoked_at=token.revoked_at,
            expires_at=token.expires_at,
        )
        for token in tokens
    ]


def revoke_token(session: Session, *, district_id: int, token_id: int, now: datetime) -> bool:
    """Revoke a token of this district; False when it has no such live token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.district_id != district_id or token.revoked_at is not None:
        return False
    token.revoked_at = now
    # Every worker's sign-in cache sees the district's version move, and drops the token.
    district_changed(session, district_id)
    # Its Licensing tab sessions end with it (sign-in also checks the token, so they stop at once).
    session.execute(
        update(DashboardSession)
        .where(
            col(DashboardSession.token_id) == token_id, col(DashboardSession.revoked_at).is_(None)
        )
        .values(revoked_at=now)
    )
    return True


def issue_token(
    database: Database,
    *,
    district_id: int,
    name: str,
    permissions: set[Permission],
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[int, str]:
    """Create a token and its audit entry in one transaction; its id and its secret (which is
    never stored and cannot be shown again). It stops working at ``expires_at`` (None: only
    when revoked)."""
    with database.write() as session:
        district = session.get(District, district_id)
        if district is None:
            raise LookupError(f"There is no district {district_id}.")
        token, secret = create_token(
            session,
            district=district,
            name=name,
            permissions=permissions,
            now=now,
            expires_at=expires_at,
        )
        created: dict[str, object] = {
            "id": token.id,
            "name": token.name,
            "permissions": token.permissions,
        }
        if expires_at is not None:
            created["expires_at"] = expires_at.isoformat()
        record_event(
            session,
            district_id=district_id,
            actor=actor,
            action=AuditAction.TOKEN_CREATED,
            outcome=AuditOutcome.CREATED,
            now=now,
            new=created,
        )
        return stored_id(token), secret


def withdraw_token(
    database: Database, *, district_id: int, token_id: int, actor: str, now: datetime
) -> bool:
    """Revoke a token of this district and record it; False when it has no such live token."""
    with database.write() as session:
        revoked = revoke_token(session, district_id=district_id, token_id=token_id, now=now)
        if revoked:
            record_event(
                session,
                district_id=district_id,
                actor=actor,
                action=AuditAction.TOKEN_REVOKED,
                outcome=AuditOutcome.REVOKED,
                now=now,
                old={"id": token_id},
            )
    return revoked
