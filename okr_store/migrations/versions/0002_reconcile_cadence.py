"""Remember when a stream last compared every key with its source (hard-delete detection).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.add_column(sa.Column("last_reconcile_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.drop_column("last_reconcile_at")
