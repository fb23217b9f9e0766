"""heavy reads: indexes of counted records, roster search, audit log; kept count review

Revision ID: 0017
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0017'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# db/rules_sql.py's counting rule, as index conditions; db/search_sql.py's search text.
COUNTED_POSTGRESQL = "role = 'student' AND lifecycle = 'active' AND enabled"
COUNTED_SQLITE = "role = 'student' AND lifecycle = 'active' AND enabled = 1"
SEARCH_TEXT = (
    "lower(coalesce(given_name, '') || ' ' || coalesce(family_name, '') || '|' || "
    "coalesce(username, '') || '|' || source_id)"
)
COUNTED_RECORDS = (
    "UPDATE district_usage SET counted_records = (SELECT count(*) FROM roster_record "
    "WHERE roster_record.district_id = district_usage.district_id AND {counted})"
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        _create_trigram_extension()
    for name, columns in (
        ('ix_roster_record_counted', ['district_id', 'id']),
        ('ix_roster_record_counted_modified', ['district_id', 'last_modified']),
    ):
        op.create_index(
            name,
            'roster_record',
            columns,
            unique=False,
            sqlite_where=sa.text(COUNTED_SQLITE),
            postgresql_where=sa.text(COUNTED_POSTGRESQL),
        )
    if postgresql:
        op.execute(
            f'CREATE INDEX ix_roster_record_search ON roster_record '
            f'USING gin (({SEARCH_TEXT}) gin_trgm_ops)'
        )

    with op.batch_alter_table('district_usage', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('counted_records', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )
        batch_op.add_column(
            sa.Column('roster_version', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )
    # The report's total, counted once here; every change of a roster keeps it from now on.
    counted = COUNTED_POSTGRESQL if postgresql else COUNTED_SQLITE
    counted = ' AND '.join(f'roster_record.{term.strip()}' for term in counted.split(' AND '))
    op.execute(COUNTED_RECORDS.format(counted=counted))

    op.create_table(
        'count_review_snapshot',
        sa.Column('district_id', sa.Integer(), nullable=False),
        sa.Column('roster_version', sa.Integer(), nullable=False),
        sa.Column('inputs', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('review', sa.Text(), nullable=False),
        sa.Column('computed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['district_id'], ['district.id'], name='fk_count_review_snapshot_district_id_district'
        ),
        sa.PrimaryKeyConstraint('district_id', name='pk_count_review_snapshot'),
    )

    op.drop_index('ix_audit_event_district_id', table_name='audit_event')
    op.create_index('ix_audit_event_district', 'audit_event', ['district_id', 'id'])
    op.create_index('ix_audit_event_action', 'audit_event', ['district_id', 'action', 'id'])
    op.create_index('ix_audit_event_occurred', 'audit_event', ['district_id', 'occurred_at'])


def _create_trigram_extension() -> None:
    """pg_trgm, which PostgreSQL ships (Debian's postgresql package; managed services list it
    among their extensions); a trusted extension, so the database's owner may create it."""
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if available is None:
        raise RuntimeError(
            "The licensing database needs PostgreSQL's pg_trgm extension for roster searches, "
            "and this server does not have it: install PostgreSQL's contrib modules (Debian's "
            "postgresql package has them) or enable pg_trgm on a managed service, then run "
            "`licensing db upgrade` again."
        )
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')


def downgrade() -> None:
    op.drop_index('ix_audit_event_occurred', table_name='audit_event')
    op.drop_index('ix_audit_event_action', table_name='audit_event')
    op.drop_index('ix_audit_event_district', table_name='audit_event')
    op.create_index('ix_audit_event_district_id', 'audit_event', ['district_id'])
    op.drop_table('count_review_snapshot')
    with op.batch_alter_table('district_usage', schema=None) as batch_op:
        batch_op.drop_column('roster_version')
        batch_op.drop_column('counted_records')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_roster_record_search', table_name='roster_record')
    op.drop_index('ix_roster_record_counted_modified', table_name='roster_record')
    op.drop_index('ix_roster_record_counted', table_name='roster_record')
