"""Alert subjects of checks that have neither a KR nor a stream (reconciliations) were stored as
``stream:None:<label>``; they are now the check's label alone (``reconcile(<name>)``). The state
already seen moves to the new subject, so a failing reconciliation is not announced a second time,
and the events already recorded read the same way.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

OLD = "stream:None:"
KIND = "check_failed"


def _tables() -> list[sa.TableClause]:
    return [sa.table(name, sa.column("kind", sa.String), sa.column("subject", sa.String))
            for name in ("alert_state", "alert_event")]


def upgrade() -> None:
    conn = op.get_bind()
    for t in _tables():
        old = conn.execute(sa.select(t.c.subject).distinct()
                           .where(t.c.kind == KIND, t.c.subject.startswith(OLD))).scalars().all()
        for subject in old:
            conn.execute(t.update().where(t.c.kind == KIND, t.c.subject == subject)
                         .values(subject=subject[len(OLD):]))


def downgrade() -> None:
    conn = op.get_bind()
    for t in _tables():
        ours = sa.and_(t.c.kind == KIND, ~t.c.subject.startswith("kr:"), ~t.c.subject.startswith("stream:"))
        new = conn.execute(sa.select(t.c.subject).distinct().where(ours)).scalars().all()
        for subject in new:
            conn.execute(t.update().where(t.c.kind == KIND, t.c.subject == subject)
                         .values(subject=OLD + subject))
