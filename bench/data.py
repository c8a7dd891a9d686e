"""The benchmark's world: throwaway PostgreSQL databases, a generated order-lines table, the key results
planned over it, and the okrsync project file that declares them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

TABLE = "order_lines"
STREAM = "order_lines"
SOURCE = "shop"
SOURCE_URL_ENV = "OKRSYNC_BENCH_SOURCE_URL"
STORE_URL_ENV = "OKRSYNC_STORE_URL"
REGIONS = ("EMEA", "NA", "LATAM", "APAC", "ANZ")
YEAR = 2025
# Every period is over by then: KRs see whole periods, the per-KR SQL needs no as-of logic.
AS_OF = datetime(YEAR + 1, 1, 1, 0, 0)
COLUMNS = (
    "id",
    "order_id",
    "region",
    "product",
    "quantity",
    "unit_price",
    "amount",
    "state",
    "order_date",
    "write_date",
)
# The statement okrsync's SQL connector issues for a full read (cursor write_date is NOT NULL, so no
# NULLS-first CASE), used verbatim by the read baselines.
FULL_SELECT = f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY write_date, id"  # noqa: S608 - constants


# ---- databases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server reached through an admin URL (``postgresql://postgres@host:port/postgres``)."""

    admin_url: str

    def conninfo(self, database: str) -> str:
        """A libpq URL for ``database`` on this server."""
        from sqlalchemy import make_url

        url = make_url(self.admin_url).set(drivername="postgresql", database=database)
        return url.render_as_string(hide_password=False)

    def sa_url(self, database: str) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) for ``database``."""
        from sqlalchemy import make_url

        url = make_url(self.admin_url).set(drivername="postgresql+psycopg", database=database)
        return url.render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo("postgres"), autocommit=True)

    def create(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def version(self) -> str:
        with self._admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        names = ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "synchronous_commit")
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", [list(names)]
            )
            return {r[0]: f"{r[1]}{r[2] or ''}" for r in rows}


@contextmanager
def databases(server: Server, names: list[str], *, keep: bool = False) -> Iterator[None]:
    """Create fresh databases; drop them afterwards, also when the benchmark fails or is interrupted."""
    created: list[str] = []
    try:
        for n in names:
            server.create(n)
            created.append(n)
        yield
    finally:
        if not keep:
            for n in created:
                try:
                    server.drop(n)
                except psycopg.Error as exc:  # report, and still try the others
                    print(f"warning: could not drop database {n}: {exc}")


# ---- the source table ------------------------------------------------------------------------------

_CREATE = """
CREATE TABLE order_lines (
    id          bigint        NOT NULL,
    order_id    bigint        NOT NULL,
    region      text          NOT NULL,
    product     text          NOT NULL,
    quantity    integer       NOT NULL,
    unit_price  numeric(12,2) NOT NULL,
    amount      numeric(12,2) NOT NULL,
    state       text          NOT NULL,
    order_date  date          NOT NULL,
    write_date  timestamp     NOT NULL
)"""

# Deterministic pseudo-random values from hashint8extended (same data every run, no random() state):
# about 5 lines per order; an order has one region, state and date; 4 quarters of YEAR.
# The generated columns of lines %(first)s … %(last)s after their id and order id (``i, o``); also
# bench/drill_scale.py's record versions.
LINE_VALUES = """
       (ARRAY['EMEA','NA','LATAM','APAC','ANZ'])[1 + (ho %% 5)],
       'P-' || lpad((hp %% 500)::text, 3, '0'),
       q, p, (q * p)::numeric(12,2),
       (ARRAY['draft','cancel','confirmed','confirmed','confirmed',
              'confirmed','done','done','done','done'])[1 + (hs %% 10)],
       d,
       d + make_interval(secs => (ho %% 172800) + (i %% 5) * 7)
FROM (
    SELECT i, o,
           hashint8extended(o, 1) & 2147483647 AS ho,
           hashint8extended(o, 2) & 2147483647 AS hs,
           hashint8extended(i, 3) & 2147483647 AS hp,
           1 + (hashint8extended(i, 4) & 2147483647) %% 20 AS q,
           ((100 + (hashint8extended(i, 5) & 2147483647) %% 49900) / 100.0)::numeric(12,2) AS p,
           make_date(%(year)s, 1, 1) + ((hashint8extended(o, 6) & 2147483647) %% 365)::int AS d
    FROM (SELECT i, (i - 1) / 5 + 1 AS o FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i) g
) s
"""
_FILL = "INSERT INTO order_lines\nSELECT i, o," + LINE_VALUES


def generate_source(conninfo: str, rows: int) -> None:
    """Create and fill ``order_lines`` with ``rows`` lines; primary key, cursor index, ANALYZE."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(_CREATE)
        conn.execute("SET synchronous_commit = off")
        conn.execute(_FILL, {"first": 1, "last": rows, "year": YEAR})
        conn.execute("ALTER TABLE order_lines ADD PRIMARY KEY (id)")
        # What an ERP has for incremental readers: okrsync orders by (cursor, primary key).
        conn.execute("CREATE INDEX order_lines_write_date ON order_lines (write_date, id)")
        conn.execute("VACUUM ANALYZE order_lines")


def update_one_percent(conninfo: str) -> int:
    """Change every 100th line (quantity +1, every 7th of those cancelled), ``write_date = now()``."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(
            """
            UPDATE order_lines
               SET quantity = quantity + 1,
                   amount = ((quantity + 1) * unit_price)::numeric(12,2),
                   state = CASE WHEN id % 700 = 0 THEN 'cancel' ELSE state END,
                   write_date = now() AT TIME ZONE 'UTC'
             WHERE id % 100 = 0
            """
        )
        n = cur.rowcount
        conn.execute("ANALYZE order_lines")
    return n


def table_bytes(conninfo: str, pattern: str = "%") -> dict[str, int]:
    """Total size (table + indexes + TOAST) of the user tables whose name matches ``pattern``."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname LIKE %s ORDER BY 2 DESC",
            [pattern],
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


