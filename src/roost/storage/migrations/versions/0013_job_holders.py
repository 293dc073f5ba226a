"""job holders: the worker processes holding leased jobs, and whether they are alive

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 10:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_holders',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('alive_until', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_by', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('locked_by')
    op.drop_table('job_holders')
