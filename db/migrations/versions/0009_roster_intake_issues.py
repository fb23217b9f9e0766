"""roster intake: warnings and quarantined rows of each sync run

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(
            sa.Column('quarantined', sa.Integer(), nullable=False, server_default='0')
        )
    op.create_table('roster_intake_issue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('file', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('column_name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('source_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.ForeignKeyConstraint(['district_id'], ['district.id'], name=op.f('fk_roster_intake_issue_district_id_district')),
    sa.ForeignKeyConstraint(['run_id'], ['roster_sync_run.id'], name=op.f('fk_roster_intake_issue_run_id_roster_sync_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_roster_intake_issue'))
    )
    op.create_index('ix_roster_intake_issue_run', 'roster_intake_issue', ['run_id', 'kind', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_roster_intake_issue_run', table_name='roster_intake_issue')
    op.drop_table('roster_intake_issue')
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.drop_column('quarantined')
        batch_op.drop_column('warnings')
