"""scheduled job schedule: the cron schedule a job's next run was computed with

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs created before it have none: the scheduler moves roster syncs and license refreshes
    # onto their cron schedule at its next pass.
    with op.batch_alter_table('scheduled_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scheduled_job', schema=None) as batch_op:
        batch_op.drop_column('schedule')
