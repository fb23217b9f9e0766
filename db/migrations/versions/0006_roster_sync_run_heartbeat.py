"""roster sync run heartbeat

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    # Runs marked `discarded` by earlier versions were superseded by a newer held run.
    op.execute("UPDATE roster_sync_run SET status = 'superseded' WHERE status = 'discarded'")


def downgrade() -> None:
    op.execute("UPDATE roster_sync_run SET status = 'discarded' WHERE status = 'superseded'")
    with op.batch_alter_table('roster_sync_run', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
