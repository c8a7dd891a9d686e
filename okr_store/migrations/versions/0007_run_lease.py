"""One lease per project store: the run that holds it (with a fencing token) is the only one that
may commit syncs or record values.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "run_lease",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),  # the fencing token
        sa.Column("run_id", sa.String(64)),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer),
        sa.Column("acquired_at", sa.DateTime),
        sa.Column("until", sa.DateTime),
    )
    op.bulk_insert(table, [{"name": "project", "generation": 0}])
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("host", sa.String(255)))
        batch.add_column(sa.Column("pid", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.drop_column("pid")
        batch.drop_column("host")
    op.drop_table("run_lease")