# ---- key results -----------------------------------------------------------------------------------

METRICS = ("revenue", "lines", "avg_line_value", "cancel_rate")
_QUARTERS = {
    "Q1": (date(YEAR, 1, 1), date(YEAR, 3, 31)),
    "Q2": (date(YEAR, 4, 1), date(YEAR, 6, 30)),
    "Q3": (date(YEAR, 7, 1), date(YEAR, 9, 30)),
    "Q4": (date(YEAR, 10, 1), date(YEAR, 12, 31)),
}
_OTHER = {
    "": (date(YEAR, 1, 1), date(YEAR, 12, 31)),
    "H1": (date(YEAR, 1, 1), date(YEAR, 6, 30)),
    "H2": (date(YEAR, 7, 1), date(YEAR, 12, 31)),
}


@dataclass(frozen=True)
class KrPlan:
    """One key result of the benchmark and what it means, independently of okrsync."""

    id: str
    metric: str
    region: str | None
    period: str  # okrsync period label: 2025, 2025-H1, 2025-Q3
    first_day: date
    last_day: date  # inclusive


def _label(suffix: str) -> str:
    return f"{YEAR}-{suffix}" if suffix else str(YEAR)


def plan_krs(n: int) -> list[KrPlan]:
    """``n`` KRs: every metric company-wide for the year first, then every metric × (company, each
    region) × quarter, then halves and the year per region; cycling (new ids) beyond 168."""
    combos: list[tuple[str, str | None, str]] = [(m, None, "") for m in METRICS]
    for q in _QUARTERS:
        for region in (None, *REGIONS):
            combos += [(m, region, q) for m in METRICS]
    for half in ("H1", "H2"):
        for region in (None, *REGIONS):
            combos += [(m, region, half) for m in METRICS]
    combos += [(m, r, "") for r in REGIONS for m in METRICS]
    bounds = _QUARTERS | _OTHER
    out = []
    for i in range(n):
        metric, region, suffix = combos[i % len(combos)]
        first, last = bounds[suffix]
        kr_id = f"KR-{i + 1:04d}-{metric}-{region or 'ALL'}-{_label(suffix)}"
        out.append(KrPlan(kr_id, metric, region, _label(suffix), first, last))
    return out


def drill_kr() -> KrPlan:
    """The drill phase's KR: every line of the year (1,000,000 contributing records at 1M rows)."""
    first, last = _OTHER[""]
    return KrPlan(f"KR-DRILL-gross-ALL-{YEAR}", "gross", None, str(YEAR), first, last)


def _kr_entry(k: KrPlan) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": k.id,
        "title": f"{k.metric} {k.region or 'all regions'} {k.period}",
        "metric": k.metric,
        "period": k.period,
    }
    if k.metric == "cancel_rate":
        entry |= {"baseline": "20%", "target": "5%", "direction": "decrease"}
    else:
        entry |= {"baseline": 0, "target": 1_000_000_000}
    if k.region:
        entry["dimensions"] = {"region": k.region}
    return entry


def project_document(krs: list[KrPlan], batch_size: int) -> dict[str, Any]:
    """The okrsync project file (as data) over the generated table."""
    booked = {"field": "state", "op": "in", "value": ["confirmed", "done"]}
    common = {
        "stream": STREAM,
        "time_field": "order_date",
        "window": "period_to_date",
        "dimensions": ["region"],
    }
    metrics: dict[str, Any] = {
        "revenue": {**common, "measure": "sum", "field": "amount", "filter": booked, "unit": "EUR"},
        "gross": {**common, "measure": "sum", "field": "amount", "unit": "EUR"},  # the drill phase's KR
        "lines": {**common, "measure": "count", "filter": booked},
        "avg_line_value": {**common, "measure": "avg", "field": "amount", "filter": booked, "unit": "EUR"},
        "cancelled_lines": {
            **common,
            "measure": "count",
            "filter": {"field": "state", "op": "=", "value": "cancel"},
        },
        "all_lines": {**common, "measure": "count"},
        "cancel_rate": {
            "measure": "ratio",
            "numerator": "cancelled_lines",
            "denominator": "all_lines",
            "unit": "percent",
        },
    }
    by_metric: dict[str, list[KrPlan]] = {}
    for k in krs:
        by_metric.setdefault(k.metric, []).append(k)
    objectives = [
        {"id": f"O-{metric}", "title": f"Move {metric}", "key_results": [_kr_entry(k) for k in items]}
        for metric, items in by_metric.items()
    ]
    return {
        "version": 1,
        "settings": {"timezone": "UTC", "default_period": f"{YEAR}-Q4", "store_url_env": STORE_URL_ENV},
        "sources": {SOURCE: {"kind": "sql", "url_env": SOURCE_URL_ENV}},
        "streams": {
            STREAM: {
                "source": SOURCE,
                "table": TABLE,
                "primary_key": "id",
                "cursor": "write_date",
                "batch_size": batch_size,
            }
        },
        "metrics": metrics,
        "objectives": objectives,
    }


def write_project(
    directory: Path, krs: list[KrPlan], batch_size: int, source_url: str, store_url: str
) -> Path:
    """Write ``okrsync.yaml`` and point the environment variables it names at the two databases."""
    path = directory / "okrsync.yaml"
    path.write_text(yaml.safe_dump(project_document(krs, batch_size), sort_keys=False))
    os.environ[SOURCE_URL_ENV] = source_url
    os.environ[STORE_URL_ENV] = store_url
    return path
