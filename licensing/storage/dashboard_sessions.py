"""The Licensing tab's server-side sessions: a random id in the browser's cookie, its hash here.

A session belongs to the API token that signed in. It ends at whichever comes first: its idle
expiry (no request for ``sign_in.session_idle_minutes``), its absolute expiry
(``sign_in.session_lifetime_hours`` after sign-in, and never past its token's expiry), sign-out,
or its token's revocation. The last-seen time, and with it the idle expiry, is written at most
once a ``LAST_SEEN_RESOLUTION``, so a busy tab does not cost a write per request; the idle
expiry is exact to within that.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col

from db.models import ApiToken, DashboardSession, District, table_of
from licensing.storage.district_version import DistrictVersion, district_changed, version_at
from licensing.storage.tokens import Principal, hash_token, principal_of

SESSION_RANDOM_BYTES = 32
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
# Longer presented ids are refused before any hashing or reading.
MAX_SESSION_ID_LENGTH = 100


@dataclass(frozen=True)
class SessionLifetimes:
    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class SessionRead:
    """A live session's principal, and whether its last-seen time is due to be written."""

    principal: Principal
    session_row_id: int
    due_for_touch: bool
    last_seen_at: datetime
    idle_expires_at: datetime
    expires_at: datetime


def session_expiry(principal: Principal, *, now: datetime, lifetimes: SessionLifetimes) -> datetime:
    """When a session the principal starts at ``now`` ends at the latest: its absolute lifetime,
    cut short by its token's expiry."""
    expires_at = now + lifetimes.absolute
    if principal.expires_at is not None:
        expires_at = min(expires_at, principal.expires_at)
    return expires_at


def idle_expiry(last_seen: datetime, expires_at: datetime, lifetimes: SessionLifetimes) -> datetime:
    """When a session seen at ``last_seen`` ends if unused: never past its absolute expiry."""
    return min(last_seen + lifetimes.idle, expires_at)


def start_session(
    session: Session, *, principal: Principal, now: datetime, lifetimes: SessionLifetimes
) -> tuple[str, datetime]:
    """A new session for the signed-in token: its id, which is stored only as a hash (SHA-256,
    as tokens are: 256 random bits need no slow hash), and when it ends at the latest."""
    # Sessions that have ended are of no further use; sign-in is a write anyway.
    session.execute(
        delete(DashboardSession).where(
            or_(
                col(DashboardSession.expires_at) <= now,
                col(DashboardSession.idle_expires_at) <= now,
            )
        )
    )
    session_id = secrets.token_urlsafe(SESSION_RANDOM_BYTES)
    expires_at = session_expiry(principal, now=now, lifetimes=lifetimes)
    session.add(
        DashboardSession(
            session_hash=hash_token(session_id),
            token_id=principal.token_id,
            district_id=principal.district_id,
            created_at=now,
            last_seen_at=now,
            idle_expires_at=idle_expiry(now, expires_at, lifetimes),
            expires_at=expires_at,
        )
    )
    session.flush()
    return session_id, expires_at


_session = table_of(DashboardSession)
_token = table_of(ApiToken)
_district = table_of(District)
# Built once: every request of the tab reads it. Core columns, so it runs on a bare connection
# too. The district's version comes in the same statement, so the two are consistent
# (licensing/storage/sign_in_cache.py relies on it).
_LIVE_SESSION = (
    select_columns(
        _session.c.id,
        _session.c.last_seen_at,
        _session.c.idle_expires_at,
        _session.c.expires_at,
        _token.c.id,
        _token.c.name,
        _token.c.district_id,
        _token.c.permissions,
        _token.c.expires_at,
        _district.c.slug,
        _district.c.version,
        _district.c.time_zone,
    )
    .join_from(_session, _token, _token.c.id == _session.c.token_id)
    .join(_district, _district.c.id == _token.c.district_id)
    .where(
        _session.c.session_hash == bindparam("session_hash"),
        _session.c.revoked_at.is_(None),
        _token.c.revoked_at.is_(None),
    )
)


def read_session(
    session: Session | Connection, *, session_id: str, now: datetime
) -> SessionRead | None:
    """The live session with this id, or None when it is unknown, ended, or its token revoked
    or expired."""
    found = read_session_versioned(session, session_id=session_id, now=now)
    return found[0] if found is not None else None


