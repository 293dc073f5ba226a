"""favourites by account: the index behind GET /api/v1/favourites

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 17:40:00
"""

from __future__ import annotations

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.create_index('ix_favourites_account_id', ['account_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('favourites', schema=None) as batch_op:
        batch_op.drop_index('ix_favourites_account_id')
