"""delta syncs: a run's mode and cursor, staged removals

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('mode', sa.String(length=8), server_default='full', nullable=False)
        )
        batch_op.add_column(sa.Column('cursor', sa.String(length=500), nullable=True))
    with op.batch_alter_table('roster_staging', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('removed', sa.Boolean(), server_default=sa.text('false'), nullable=False)
        )
        batch_op.add_column(
            sa.Column('previous_person_key', sa.String(length=255), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('roster_staging', schema=None) as batch_op:
        batch_op.drop_column('previous_person_key')
        batch_op.drop_column('removed')
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.drop_column('cursor')
        batch_op.drop_column('mode')
