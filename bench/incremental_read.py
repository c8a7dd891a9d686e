"""The incremental read alone: ``SqlConnector.read`` after the full sync's watermark, against a plain
``SELECT … WHERE write_date >= w ORDER BY write_date, id`` over a server-side cursor (the floor for any
reader of the changed rows through the ``(write_date, id)`` index), in the same run.

Also timed, for the record: the same plain cursor with the condition okrsync sent before #15, the row
comparison ``(write_date, id) > (w, k)`` spelt with OR alone, which PostgreSQL served by walking the whole
index. The watermark is the full sync's, without its ``reread_from`` (the steady state: no transaction was
open at the source), so the read takes the ``(cursor, key) > (w, k)`` path of connectors/sql_range.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from bench.core import Results, Row, median_of
from bench.data import COLUMNS, SOURCE, STREAM, TABLE
from connectors.base import Watermark
from okrsync.project import Project

_COLS = ", ".join(COLUMNS)
_RANGE = f"SELECT {_COLS} FROM {TABLE} WHERE write_date >= %(w)s ORDER BY write_date, id"  # noqa: S608
_OR_ONLY = (f"SELECT {_COLS} FROM {TABLE} WHERE write_date > %(w)s OR (write_date = %(w)s AND id > %(k)s) "  # noqa: S608
            "ORDER BY write_date, id")


def _plain(conninfo: str, query: str, params: dict[str, Any], batch: int) -> int:
    rows = 0
    with psycopg.connect(conninfo) as conn, conn.cursor(name="bench_incremental") as cur:
        cur.itersize = batch
        cur.execute(query, params)
        while chunk := cur.fetchmany(batch):
            rows += len(chunk)
    return rows


def run(project: Project, watermark_json: str | None, src_conninfo: str, changed: int, res: Results,
        repeats: int = 3) -> None:
    """Time the three reads (median of ``repeats`` each) and check that okrsync pulls the changed rows."""
    saved = Watermark.from_json(watermark_json)
    assert saved is not None, "the full sync left no watermark"
    since = Watermark(saved.cursor, saved.key)
    stream = project.streams[STREAM]
    params = {"w": datetime.fromisoformat(str(saved.cursor)), "k": int(saved.key[0])}
    connector = project.connector(SOURCE)
    try:
        pulled, okr_s, _ = median_of(repeats, lambda: sum(len(f) for f in connector.read(stream, since)))
    finally:
        connector.close()
    floor, base_s, _ = median_of(repeats, lambda: _plain(src_conninfo, _RANGE, params, stream.batch_size))
    old, old_s, _ = median_of(repeats, lambda: _plain(src_conninfo, _OR_ONLY, params, stream.batch_size))
    res.check("incremental read pulls exactly the changed rows", pulled == changed == old,
              f"okrsync {pulled:,}, OR-only condition {old:,}, changed {changed:,}")
    base = "SELECT … WHERE write_date >= w (server-side cursor)"
    res.add(Row("incremental read", f"{pulled:,} changed rows, SqlConnector.read", okr_s, "s", base, base_s,
                note=f"median of {repeats}; DataFrames built; the plain SELECT: {floor:,} rows (ties at w)"))
    res.add(Row("incremental read", "plain cursor, (write_date, id) > (w, k) with OR only", old_s, "s", base,
                base_s, note="the condition before #15: walks the whole (write_date, id) index"))
