"""id nodes: each process claims the node bits of its ids

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'id_nodes',
        sa.Column('id', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('claimed', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )


def downgrade() -> None:
    op.drop_table('id_nodes')