def read_session_versioned(
    session: Session | Connection, *, session_id: str, now: datetime
) -> tuple[SessionRead, DistrictVersion] | None:
    """``read_session``, with the district's version at ``now`` read in the same statement."""
    if not session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
        return None
    row = session.execute(_LIVE_SESSION, {"session_hash": hash_token(session_id)}).first()
    if row is None:
        return None
    (
        row_id,
        last_seen_at,
        idle_expires_at,
        expires_at,
        token_id,
        name,
        district_id,
        permissions,
        token_expires_at,
        slug,
        counter,
        time_zone,
    ) = row
    # Sign-in already caps the session at its token's expiry; checked here too, so no stored
    # session can outlive its token.
    if token_expires_at is not None:
        expires_at = min(expires_at, token_expires_at)
    if now >= idle_expires_at or now >= expires_at:
        return None
    read = SessionRead(
        principal=principal_of(
            token_id, name, district_id, permissions, slug, expires_at=token_expires_at
        ),
        session_row_id=row_id,
        due_for_touch=now - last_seen_at >= LAST_SEEN_RESOLUTION,
        last_seen_at=last_seen_at,
        idle_expires_at=idle_expires_at,
        expires_at=expires_at,
    )
    return read, version_at(counter, time_zone, now=now)


def touch_session(
    session: Session, *, session_row_id: int, now: datetime, lifetimes: SessionLifetimes
) -> None:
    """Record that the session was used now, which moves its idle expiry on."""
    stored = session.get(DashboardSession, session_row_id)
    if stored is None or stored.revoked_at is not None or now >= stored.idle_expires_at:
        return
    stored.last_seen_at = now
    stored.idle_expires_at = idle_expiry(now, stored.expires_at, lifetimes)


def end_session(session: Session, *, session_id: str, now: datetime) -> None:
    """Sign out: the session can never be used again, whoever holds its id. The district's
    version is raised with it, so every worker's sign-in cache drops the session at once
    (licensing/storage/sign_in_cache.py)."""
    if not session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
        return
    ended = session.execute(
        update(DashboardSession)
        .where(
            col(DashboardSession.session_hash) == hash_token(session_id),
            col(DashboardSession.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(DashboardSession.district_id))
    ).all()
    for (district_id,) in ended:
        district_changed(session, district_id)


@dataclass(frozen=True)
class LiveSignIns:
    """Who can still sign in to a district at one moment: its tokens not revoked, and the hashes
    of its tab sessions that have not ended (read together, ``live_sign_ins``)."""

    token_ids: frozenset[int]
    session_hashes: frozenset[str]

    def has_token(self, token_id: int) -> bool:
        return token_id in self.token_ids

    def has_session(self, session_hash: str) -> bool:
        """Whether the session with this hash (``hash_token`` of its id) is live."""
        return session_hash in self.session_hashes


_LIVE_TOKENS = select_columns(_token.c.id).where(
    _token.c.district_id == bindparam("district_id"), _token.c.revoked_at.is_(None)
)
_LIVE_SESSIONS = (
    select_columns(_session.c.session_hash)
    .join_from(_token, _session, _session.c.token_id == _token.c.id)
    .where(
        _token.c.district_id == bindparam("district_id"),
        _token.c.revoked_at.is_(None),
        _session.c.revoked_at.is_(None),
        _session.c.idle_expires_at > bindparam("now"),
        _session.c.expires_at > bindparam("now"),
    )
)


def live_sign_ins(connection: Connection, *, district_id: int, now: datetime) -> LiveSignIns:
    """The district's live tokens and tab sessions at ``now``: two statements on the tokens'
    district index and the sessions' token index, whatever the number of callers to check (a
    worker's live subscriptions check theirs with it after each change)."""
    tokens = connection.execute(_LIVE_TOKENS, {"district_id": district_id}).scalars()
    sessions = connection.execute(
        _LIVE_SESSIONS, {"district_id": district_id, "now": now}
    ).scalars()
    return LiveSignIns(token_ids=frozenset(tokens), session_hashes=frozenset(sessions))
