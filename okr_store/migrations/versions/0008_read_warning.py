"""What the last committed sync of a stream warned about: records dated ahead of the source's clock,
open transactions the source would not show. ``okrsync status`` shows it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.add_column(sa.Column("read_warning", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("stream_state") as batch:
        batch.drop_column("read_warning")
