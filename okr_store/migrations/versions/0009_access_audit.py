"""Access events in the audit log (who changed which user, role, password or token, sign-ins), with
their target and the request's address; API tokens that never expired get the default lifetime.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TOKEN_DAYS = 90  # okrsync.users.TOKEN_DAYS when this migration was written


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("target", sa.Text))
        batch.add_column(sa.Column("address", sa.String(64)))
    # Tokens made before tokens had a default expiry keep working, for the default lifetime from now.
    until = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=TOKEN_DAYS)
    token = sa.table("api_token", sa.column("expires_at", sa.DateTime))
    op.execute(token.update().where(token.c.expires_at.is_(None)).values(expires_at=until))


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("address")
        batch.drop_column("target")
