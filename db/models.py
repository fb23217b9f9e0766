"""Tables. One class per entity; every table belongs to a district, and queries always filter by it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, LargeBinary, MetaData, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from db.rules_sql import COUNTED_POSTGRESQL, COUNTED_SQLITE

# Stable constraint names, so migrations read the same on SQLite and PostgreSQL.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
metadata = SQLModel.metadata


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a model, for statements on columns rather than objects."""
    # SQLModel's metaclass sets __table__ on every table model but does not declare it.
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


class District(SQLModel, table=True):
    __tablename__ = "district"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(unique=True, max_length=64)
    official_name: str = Field(max_length=200)
    legal_entity_name: str | None = Field(default=None, max_length=200)
    time_zone: str = Field(default="UTC", max_length=64)
    created_at: datetime
    # Raised in the transaction of every change the Licensing tab (or any query) would show
    # (licensing/storage/district_version.py); with the district's date it is the district's
    # version, which HTTP answers' ETags are built from.
    version: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})


class License(SQLModel, table=True):
    """The license as last received from its source, with the signed document it came in."""

    __tablename__ = "license"
    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", unique=True)
    source: str = Field(max_length=64)
    license_id: str = Field(max_length=128)
    licensed_to: str = Field(max_length=200)
    legal_entity_name: str | None = Field(default=None, max_length=200)
    total: int
    created_on: date
    expires_on: date
    deactivated: bool = False
    overage_allowance: float = 0.0
    issued_at: datetime
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: str = Field(max_length=200)
    key_id: str | None = Field(default=None, max_length=128)
    received_at: datetime


class LicenseSyncState(SQLModel, table=True):
    """How the last attempts to refresh a district's license went."""

    __tablename__ = "license_sync_state"
    district_id: int = Field(foreign_key="district.id", primary_key=True)
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=1000)
    failing_since: datetime | None = None
    last_forced_at: datetime | None = None


class LicenseSettings(SQLModel, table=True):
    __tablename__ = "license_settings"
    district_id: int = Field(foreign_key="district.id", primary_key=True)
    students_remaining_threshold: int = 50
    updated_at: datetime | None = None


