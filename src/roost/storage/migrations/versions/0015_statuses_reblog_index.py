"""an index of a status's reblogs

``GET /api/v1/statuses/:id/reblogged_by`` and a status's deletion (which deletes its reblogs)
found them by reading the whole statuses table: 82 ms a page on SQLite with 300,000 statuses
(``python -m bench.endpoints``). Only reblogs are indexed (a partial index on both engines),
a small part of the table. Building it reads the table once, while the server starts.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28 04:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_REBLOGS_ONLY = sa.text("reblog_of_id IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_statuses_reblog_of_id', 'statuses', ['reblog_of_id', 'id'],
                    unique=False, sqlite_where=_REBLOGS_ONLY, postgresql_where=_REBLOGS_ONLY)


def downgrade() -> None:
    op.drop_index('ix_statuses_reblog_of_id', table_name='statuses')
