"""web sessions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.BigInteger(), nullable=False),
        sa.Column('renewed_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('session_hash'),
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_web_sessions_account_id', ['account_id'], unique=False)
        batch_op.create_index('ix_web_sessions_renewed_at', ['renewed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_web_sessions_renewed_at')
        batch_op.drop_index('ix_web_sessions_account_id')
    op.drop_table('web_sessions')
