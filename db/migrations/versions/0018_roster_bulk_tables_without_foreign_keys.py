"""roster bulk tables without foreign keys

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A sync writes every record twice (staged, then stored): PostgreSQL checks a foreign key
    # row by row, which took longer than writing the rows. Each staged row's run and each stored
    # row's district are the run's own, checked when the run is written.
    with op.batch_alter_table('roster_staging', schema=None) as batch_op:
        batch_op.drop_constraint('fk_roster_staging_run_id_roster_sync_run', type_='foreignkey')
    with op.batch_alter_table('roster_record', schema=None) as batch_op:
        batch_op.drop_constraint('fk_roster_record_district_id_district', type_='foreignkey')


def downgrade() -> None:
    with op.batch_alter_table('roster_record', schema=None) as batch_op:
        batch_op.create_foreign_key(
            'fk_roster_record_district_id_district', 'district', ['district_id'], ['id']
        )
    with op.batch_alter_table('roster_staging', schema=None) as batch_op:
        batch_op.create_foreign_key(
            'fk_roster_staging_run_id_roster_sync_run', 'roster_sync_run', ['run_id'], ['id']
        )
