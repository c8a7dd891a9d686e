"""Compute against one hand-written grouped scan (issue 15, goal 4), and the grouped evaluation against
the per-KR aggregates it replaced, on the same store snapshot in the same run.

``compute.compute_values`` (all KRs, values recorded, first drill positions stored) is compared with
:func:`bench.baselines.grouped_kr_values`: one ``GROUP BY region, quarter`` over the source table, rolled
up to every KR's value (the target is ≤ 1.5×). ``metrics.evaluate.evaluate`` alone is timed both ways
(``grouped=True``, the default, and ``grouped=False``, one ``sum(CASE WHEN …)`` per KR as before) on the
store's views, and every value of both ways and of the baseline is checked against the per-KR SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from bench import baselines
from bench.core import Results, Row, median_of
from bench.data import AS_OF, KrPlan
from metrics.evaluate import Evaluation, StreamView, evaluate
from okr_store.store import Store
from okrsync.project import Project
from okrsync.project_bindings import kr_definitions

REPEATS = 3


def _views(project: Project, store: Store) -> dict[str, StreamView]:
    defs = kr_definitions(project)
    snapshot = store.snapshot({s for d in defs.values() for s in d.streams})
    views = {}
    for stream, version in snapshot.items():
        found = store.view(stream, version)
        if found is not None:
            views[stream] = StreamView(stream, found[0], found[1].schema)
    return views


def _mismatches(
    label: str, got: Mapping[str, Decimal | None], want: Mapping[str, Decimal | None]
) -> list[str]:
    return [f"{label} {k}: {got.get(k, 'missing')} ≠ SQL {v}" for k, v in want.items()
            if k not in got or got[k] != v or str(got[k]) != str(v)]


def run(res: Results, project: Project, store: Store, src: str, krs: list[KrPlan], compute_s: float,
        expected: Mapping[str, Decimal | None], again: Callable[[], float] | None = None) -> None:
    """Add the rows: compute vs the grouped scan, grouped evaluate vs per-KR evaluate (``compute_s``:
    the compute phase's seconds; ``expected``: the per-KR SQL values; ``again``: runs the compute once
    more on the same records and returns its seconds)."""
    grouped_src, base_s, _ = median_of(REPEATS, lambda: baselines.grouped_kr_values(src, krs))
    views = _views(project, store)
    defs = list(kr_definitions(project).values())

    def values(grouped: bool) -> dict[str, Evaluation]:
        with store.engine.connect() as conn:
            return evaluate(conn, views, defs, AS_OF, grouped=grouped)

    new, new_s, _ = median_of(REPEATS, lambda: values(True))
    old, old_s, _ = median_of(REPEATS, lambda: values(False))
    bad = _mismatches("grouped scan", grouped_src, expected)
    bad += _mismatches("evaluate(grouped)", {k: e.value for k, e in new.items()}, expected)
    bad += _mismatches("evaluate(per-KR)", {k: e.value for k, e in old.items()}, expected)
    same = all(new[d.kr_id] == old[d.kr_id] for d in defs)
    res.check("grouped scan, grouped and per-KR evaluate = per-KR SQL (Decimal ==, same text)", not bad,
              f"{len(expected)} KRs" + (f"; {'; '.join(bad[:3])}" if bad else ""))
    res.check("grouped evaluate = per-KR evaluate (value, reason, records, parts)", same, f"{len(defs)} KRs")
    n = len(krs)
    res.add(Row("compute", f"all {n} KRs (values recorded, drill positions stored)", compute_s, "s",
                "one GROUP BY region, quarter on source, rolled up", base_s,
                note=f"target ≤ 1.5×; baseline median of {REPEATS}"))
    res.add(Row("compute", f"evaluate {len(defs)} KRs, grouped (median of {REPEATS})", new_s, "s",
                "evaluate, one aggregate per KR (before)", old_s, note="same store snapshot"))
    res.add(Row("compute", f"evaluate {len(defs)} KRs, grouped (median of {REPEATS})", new_s, "s",
                "one GROUP BY region, quarter on source, rolled up", base_s, note="without recording"))
    if again is not None:
        res.add(Row("compute", f"all {n} KRs again, nothing changed (drill positions copied)", again(), "s",
                    "one GROUP BY region, quarter on source, rolled up", base_s,
                    note="a second run on the same records: each value copies its KR's previous positions"))
