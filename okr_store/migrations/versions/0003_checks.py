"""Data-quality check results and the audit log of admin decisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    op.create_table(
        "check_result",
        _id(),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("sync_id", sa.BigInteger),
        sa.Column("stream", sa.String(200)),
        sa.Column("kr_id", sa.String(100)),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("element_count", sa.BigInteger, nullable=False),
        sa.Column("unexpected_count", sa.BigInteger, nullable=False),
        sa.Column("observed", sa.Text),
        sa.Column("sample", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("held_krs", sa.Text, nullable=False),
        sa.Column("proposed_value", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("resolved_at", sa.DateTime),
        sa.Column("resolved_by", sa.Text),
    )
    op.create_index("ix_check_result_created", "check_result", ["created_at"])
    op.create_table(
        "audit_event",
        _id(),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("check_id", sa.BigInteger),
        sa.Column("kr_id", sa.String(100)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_event")
    op.drop_index("ix_check_result_created", "check_result")
    op.drop_table("check_result")
