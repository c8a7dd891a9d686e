"""``okrsync history``, ``status`` and ``run --as-of`` after a back-fill: the console script in a
subprocess over a store the test writes (no Prefect API, no source needed)."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from tests.okrsync.conftest import Cli

PROJECT = textwrap.dedent("""\
    version: 1
    settings: {timezone: UTC, default_period: 2026-Q4}
    sources:
      erp: {kind: sql, url: "sqlite:///erp.db"}
    streams:
      orders: {source: erp, table: orders, primary_key: id}
    metrics:
      revenue: {stream: orders, measure: sum, field: untaxed_amount, time_field: order_date}
    objectives:
      - id: O1
        title: Grow
        key_results:
          - {id: KR1, title: Revenue, metric: revenue, target: 1000}
    """)
CURRENT = datetime(2026, 11, 20, 18, 0)
BACKFILL = datetime(2026, 11, 1, 12, 0)


def record(tmp_path: Path) -> tuple[int, int]:
    """A current run (900 as of Nov 20), then a back-fill (400 as of Nov 1): their value ids."""
    from flows.compute import register_okrs
    from okr_store.store import Store, ValueRecord
    from okrsync.project import load_project

    store = Store(f"sqlite:///{tmp_path / '.okrsync' / 'store.db'}")
    try:
        register_okrs(load_project(tmp_path / "okrsync.yaml"), store)
        ids = []
        for as_of, value in ((CURRENT, "900"), (BACKFILL, "400")):
            v = ValueRecord("KR1", Decimal(value), None, 1, Decimal(0), Decimal(1000), None, None, Decimal(0),
                            "on_track", "h" * 64, "{}", {})
            run_id = store.start_run(as_of, None)
            ids += store.record_values(run_id, None, as_of, [v], {})
            store.finish_run(run_id, "succeeded")
    finally:
        store.close()
    return ids[0], ids[1]


def test_a_backfill_shows_in_history_by_as_of_and_a_future_as_of_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "okrsync.yaml").write_text(PROJECT)
    current, backfill = record(tmp_path)
    wide = {"COLUMNS": "200"}

    r = cli("status", "--json", cwd=tmp_path)
    assert r.code == 0, r
    (kr,) = json.loads(r.out)["objectives"][0]["key_results"]
    assert (kr["value_id"], kr["value"], kr["as_of"]) == (current, "900", "2026-11-20T18:00:00Z"), kr

    r = cli("history", "KR1", "--json", cwd=tmp_path)
    assert r.code == 0, r
    values = json.loads(r.out)["values"]
    assert [(v["value_id"], v["as_of"]) for v in values] == [
        (backfill, "2026-11-01T12:00:00Z"), (current, "2026-11-20T18:00:00Z")]

    r = cli("history", "KR1", cwd=tmp_path, env=wide)
    assert r.code == 0, r
    assert re.search(r"#\s*[│┃]\s*as of\s*[│┃]\s*computed at", r.out), r
    rows = [line for line in r.out.splitlines() if re.match(rf"\W*({current}|{backfill})\s", line)]
    assert len(rows) == 2 and "2026-11-01 12:00" in rows[0] and "2026-11-20 18:00" in rows[1], r
    assert "▲" in rows[1], r  # 400 → 900 reads as a rise, not a drop

    r = cli("run", "--as-of", "2100-01-01", cwd=tmp_path)
    assert r.code == 2, r
    assert "Traceback" not in r.err, r
    text = " ".join(r.err.split())
    assert "2100-01-01 23:59Z is in the future" in text and "back-filling history" in text, r
    assert json.loads(cli("history", "KR1", "--json", cwd=tmp_path).out)["values"] == values  # nothing ran
