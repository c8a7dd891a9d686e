"""Each value's first contributions in drill order, so a drill's first page is an index lookup.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kr_value_top",
        sa.Column("value_id", sa.BigInteger, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("record_id", sa.String(512), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kr_value_top")
