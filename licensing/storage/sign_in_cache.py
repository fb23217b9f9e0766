"""Sign-in from a small in-process cache that can never allow a revoked token or ended session.

Every request signs in and reads its district's version (licensing/storage/district_version.py).
This module does both with one statement in the common case: a token (by its hash) or a session
(by the hash of its id) once found live is remembered with the district's version counter read
in the SAME statement that found it. On the next request only the version is read, on the
district's primary key; while the counter is unchanged, nothing the sign-in depends on can have
changed, because every way a token or session stops signing in raises the version in its own
transaction:

- revoking a token (``tokens.withdraw_token``) writes an audit event, which raises it; its
  sessions end in that transaction too;
- signing out (``dashboard_sessions.end_session``) raises it.

When the counter moved, the token or session is read again (one more statement, which also
reads the version, so the pair stays consistent). So the cache is shared by nothing, needs no
message between workers, and a revocation committed by any worker or command is seen by the very
next request on every worker. Expiry is checked against the caller's clock at every use, since
no write marks it: a token's expiry (an entry is never used from its expiry on), a session's
absolute and idle expiry (capped at its token's), and its last-seen time (the full read is done
again when the last-seen time is due to be written, as without the cache).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from db.session import Database
from licensing.storage.dashboard_sessions import (
    LAST_SEEN_RESOLUTION,
    MAX_SESSION_ID_LENGTH,
    read_session_versioned,
)
from licensing.storage.district_version import district_version
from licensing.storage.tokens import (
    MAX_SECRET_LENGTH,
    TOKEN_PREFIX,
    Principal,
    SignedIn,
    authenticate_versioned,
    hash_token,
)

# Tokens and sessions remembered per worker, each a few hundred bytes.
DEFAULT_SIGN_IN_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class SessionSignIn:
    """A live session's sign-in, and the session row whose last-seen time is due to be
    written (None when it is not due)."""

    signed_in: SignedIn
    touch_row_id: int | None


@dataclass(frozen=True)
class _Remembered:
    principal: Principal
    counter: int
    # When the entry stops being usable: a token's expiry (None: never), or for a session the
    # moment its row must be read again.
    usable_until: datetime | None = None


class SignInCache:
    """Live tokens and sessions of this worker, by hash, least recently used first out.

    Thread-safe (a lock around each dictionary step): reads run in worker threads on PostgreSQL.
    """

    def __init__(self, size: int = DEFAULT_SIGN_IN_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def token(self, database: Database, secret: str, *, now: datetime) -> SignedIn | None:
        """The token's principal and district version, or None when it is unknown, revoked or
        expired at ``now``."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
            return None
        key = "t:" + hash_token(secret)
        remembered = self._get(key)
        if remembered is not None:
            if remembered.usable_until is not None and now >= remembered.usable_until:
                # Expired: no write tells the version about it, and it never works again.
                self.forget(key)
                return None
            signed_in = self._still_current(database, key, remembered, now=now)
            if signed_in is not None:
                return signed_in
        with database.read_connection() as connection:
            found = authenticate_versioned(connection, secret=secret, now=now)
        if found is None:
            return None
        self._put(
            key,
            _Remembered(
                found.principal, found.version.counter, usable_until=found.principal.expires_at
            ),
        )
        return found

    def dashboard_session(
        self, database: Database, session_id: str, *, now: datetime
    ) -> SessionSignIn | None:
        """A live session's principal and district version, or None when it has ended; says
        which row's last-seen time to write, when it is due (as ``read_session`` does)."""
        if not session_id or len(session_id) > MAX_SESSION_ID_LENGTH:
            return None
        key = "s:" + hash_token(session_id)
        remembered = self._get(key)
        if (
            remembered is not None
            and remembered.usable_until is not None
            and now < remembered.usable_until
        ):
            signed_in = self._still_current(database, key, remembered, now=now)
            if signed_in is not None:
                return SessionSignIn(signed_in, touch_row_id=None)
        with database.read_connection() as connection:
            found = read_session_versioned(connection, session_id=session_id, now=now)
        if found is None:
            self.forget(key)
            return None
        read, version = found
        # Usable from here until it ends or its last-seen time is next due to be written (the
        # write is the caller's, now when it is due): never past what the row says.
        seen = now if read.due_for_touch else read.last_seen_at
        usable_until = min(seen + LAST_SEEN_RESOLUTION, read.idle_expires_at, read.expires_at)
        self._put(
            key,
            _Remembered(read.principal, version.counter, usable_until=usable_until),
        )
        return SessionSignIn(
            SignedIn(read.principal, version),
            touch_row_id=read.session_row_id if read.due_for_touch else None,
        )

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def forget_session(self, session_id: str) -> None:
        """Drop a session this worker ended (other workers see the version move)."""
        self.forget("s:" + hash_token(session_id))

    def _still_current(
        self, database: Database, key: str, remembered: _Remembered, *, now: datetime
    ) -> SignedIn | None:
        """The remembered sign-in with the district's version, when the version has not moved
        since it was read (one statement); else None, and the entry is dropped."""
        try:
            version = district_version(database, remembered.principal.district_id, now=now)
        except LookupError:
            version = None
        if version is not None and version.counter == remembered.counter:
            return SignedIn(remembered.principal, version)
        self.forget(key)
        return None

    def _get(self, key: str) -> _Remembered | None:
        with self._lock:
            remembered = self._entries.get(key)
            if remembered is not None:
                self._entries.move_to_end(key)
            return remembered

    def _put(self, key: str, remembered: _Remembered) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = remembered
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
