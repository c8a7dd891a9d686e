"""Planner statistics of a record table, refreshed after a sync that changed much of it.

A first sync lands every row in a table the planner has never measured (PostgreSQL believes it nearly
empty until autovacuum comes round, SQLite has no ``sqlite_stat1`` at all); the next sync's commit then
joins staged rows against it with a plan made for a few rows: 3.7 s at 1M rows, 0.3 s after one ANALYZE.
So a commit that wrote more than :data:`CHANGED_SHARE` of the rows the table had when last measured (or
any row into a table never measured) measures it again: ``ANALYZE <table>`` on both databases. A small
incremental sync leaves it to autovacuum (PostgreSQL) or to the next big sync.
"""

from __future__ import annotations

import sqlalchemy as sa

CHANGED_SHARE = 0.10  # autovacuum_analyze_scale_factor's default: the same rule, applied at once


def measured_rows(conn: sa.Connection, table: sa.Table) -> int | None:
    """The row count the planner's statistics hold for ``table``; None if it was never measured."""
    if conn.dialect.name == "postgresql":
        # reltuples is -1 until the first ANALYZE or VACUUM (PostgreSQL 14+)
        tuples = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                              {"t": _quoted(conn, table)}).scalar()
        return None if tuples is None or tuples < 0 else int(tuples)
    if conn.dialect.name == "sqlite":
        if not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").first():
            return None
        stat = conn.execute(sa.text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t"),
                            {"t": table.name}).scalar()
        return None if stat is None else int(str(stat).split()[0])
    return 0  # other databases keep their statistics themselves: any change counts as small


def needs_analyze(measured: int | None, written: int) -> bool:
    """Whether a commit that wrote ``written`` rows (inserted versions plus closed ones) into a table
    measured at ``measured`` rows leaves its statistics stale."""
    if written <= 0:
        return False
    return measured is None or written > CHANGED_SHARE * measured


def refresh_statistics(engine: sa.Engine, table: sa.Table, written: int) -> bool:
    """``ANALYZE`` ``table`` when a commit that wrote ``written`` rows made its statistics stale (own
    short transaction, after the commit). Returns whether it did."""
    if engine.dialect.name not in ("postgresql", "sqlite"):
        return False
    try:
        with engine.begin() as conn:
            if not needs_analyze(measured_rows(conn, table), written):
                return False
            conn.exec_driver_sql(f"ANALYZE {_quoted(conn, table)}")
    except sa.exc.SQLAlchemyError:
        return False  # the sync is committed; stale statistics only make later commits slower
    return True


def _quoted(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)
