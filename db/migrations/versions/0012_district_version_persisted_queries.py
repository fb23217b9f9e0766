"""district version and persisted queries

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('district', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('version', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )
    op.create_table(
        'persisted_query',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('district_id', sa.Integer(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('document', sa.Text(), nullable=False),
        sa.Column('registered_by', sa.String(length=200), nullable=False),
        sa.Column('registered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['district_id'], ['district.id'], name='fk_persisted_query_district_id_district'
        ),
        sa.PrimaryKeyConstraint('id', name='pk_persisted_query'),
        sa.UniqueConstraint(
            'district_id', 'sha256', name='uq_persisted_query_district_id_sha256'
        ),
    )
    op.create_index(
        'uq_persisted_query_operator_sha256',
        'persisted_query',
        ['sha256'],
        unique=True,
        sqlite_where=sa.text('district_id IS NULL'),
        postgresql_where=sa.text('district_id IS NULL'),
    )


def downgrade() -> None:
    op.drop_index('uq_persisted_query_operator_sha256', table_name='persisted_query')
    op.drop_table('persisted_query')
    with op.batch_alter_table('district', schema=None) as batch_op:
        batch_op.drop_column('version')
