"""roster record disabled index

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only disabled records: the deactivated local students are listed without a roster scan.
    op.create_index(
        'ix_roster_record_disabled',
        'roster_record',
        ['district_id', 'source', 'id'],
        unique=False,
        sqlite_where=sa.text('enabled = 0'),
        postgresql_where=sa.text('NOT enabled'),
    )


def downgrade() -> None:
    op.drop_index('ix_roster_record_disabled', table_name='roster_record')
