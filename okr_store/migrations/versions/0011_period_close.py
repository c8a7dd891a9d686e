"""Closing periods: when a KR's period ends and its grace period is over, its value is frozen as final
(``kr_close``); later source changes that would move it are kept as restatements (``kr_restatement``)
with the records that caused them, for admins to acknowledge. Values computed against a closed period
carry the close they restate (``kr_value.restates``) and never become current.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("key_result") as batch:
        batch.add_column(sa.Column("period_end", sa.DateTime))
        batch.add_column(sa.Column("closes_on", sa.Date))
        batch.add_column(sa.Column("closes_at", sa.DateTime))
    with op.batch_alter_table("kr_value") as batch:
        batch.add_column(sa.Column("restates", sa.BigInteger))
    op.create_table(
        "kr_close",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("kr_id", sa.String(100), nullable=False),
        sa.Column("period_label", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("value_id", sa.BigInteger, nullable=False),
        sa.Column("closes_at", sa.DateTime, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("closed_at", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("reopened_at", sa.DateTime),
        sa.Column("reopened_by", sa.Text),
        sa.Column("reopen_reason", sa.Text),
        sa.Column("reopen_until", sa.DateTime),
        sa.UniqueConstraint("kr_id", "period_label", "seq", name="uq_kr_close_seq"),
    )
    op.create_table(
        "kr_restatement",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("close_id", sa.BigInteger, nullable=False, index=True),
        sa.Column("kr_id", sa.String(100), nullable=False, index=True),
        sa.Column("value_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("closed_value_id", sa.BigInteger, nullable=False),
        sa.Column("value", sa.String(64)),
        sa.Column("closed_value", sa.String(64)),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("total_changes", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("acknowledge_reason", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("kr_restatement")
    op.drop_table("kr_close")
    with op.batch_alter_table("kr_value") as batch:
        batch.drop_column("restates")
    with op.batch_alter_table("key_result") as batch:
        batch.drop_column("closes_at")
        batch.drop_column("closes_on")
        batch.drop_column("period_end")
