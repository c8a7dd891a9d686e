"""Record how many API calls each sync used (sources with a call budget, such as Salesforce).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_run") as batch:
        batch.add_column(sa.Column("api_calls", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("sync_run") as batch:
        batch.drop_column("api_calls")
