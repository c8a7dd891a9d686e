"""Alerts: the state each event source last saw, the events it recorded and their deliveries.

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("subject", sa.String(300), primary_key=True),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "alert_event",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("kr_ids", sa.Text, nullable=False),
        sa.Column("facts", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_alert_event_created", "alert_event", ["created_at"])
    op.create_table(
        "alert_delivery",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_attempt_at", sa.DateTime),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("event_id", "channel", "recipient", name="uq_alert_delivery_target"),
    )
    op.create_index("ix_alert_delivery_status", "alert_delivery", ["status"])
    op.create_index("ix_alert_delivery_channel_sent", "alert_delivery", ["channel", "sent_at"])


def downgrade() -> None:
    op.drop_table("alert_delivery")
    op.drop_table("alert_event")
    op.drop_table("alert_state")
