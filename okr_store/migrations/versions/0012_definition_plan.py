"""Registered definitions and restated values (``okrsync plan``): each key result remembers the
definition it is registered with (``key_result.definition_hash``, filled from its current value's for
stores made before), and a value recomputed under a newer definition names the value it restates
(``kr_value.restated_from``); the original is kept.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("key_result") as batch:
        batch.add_column(sa.Column("definition_hash", sa.String(64)))
    with op.batch_alter_table("kr_value") as batch:
        batch.add_column(sa.Column("restated_from", sa.BigInteger))
    kr = sa.table("key_result", sa.column("last_value_id", sa.BigInteger), sa.column("definition_hash"))
    value = sa.table("kr_value", sa.column("id", sa.BigInteger), sa.column("definition_hash"))
    current = sa.select(value.c.definition_hash).where(value.c.id == kr.c.last_value_id).scalar_subquery()
    op.execute(kr.update().where(kr.c.last_value_id.is_not(None)).values(definition_hash=current))


def downgrade() -> None:
    with op.batch_alter_table("kr_value") as batch:
        batch.drop_column("restated_from")
    with op.batch_alter_table("key_result") as batch:
        batch.drop_column("definition_hash")
