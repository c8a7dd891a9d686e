"""The full sync against its peers (#15, goal 1), same table, same PostgreSQL, same run.

* **okrsync**: ``pipeline.sync_stream`` of the stream into a fresh store (as the ``full sync`` phase).
* **dlt** ``sql_table`` with the ``pyarrow`` and the ``connectorx`` backend, loaded into PostgreSQL
  (``write_disposition="replace"``, its own dataset in the store database). dlt keeps no versions and
  computes no hashes; it is the fastest general extractor/loader people compare us with.
* **COPY floor**: ``COPY (SELECT …) TO STDOUT`` piped into ``COPY … FROM STDIN`` (no parsing at all).

Each runs under :func:`bench.core.peak_rss` (the kernel's high-water mark, reset per phase). The rows
are ``okrsync ÷ best dlt`` and ``okrsync ÷ COPY floor`` (cost ratios: below 1 okrsync is faster).
dlt and connectorx come from the ``bench`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from bench.core import Row, peak_rss, timed
from bench.data import TABLE


def dlt_full_sync(src_sa_url: str, dst_conninfo: str, backend: str, work_dir: Path, chunk_size: int) -> int:
    """dlt's ``sql_table`` of the bench table into PostgreSQL with ``backend``; rows loaded."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    dataset = f"dlt_{backend}"
    credentials = src_sa_url.replace("postgresql+psycopg://", "postgresql://")
    source = sql_table(credentials=credentials, table=TABLE, backend=backend,  # type: ignore[arg-type]
                       chunk_size=chunk_size, reflection_level="full_with_precision")
    pipe = dlt.pipeline(pipeline_name=f"okrsync_bench_{backend}", pipelines_dir=str(work_dir / "dlt"),
                        destination=dlt.destinations.postgres(credentials=_with_password(dst_conninfo)),
                        dataset_name=dataset)
    pipe.run(source, write_disposition="replace")
    with psycopg.connect(dst_conninfo) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{dataset}"."{TABLE}"').fetchone()  # noqa: S608 - ours
    return int(row[0]) if row else 0


def dlt_incremental_merge(src_sa_url: str, dst_conninfo: str, work_dir: Path, chunk_size: int,
                          backend: str = "pyarrow") -> int:
    """dlt's incremental merge of the bench table into PostgreSQL (the peer of an okrsync sync without
    delete detection, #15 goal 2): ``sql_table`` with ``incremental("write_date")``, primary key ``id``,
    ``write_disposition="merge"``; the pipeline keeps its last ``write_date`` between calls (the first
    call loads everything). Returns the rows it extracted."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    credentials = src_sa_url.replace("postgresql+psycopg://", "postgresql://")
    source = sql_table(credentials=credentials, table=TABLE, backend=backend,  # type: ignore[arg-type]
                       chunk_size=chunk_size, reflection_level="full_with_precision",
                       incremental=dlt.sources.incremental("write_date"), primary_key="id",
                       write_disposition="merge")
    pipe = dlt.pipeline(pipeline_name=f"okrsync_bench_merge_{backend}", pipelines_dir=str(work_dir / "dlt"),
                        destination=dlt.destinations.postgres(credentials=_with_password(dst_conninfo)),
                        dataset_name=f"dlt_merge_{backend}")
    pipe.run(source)
    trace = pipe.last_trace
    info = trace.last_normalize_info if trace is not None else None
    return int(info.row_counts.get(TABLE, 0)) if info is not None else 0


def _with_password(url: str) -> str:
    """dlt's PostgreSQL credentials insist on a password: a server that trusts local connections
    ignores the placeholder given when the URL has none."""
    import sqlalchemy as sa

    u = sa.make_url(url)
    return u.render_as_string(hide_password=False) if u.password else \
        u.set(password="unused").render_as_string(hide_password=False)


def compare(okrsync_s: float, okrsync_mb: float, rows: int, src_sa_url: str, dst_conninfo: str,
            floor: tuple[float, float], work_dir: Path,
            chunk_size: int) -> tuple[list[Row], dict[str, object]]:
    """Run dlt's two fast backends; the result rows against them and the COPY floor."""
    floor_s, floor_mb = floor
    peers: dict[str, tuple[float, float]] = {}
    checks: dict[str, object] = {}
    for backend in ("pyarrow", "connectorx"):
        print(f"· dlt sql_table backend={backend} → PostgreSQL …", flush=True)
        with peak_rss() as mem:
            loaded, seconds = timed(lambda b=backend: dlt_full_sync(src_sa_url, dst_conninfo, b, work_dir,
                                                                     chunk_size))
        peers[f"dlt {backend} → PostgreSQL"] = (seconds, mem.peak_mb)
        checks[backend] = loaded
        print(f"·   {seconds:.1f} s, peak RSS {mem.peak_mb:.0f} MB, {loaded:,} rows", flush=True)
    best = min(peers, key=lambda k: peers[k][0])
    out = [Row("full sync vs peers", "seconds", okrsync_s, "s", name, s, note=f"peak RSS {mb:.0f} MB")
           for name, (s, mb) in peers.items()]
    out.append(Row("full sync vs peers", "seconds", okrsync_s, "s", "COPY floor (TO STDOUT | FROM STDIN)",
                   floor_s, note=f"peak RSS {floor_mb:.0f} MB"))
    out.append(Row("full sync vs peers", "peak RSS", okrsync_mb, "MB", best, peers[best][1]))
    summary = {
        "rows": rows,
        "okrsync_seconds": round(okrsync_s, 2), "okrsync_peak_rss_mb": round(okrsync_mb),
        "peers": {k: {"seconds": round(s, 2), "peak_rss_mb": round(mb)} for k, (s, mb) in peers.items()},
        "copy_floor_seconds": round(floor_s, 2),
        "okrsync_over_best_dlt": round(okrsync_s / peers[best][0], 2),
        "okrsync_over_copy_floor": round(okrsync_s / floor_s, 2),
        "dlt_rows_loaded": checks,
    }
    print(f"· okrsync ÷ best dlt ({best}): {summary['okrsync_over_best_dlt']}×; okrsync ÷ COPY floor: "
          f"{summary['okrsync_over_copy_floor']}×", flush=True)
    return out, summary
