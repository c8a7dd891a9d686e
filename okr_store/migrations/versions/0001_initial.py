"""The initial store schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DecimalText = sa.String(64)


def _id() -> sa.Column:
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def upgrade() -> None:
    op.create_table(
        "objective",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("parent_id", sa.String(100), nullable=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("owner", sa.Text),
        sa.Column("weight", DecimalText, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "key_result",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("objective_id", sa.String(100), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("owner", sa.Text),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("period_label", sa.String(64), nullable=False),
        sa.Column("baseline", DecimalText, nullable=False),
        sa.Column("target", DecimalText, nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("weight", DecimalText, nullable=False),
        sa.Column("unit", sa.String(32)),
        sa.Column("streams", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("last_value_id", sa.BigInteger),
        sa.Column("held_reason", sa.Text),
        sa.Column("held_since", sa.DateTime),
    )
    op.create_table(
        "definition",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("kr_id", sa.String(100), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "stream_state",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("record_table", sa.String(63), nullable=False, unique=True),
        sa.Column("primary_key", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("watermark", sa.Text),
        sa.Column("last_sync_id", sa.BigInteger),
        sa.Column("last_success_at", sa.DateTime),
        sa.Column("last_attempt_at", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("lease_sync_id", sa.BigInteger),
        sa.Column("lease_until", sa.DateTime),
    )
    op.create_table(
        "sync_run",
        _id(),
        sa.Column("run_id", sa.String(64), nullable=False, index=True),
        sa.Column("stream", sa.String(200), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("keys_read", sa.BigInteger, nullable=False),
        sa.Column("inserted", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.BigInteger, nullable=False),
        sa.Column("watermark_before", sa.Text),
        sa.Column("watermark_after", sa.Text),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "kr_value",
        _id(),
        sa.Column("kr_id", sa.String(100), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("value", DecimalText),
        sa.Column("reason", sa.Text),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("baseline", DecimalText, nullable=False),
        sa.Column("target", DecimalText, nullable=False),
        sa.Column("progress_raw", DecimalText),
        sa.Column("progress", DecimalText),
        sa.Column("expected", DecimalText, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("as_of", sa.DateTime, nullable=False),
        sa.Column("computed_at", sa.DateTime, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
    )
    op.create_index("ix_kr_value_kr_computed", "kr_value", ["kr_id", "computed_at"])


def downgrade() -> None:
    for name in ("kr_value", "run", "sync_run", "stream_state", "definition", "key_result", "objective"):
        op.drop_table(name)
