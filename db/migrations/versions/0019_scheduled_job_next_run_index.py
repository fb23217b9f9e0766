"""scheduled job next run index

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every tick of every scheduler runner reads the jobs that are due: a few, among four per
    # district of a fleet.
    op.create_index(
        'ix_scheduled_job_next_run_at', 'scheduled_job', ['next_run_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_scheduled_job_next_run_at', table_name='scheduled_job')
