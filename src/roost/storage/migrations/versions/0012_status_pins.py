"""status pins: statuses pinned to their author's profile

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'status_pins',
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('status_id', sa.BigInteger(), nullable=False),
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('account_id', 'status_id'),
    )
    with op.batch_alter_table('status_pins', schema=None) as batch_op:
        batch_op.create_index('ix_status_pins_status_id', ['status_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('status_pins', schema=None) as batch_op:
        batch_op.drop_index('ix_status_pins_status_id')
    op.drop_table('status_pins')
