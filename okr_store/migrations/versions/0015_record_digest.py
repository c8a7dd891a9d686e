"""Key-range digests of each stream's live records, kept up to date at every commit.

The tables start empty: a stream's digests are built from its records the first time a sync compares
digests (okr_store.digests), since only the source says whether its key is one integer.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_scheme",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("positional", sa.Boolean, nullable=False),
        sa.Column("origin", sa.BigInteger, nullable=False),
        sa.Column("width", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "record_digest",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("bucket", sa.BigInteger, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("s1", sa.BigInteger, nullable=False),
        sa.Column("s2", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("record_digest")
    op.drop_table("digest_scheme")
