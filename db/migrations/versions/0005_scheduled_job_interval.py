"""scheduled job interval: the interval a job's next run was computed with

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs created before it have none: the scheduler reschedules them once, at its next pass.
    with op.batch_alter_table('scheduled_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interval_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scheduled_job', schema=None) as batch_op:
        batch_op.drop_column('interval_seconds')