class RosterRecord(SQLModel, table=True):
    """One person as one roster source reports them: students, and staff for the informational count."""

    __tablename__ = "roster_record"
    __table_args__ = (
        UniqueConstraint("district_id", "source", "source_id"),
        Index("ix_roster_record_person", "district_id", "person_key"),
        # Only the disabled records (few): the list of deactivated local students pages through
        # it by id without reading the rest of the roster.
        Index(
            "ix_roster_record_disabled",
            "district_id",
            "source",
            "id",
            sqlite_where=text("enabled = 0"),
            postgresql_where=text("NOT enabled"),
        ),
        # Only the records that count (db/rules_sql.py), in id order: the active-student
        # report's pages and its export read a district's counted records in order, without
        # other districts' rows or the records that do not count.
        Index(
            "ix_roster_record_counted",
            "district_id",
            "id",
            sqlite_where=text(COUNTED_SQLITE),
            postgresql_where=text(COUNTED_POSTGRESQL),
        ),
        # The counted records by when their source last changed them: the count review finds
        # those that have just become "not modified recently" without reading the roster.
        Index(
            "ix_roster_record_counted_modified",
            "district_id",
            "last_modified",
            sqlite_where=text(COUNTED_SQLITE),
            postgresql_where=text(COUNTED_POSTGRESQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No foreign key: a sync stores up to millions of rows at once, and PostgreSQL checks a
    # foreign key row by row. Every row comes from a sync run of the district (whose own
    # foreign key is checked), and districts are never deleted.
    district_id: int
    source: str = Field(max_length=64)
    source_id: str = Field(max_length=255)
    person_key: str = Field(max_length=255)
    role: str = Field(max_length=16)
    lifecycle: str = Field(max_length=32)
    enabled: bool = True
    raw_status: str | None = Field(default=None, max_length=64)
    given_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=255)
    grade: str | None = Field(default=None, max_length=16)
    school: str | None = Field(default=None, max_length=255)
    schools: str | None = Field(default=None, max_length=2000)
    graduation_year: int | None = None
    enrollment_end: date | None = None
    last_modified: datetime | None = None


# Indexes the migrations make that the models do not declare, left out when the two are compared
# (db/migrate.py). ix_roster_record_search: on PostgreSQL only, a trigram index (pg_trgm, GIN) of
# the text a search looks in (db/search_sql.py), so that a search of the active or deactivated
# students reads the records it matches; an expression index neither SQLite nor Alembic can
# compare. SQLite has none: there a search reads the district's records in order until a page
# is full.
INDEXES_OUTSIDE_MODELS = frozenset({"ix_roster_record_search"})


class RosterSyncRun(SQLModel, table=True):
    """One sync of one roster source: what it read, what it excluded and why, and how it ended."""

    __tablename__ = "roster_sync_run"
    __table_args__ = (Index("ix_roster_sync_run_source", "district_id", "source", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    source: str = Field(max_length=64)
    kind: str = Field(max_length=64)
    # running, applied, held, failed, superseded (a newer run of the source came first)
    status: str = Field(max_length=16)
    started_at: datetime
    # Refreshed with each staged batch: a running run whose heartbeat is old has died.
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    records: int = 0
    active_students: int | None = None
    active_before: int | None = None
    removed_active: int | None = None
    excluded: str | None = Field(default=None, max_length=1000)  # JSON: reason -> count
    server_count: int | None = None
    error: str | None = Field(default=None, max_length=4000)
    actor: str = Field(default="", max_length=200)
    # What the source read past (warnings) and could not classify (quarantined rows): totals;
    # the first ones are kept in roster_intake_issue.
    warnings: int = 0
    quarantined: int = 0

    # full: the source delivered its whole roster; delta: changes to the roster it had.
    mode: str = Field(default="full", max_length=8, sa_column_kwargs={"server_default": "full"})
    # Where the source's next delta starts (its own terms), kept once the run is applied.
    cursor: str | None = Field(default=None, max_length=500)


class RosterIntakeIssue(SQLModel, table=True):
    """A warning or a quarantined row of one sync run, as the source reported it: where in its
    input (file, line, column) and what. Kept for the runs an administrator may look at."""

    __tablename__ = "roster_intake_issue"
    __table_args__ = (Index("ix_roster_intake_issue_run", "run_id", "kind", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    run_id: int = Field(foreign_key="roster_sync_run.id")
    kind: str = Field(max_length=16)  # warning, quarantined
    file: str | None = Field(default=None, max_length=255)
    line: int | None = None
    column_name: str | None = Field(default=None, max_length=255)
    message: str = Field(max_length=1000)
    rows: int = 1  # how many rows a warning stands for
    source_id: str | None = Field(default=None, max_length=255)


class RosterStaging(SQLModel, table=True):
    """Records of a sync in progress; swapped into roster_record in one transaction at the end."""

    __tablename__ = "roster_staging"
    __table_args__ = (UniqueConstraint("run_id", "source_id"),)

    id: int | None = Field(default=None, primary_key=True)
    # No foreign key, as for roster_record: rows are staged only while their run is running
    # (each batch checks it), and removed when it ends.
    run_id: int
    source_id: str = Field(max_length=255)
    # Delta runs only: the record is removed (its other fields mean nothing), and the person key
    # the stored record had before the change, so the counts of both people can be adjusted.
    removed: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})
    previous_person_key: str | None = Field(default=None, max_length=255)
    person_key: str = Field(max_length=255)
    role: str = Field(max_length=16)
    lifecycle: str = Field(max_length=32)
    enabled: bool = True
    raw_status: str | None = Field(default=None, max_length=64)
    given_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=255)
    grade: str | None = Field(default=None, max_length=16)
    school: str | None = Field(default=None, max_length=255)
    schools: str | None = Field(default=None, max_length=2000)
    graduation_year: int | None = None
    enrollment_end: date | None = None
    last_modified: datetime | None = None


class Device(SQLModel, table=True):
    """Devices are never licensed; they are counted for the informational usage figures."""

    __tablename__ = "device"
    __table_args__ = (UniqueConstraint("district_id", "serial_number"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    serial_number: str = Field(max_length=128)
    model: str | None = Field(default=None, max_length=128)
    assigned_person_key: str | None = Field(default=None, max_length=255)


class DistrictUsage(SQLModel, table=True):
    """Counts kept in step with the roster in the same transaction, so reads never scan it."""

    __tablename__ = "district_usage"
    district_id: int = Field(foreign_key="district.id", primary_key=True)
    active_students: int = 0
    inactive_students: int = 0
    disabled_students: int = 0
    staff: int = 0
    devices: int = 0
    duplicates_collapsed: int = 0
    # Records that count (a person with two counts twice): the active-student report's total.
    counted_records: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    # Raised with every change of the roster (the counts are stored anew): what the count
    # review kept for the district holds only for the version it was computed at.
    roster_version: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    updated_at: datetime


class CountReviewSnapshot(SQLModel, table=True):
    """The count review of a district as last computed (licensing/storage/count_review.py):
    every worker reads it until the roster, the review's options or the district's day change.
    """

    __tablename__ = "count_review_snapshot"
    district_id: int = Field(foreign_key="district.id", primary_key=True)
    roster_version: int
    # The review's options and the district's day it was computed for (its own form).
    inputs: str = Field(max_length=200)
    # JSON: the groups' figures and examples, and the moment "not modified recently" began.
    review: str = Field(sa_column=Column(Text, nullable=False))
    computed_at: datetime


class Alert(SQLModel, table=True):
    """An alert raised once, kept while its condition holds, resolved with a time when it clears."""

    __tablename__ = "alert"
    __table_args__ = (
        # At most one open alert of a kind per district, even under concurrent evaluation.
        Index(
            "uq_alert_open_kind",
            "district_id",
            "kind",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    kind: str = Field(max_length=32)
    severity: str = Field(max_length=16)
    message: str = Field(max_length=500)
    placements: str = Field(max_length=100)
    raised_at: datetime
    resolved_at: datetime | None = None


class AuditEvent(SQLModel, table=True):
    """Append-only record of who changed what, when, and how it went."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # The log is read newest first a page at a time: by id, by kind then id, or by time.
        Index("ix_audit_event_district", "district_id", "id"),
        Index("ix_audit_event_action", "district_id", "action", "id"),
        Index("ix_audit_event_occurred", "district_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    occurred_at: datetime
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    old_value: str | None = Field(default=None, max_length=4000)
    new_value: str | None = Field(default=None, max_length=4000)
    outcome: str = Field(max_length=32)
    detail: str | None = Field(default=None, max_length=2000)


class ApiToken(SQLModel, table=True):
    """A bearer token, stored only as its SHA-256 hash; scoped to one district."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    name: str = Field(max_length=200)
    token_hash: str = Field(unique=True, max_length=64)
    token_prefix: str = Field(max_length=16)
    permissions: str = Field(max_length=200)
    created_at: datetime
    revoked_at: datetime | None = None
    # The moment it stops signing in; None: it works until revoked.
    expires_at: datetime | None = None


class TokenBudget(SQLModel, table=True):
    """An API token's budget of cost points (graph/rate_limit.py), shared by every worker and
    host: the bucket's level when it was last drawn from, and when that was (the service clock's
    seconds). ``granted`` says whether that last draw was paid."""

    __tablename__ = "token_budget"
    token_id: int = Field(foreign_key="api_token.id", primary_key=True)
    level: float
    updated: float
    granted: bool = True


class UsageSnapshot(SQLModel, table=True):
    """A district's counts once a day, kept for the usage history and the forecast."""

    __tablename__ = "usage_snapshot"
    __table_args__ = (UniqueConstraint("district_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    day: date
    active_students: int
    inactive_students: int
    staff: int
    devices: int
    total: int | None = None
    taken_at: datetime


class ScheduledJob(SQLModel, table=True):
    """A periodic job (license refresh, roster sync) and its lease: one runner at a time,
    whichever worker or host it is on."""

    __tablename__ = "scheduled_job"

    name: str = Field(primary_key=True, max_length=200)
    district_id: int | None = Field(default=None, foreign_key="district.id")
    kind: str = Field(max_length=32)
    # Indexed: each tick of each runner reads the few due jobs among a fleet's tens of thousands.
    next_run_at: datetime = Field(index=True)
    lease_holder: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    last_outcome: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=2000)
    consecutive_failures: int = 0
    cursor: int | None = None  # how far a job that follows a log (change events) has read
    # The interval next_run_at was computed with: when the configured one differs, the job is
    # rescheduled. None for jobs on a cron schedule, and for jobs created before it was kept.
    interval_seconds: int | None = None
    # For jobs on a cron schedule (roster syncs, license refreshes): the schedule next_run_at was
    # computed with (licensing.schedules.CronSchedule.key); when the configured one differs, the
    # job is rescheduled.
    schedule: str | None = Field(default=None, max_length=300)


class WebhookDelivery(SQLModel, table=True):
    """One notification to one webhook endpoint: at least once, de-duplicable by its key."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("endpoint", "idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id", index=True)
    endpoint: str = Field(max_length=500)
    event: str = Field(max_length=64)
    idempotency_key: str = Field(max_length=200)
    payload: str = Field(max_length=20000)
    status: str = Field(max_length=16)  # pending, delivered, failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime
    delivered_at: datetime | None = None


class ChangeEvent(SQLModel, table=True):
    """A note that a district's license or alerts changed, read by live subscriptions in every
    worker (polled on SQLite; PostgreSQL may also NOTIFY)."""

    __tablename__ = "change_event"
    __table_args__ = (Index("ix_change_event_district", "district_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    district_id: int = Field(foreign_key="district.id")
    topic: str = Field(max_length=32)  # license, alert_raised, alert_resolved
    subject_id: int | None = None  # the alert, for alert_raised and alert_resolved
    created_at: datetime


class DashboardSession(SQLModel, table=True):
    """A Licensing tab sign-in: the session id is stored only as its SHA-256 hash, and the
    session lives no longer than its idle and absolute expiries, or its token."""

    __tablename__ = "dashboard_session"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(unique=True, max_length=64)
    token_id: int = Field(foreign_key="api_token.id", index=True)
    district_id: int = Field(foreign_key="district.id")
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    expires_at: datetime = Field(index=True)  # the absolute expiry
    revoked_at: datetime | None = None


class FailedSignIn(SQLModel, table=True):
    """How many sign-ins failed from one client address in one window (a minute by default),
    shared by every worker and host."""

    __tablename__ = "failed_sign_in"

    client_address: str = Field(primary_key=True, max_length=64)
    window_start: datetime = Field(primary_key=True, index=True)
    failures: int = 0


class PersistedQuery(SQLModel, table=True):
    """A GraphQL document registered for automatic persisted queries (graph/persisted.py),
    found by its SHA-256. A district's own registrations are seen by that district only; those
    the operator registers (``district_id`` NULL) by every district."""

    __tablename__ = "persisted_query"
    __table_args__ = (
        UniqueConstraint("district_id", "sha256"),
        # NULLs never collide in a unique constraint: the operator's documents get their own.
        Index(
            "uq_persisted_query_operator_sha256",
            "sha256",
            unique=True,
            sqlite_where=text("district_id IS NULL"),
            postgresql_where=text("district_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    district_id: int | None = Field(default=None, foreign_key="district.id")
    sha256: str = Field(max_length=64)
    document: str = Field(sa_column=Column(Text, nullable=False))
    registered_by: str = Field(max_length=200)
    registered_at: datetime
