"""Drill-down and diff: the records behind a stored value, and why a KR moved between two values.

Both re-evaluate the value's own stored definition against the record versions visible at the value's
own snapshot, so they answer for the past exactly as the value was computed, whatever the source (or
the project file) says today.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from metrics.definition import KrDefinition
from metrics.evaluate import ContributionPart, StreamView, contribution_parts
from okr_store.drill_query import SORTS, DrillQuery, drill_query, field_conditions, id_condition
from okr_store.queries import StoredValue, definition_body, stream_sources
from okr_store.ranking import ranked_part
from okr_store.records import FROM, HASH, RID, TO, visible
from okr_store.store import Store
from okrsync.schema import StreamSchema

if TYPE_CHECKING:
    import pandas as pd  # imported by the functions that build frames: a drill's page needs none

INTERNAL = {RID, FROM, TO, HASH}


@dataclass(frozen=True)
class DrillRecord:
    source: str
    stream: str
    record_id: str
    contribution: Decimal
    denominator_contribution: Decimal | None
    role: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Drill:
    value: StoredValue
    definition: KrDefinition
    total: int
    contribution_sum: Decimal | None
    denominator_sum: Decimal | None
    records: list[DrillRecord]
    columns: dict[str, list[str]] = field(default_factory=dict)  # stream → its fields, in order


def _views(store: Store, d: KrDefinition, snapshot: Mapping[str, int | None]) -> dict[str, StreamView]:
    views: dict[str, StreamView] = {}
    for stream in d.streams:
        found = store.view(stream, snapshot.get(stream))
        if found is None:
            continue
        sub, tables = found
        views[stream] = StreamView(stream, sub, tables.schema)
    return views


def _dec(v: Any) -> Decimal:
    if v is None:
        return Decimal(0)
    return v if isinstance(v, Decimal) else Decimal(repr(v) if isinstance(v, float) else v)


def _parts(store: Store, v: StoredValue) -> tuple[KrDefinition, list[ContributionPart]]:
    with store.engine.connect() as conn:
        d = KrDefinition.from_json(definition_body(conn, v.definition_hash))
    views = _views(store, d, v.snapshot)
    if len(views) < len(d.streams):
        return d, []
    return d, contribution_parts(views, d, v.as_of)


def _keys(sub: sa.FromClause, ask: DrillQuery) -> list[Any]:
    """ORDER BY for a page: the sort key, then the record id so that pages never overlap."""
    rid = sub.c[RID]
    if ask.sort == "record":
        return [rid.desc() if ask.descending else rid]
    if ask.sort == "contribution":
        key = sub.c.contribution
        return [key.desc() if ask.descending else key.asc(), rid]
    if "sort_key" not in sub.c:
        return [rid]  # a stream without that field (a ratio over two streams)
    col = sub.c.sort_key
    return [(col.desc() if ask.descending else col.asc()).nulls_last(), rid]


def _matching(conn: sa.Connection, part: ContributionPart, ask: DrillQuery) -> sa.Subquery:
    """The part's contributions that pass the filters, with the sort field when the sort is a field.

    A contribution computed from its own record alone reads the fields in the same scan; a distinct
    count's (which depends on the records before it) is joined to them."""
    sub = part.select.subquery("contributions")
    t = part.view.table
    rid_cond = [] if ask.record_id is None else [id_condition(conn, sub.c[RID], ask.record_id)]
    if not ask.equals and ask.sort in SORTS:
        return sa.select(sub).where(*rid_cond).subquery("matching")
    sort_col = [t.c[ask.sort].label("sort_key")] if ask.sort not in SORTS and ask.sort in t.c else []
    if t in part.select.get_final_froms():  # row by row: filter and sort key in the same scan
        own = [] if ask.record_id is None else [id_condition(conn, t.c[RID], ask.record_id)]
        q = part.select.where(*own, *field_conditions(part.view, ask)).add_columns(*sort_col)
        return q.subquery("matching")
    q = (
        sa.select(sub, *sort_col)
        .select_from(sub.join(t, sub.c[RID] == t.c[RID]))
        .where(*rid_cond, *field_conditions(part.view, ask))
    )
    return q.subquery("matching")


def _totals(conn: sa.Connection, matching: sa.Subquery, sums: bool) -> tuple[int, Decimal, Decimal]:
    if not sums:
        n = conn.execute(sa.select(sa.func.count()).select_from(matching)).scalar_one()
        return int(n), Decimal(0), Decimal(0)
    c = matching.c
    n, s1, s2 = conn.execute(
        sa.select(sa.func.count(), sa.func.sum(c.contribution), sa.func.sum(c.denominator_contribution))
    ).one()
    return int(n), _dec(s1), _dec(s2)


def _page(
    conn: sa.Connection, part: ContributionPart, matching: sa.Subquery, ask: DrillQuery, limit: int,
    offset: int,
) -> list[Any]:
    """A page of contributions, then the fields of just those records (one query: the page is cut
    before the join, so PostgreSQL keeps a top-N heap instead of sorting every candidate)."""
    page = sa.select(matching).order_by(*_keys(matching, ask)).limit(limit).offset(offset).subquery("page")
    return list(conn.execute(_with_fields(part, page, ask)))


def _with_fields(part: ContributionPart, page: sa.Subquery, ask: DrillQuery) -> sa.Select[Any]:
    """The contributions of ``page`` with their records' fields, in the drill's order."""
    t = part.view.table
    names = part.view.schema.names
    return (
        sa.select(
            page.c[RID],
            page.c.contribution,
            page.c.denominator_contribution,
            page.c.role,
            *(t.c[n].label(f"f{i}") for i, n in enumerate(names)),
        )
        .join_from(page, t, page.c[RID] == t.c[RID])
        .order_by(*_keys(page, ask))
    )


def _records(part: ContributionPart, rows: list[Any], source: str) -> list[DrillRecord]:
    names, stream = part.view.schema.names, part.stream
    out = []
    for rid, contribution, den, role, *values in rows:  # an export makes one per record: kept lean
        out.append(DrillRecord(source, stream, rid, _dec(contribution), None if den is None else _dec(den),
                               role, dict(zip(names, values, strict=True))))
    return out


def _schemas(store: Store, d: KrDefinition) -> dict[str, StreamSchema]:
    found = {s: store.streams.tables(s) for s in d.streams}
    return {s: t.schema for s, t in found.items() if t is not None}


def drill(
    store: Store,
    v: StoredValue,
    *,
    limit: int = 50,
    offset: int = 0,
    sort: str = "contribution",
    descending: bool | None = None,
    equals: Mapping[str, str | Sequence[str]] | None = None,
    record_id: str | None = None,
    sums: bool = True,
) -> Drill:
    """One page of the records behind ``v``.

    ``sort``: ``contribution`` (largest first by default), ``record`` (record id) or a field of the
    value's stream(s) (ascending by default, empty values last); ``descending`` overrides the default
    direction. Ties are broken by record id, so pages are stable. ``equals`` keeps the records whose
    field equals the text (converted to the field's type: ``2026-01-05``, ``12.50``, ``true``), or any of
    several texts given for one field (``{"region": ["EMEA", "APAC"]}``, an IN); ``record_id``
    keeps the records whose id contains that text (case-sensitive). An unknown field or a text that
    does not convert is a :class:`ConfigError`. A ratio over two streams lists the numerator's records,
    then the denominator's.

    ``total`` counts the matching records; with ``sums`` their contributions are added up too (a full
    scan: skip it for a fast first page). Without filters or sums, ``total`` is the count recorded with
    the value, and the default first pages come from the positions stored when it was recorded."""
    d, parts = _parts(store, v)
    schemas = _schemas(store, d)
    ask = drill_query(schemas, sort, descending, equals, record_id)
    columns = {s: list(schema.names) for s, schema in schemas.items()}
    records: list[DrillRecord] = []
    with store.engine.connect() as conn:
        sources = stream_sources(conn)
        ranked = None
        if len(parts) == 1 and ask.default_order and not ask.filtered:
            ranked = ranked_part(
                conn, store, d, v.id, v.snapshot, v.as_of, records=v.records, limit=limit, offset=offset
            )
        if ranked is not None:
            plain = DrillQuery("contribution", True, {}, None)
            rows = _page(conn, ranked, sa.select(ranked.select.subquery()).subquery(), plain, limit, 0)
            records = _records(ranked, rows, sources.get(ranked.stream, ""))
        matching = [_matching(conn, p, ask) for p in parts]
        if len(parts) == 1 and not sums and not ask.filtered:
            totals = [(v.records, Decimal(0), Decimal(0))]  # counted when the value was computed
        else:
            totals = [_totals(conn, q, sums) for q in matching]
        skip, want = offset, (0 if ranked is not None else limit)
        for p, q, (n, _, _) in zip(parts, matching, totals, strict=True):
            if want <= 0:
                break
            if skip >= n:
                skip -= n
                continue
            page = _records(p, _page(conn, p, q, ask, want, skip), sources.get(p.stream, ""))
            records += page
            skip, want = 0, want - len(page)
    total = sum(t[0] for t in totals)
    csum = sum((t[1] for t in totals), Decimal(0)) if sums else None
    dsum = sum((t[2] for t in totals), Decimal(0)) if sums and d.ratio is not None else None
    return Drill(v, d, total, csum, dsum, records, columns)


def drill_pages(
    store: Store,
    v: StoredValue,
    *,
    sort: str = "contribution",
    descending: bool | None = None,
    equals: Mapping[str, str | Sequence[str]] | None = None,
    record_id: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    page: int = 2000,
) -> Iterator[list[DrillRecord]]:
    """Every record behind ``v`` that :func:`drill` would list (or ``limit`` of them from ``offset``),
    in the same order, ``page`` records at a time: one query per part of the value, read through a
    cursor (server-side on PostgreSQL) a page at a time, so memory stays flat whatever the count.

    Raises :class:`ConfigError` for a bad sort or filter before the first page is yielded."""
    d, parts = _parts(store, v)
    ask = drill_query(_schemas(store, d), sort, descending, equals, record_id)
    return _pages(store, parts, ask, limit, offset, page)


def _pages(
    store: Store, parts: list[ContributionPart], ask: DrillQuery, limit: int | None, offset: int, page: int
) -> Iterator[list[DrillRecord]]:
    skip, want = offset, limit
    with store.engine.connect() as conn:
        sources = stream_sources(conn)
        for p in parts:
            matching = _matching(conn, p, ask)
            result = conn.execution_options(yield_per=page).execute(_with_fields(p, matching, ask))
            for rows in result.partitions():
                if skip >= len(rows):
                    skip -= len(rows)
                    continue
                rows, skip = rows[skip:], 0
                if want is not None:
                    rows, want = rows[:want], want - min(want, len(rows))
                if rows:
                    yield _records(p, list(rows), sources.get(p.stream, ""))
                if want == 0:
                    result.close()
                    return


def contributions_frame(store: Store, v: StoredValue) -> tuple[KrDefinition, pd.DataFrame]:
    """Every contributing record of ``v``: stream, record_id, contribution, denominator_contribution."""
    d, parts = _parts(store, v)
    return d, _frame(store, parts)


def definition_frame(
    store: Store, d: KrDefinition, snapshot: Mapping[str, int | None], as_of: datetime
) -> pd.DataFrame:
    """Every record a definition counts at a snapshot and as-of time (any definition, stored or not:
    ``okrsync plan`` compares two on the same snapshot), as :func:`contributions_frame` lists them."""
    views = _views(store, d, snapshot)
    return _frame(store, contribution_parts(views, d, as_of) if len(views) == len(d.streams) else [])


def _frame(store: Store, parts: list[ContributionPart]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    with store.engine.connect() as conn:
        for p in parts:
            rows = conn.execute(p.select).all()
            frames.append(
                pd.DataFrame(
                    {
                        "stream": p.stream,
                        "record_id": [r[0] for r in rows],
                        "contribution": [_dec(r.contribution) for r in rows],
                        "denominator_contribution": [_dec(r.denominator_contribution) for r in rows],
                    }
                )
            )
    cols = ["stream", "record_id", "contribution", "denominator_contribution"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


@dataclass(frozen=True)
class Change:
    """One record whose contribution moved. ``why`` says how (``new record in the source``, ``changed``,
    ``now counts``, …); ``field_changes`` holds the fields whose value changed, as stored (a sensitive
    field's sealed text). The ``reason`` text is rendered from both, never stored: a view of the change
    that masks or opens ``field_changes`` (okrsync.access.diff_as) says the same in its reason."""

    kind: Literal["added", "removed", "changed"]
    stream: str
    record_id: str
    before: Decimal | None
    after: Decimal | None
    why: str
    field_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def delta(self) -> Decimal:
        return (self.after or Decimal(0)) - (self.before or Decimal(0))

    @property
    def reason(self) -> str:
        """``why``, then each changed field: ``changed: region EMEA → APAC, amount 10 → 12``."""
        if not self.field_changes:
            return self.why
        return f"{self.why}: " + ", ".join(f"{k} {a!s} → {b!s}" for k, (a, b) in self.field_changes.items())


@dataclass(frozen=True)
class Diff:
    before: StoredValue
    after: StoredValue
    definition_changed: bool
    summary: dict[str, tuple[int, Decimal]]  # kind → (records, contribution delta)
    changes: list[Change]
    total_changes: int


def version_at(
    conn: sa.Connection, store: Store, stream: str, sync_id: int | None, rids: list[str]
) -> dict[str, dict[str, Any]]:
    tables = store.streams.tables(stream)
    if tables is None or not rids:
        return {}
    rec = tables.records
    rows = conn.execute(sa.select(rec).where(rec.c[RID].in_(rids), visible(rec, sync_id))).mappings()
    return {r[RID]: {k: r[k] for k in tables.schema.names} for r in rows}


def _explain(
    kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """Why a record's contribution moved, from its versions at the two snapshots: how (``Change.why``)
    and the fields whose value changed (the values as stored: no text is made of them here)."""
    if old is None:
        return "new record in the source", {}
    if new is None:
        return "deleted in the source", {}
    changes = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
    if not changes:
        if kind == "changed":
            return "same record; the metric definition changed", {}
        moved = "now counts" if kind == "added" else "no longer counts"
        return f"{moved}: the period window moved", {}
    return {"added": "now counts", "removed": "no longer counts", "changed": "changed"}[kind], changes


def diff(store: Store, before: StoredValue, after: StoredValue, *, limit: int = 50) -> Diff:
    """What was added, removed or changed between two values of one KR, each change explained."""
    import pandas as pd

    _, a = contributions_frame(store, before)
    _, b = contributions_frame(store, after)
    merged = a.merge(b, on=["stream", "record_id"], how="outer", suffixes=("_a", "_b"), indicator=True)
    kinds = merged["_merge"].map({"left_only": "removed", "right_only": "added", "both": "changed"})
    moved = (
        (kinds != "changed")
        | (merged["contribution_a"] != merged["contribution_b"])
        | (merged["denominator_contribution_a"] != merged["denominator_contribution_b"])
    )
    merged = merged.assign(kind=kinds)[moved]
    summary: dict[str, tuple[int, Decimal]] = {}
    for kind in ("added", "removed", "changed"):
        part = merged[merged["kind"] == kind]
        delta = sum((_dec(x) for x in part["contribution_b"].fillna(0)), Decimal(0)) - sum(
            (_dec(x) for x in part["contribution_a"].fillna(0)), Decimal(0)
        )
        summary[kind] = (len(part), delta)
    shown = merged.assign(
        _abs=(
            merged["contribution_b"].fillna(0).map(_dec) - merged["contribution_a"].fillna(0).map(_dec)
        ).map(abs)
    )
    shown = shown.sort_values(["_abs", "record_id"], ascending=[False, True]).head(limit)
    changes: list[Change] = []
    with store.engine.connect() as conn:
        for stream, group in shown.groupby("stream", sort=False):
            rids = list(group["record_id"])
            old = version_at(conn, store, str(stream), before.snapshot.get(str(stream)), rids)
            new = version_at(conn, store, str(stream), after.snapshot.get(str(stream)), rids)
            for r in group.itertuples():
                why, fc = _explain(r.kind, old.get(r.record_id), new.get(r.record_id))
                changes.append(
                    Change(
                        r.kind,
                        str(stream),
                        r.record_id,
                        None if pd.isna(r.contribution_a) else _dec(r.contribution_a),
                        None if pd.isna(r.contribution_b) else _dec(r.contribution_b),
                        why,
                        fc,
                    )
                )
    changes.sort(key=lambda c: (-abs(c.delta), c.record_id))
    return Diff(before, after, before.definition_hash != after.definition_hash, summary, changes, len(merged))


def top_records(
    store: Store, d: KrDefinition, snapshot: Mapping[str, int | None], as_of: datetime, limit: int = 10
) -> list[DrillRecord]:
    """The records contributing most to ``d`` at ``snapshot`` and ``as_of``, largest first: the drill of
    a value not stored yet (a binding's preview)."""
    views = _views(store, d, snapshot)
    if len(views) < len(d.streams):
        return []
    ask = DrillQuery("contribution", True, {}, None)
    out: list[DrillRecord] = []
    with store.engine.connect() as conn:
        sources = stream_sources(conn)
        for p in contribution_parts(views, d, as_of):
            page = _page(conn, p, _matching(conn, p, ask), ask, limit, 0)
            out += _records(p, page, sources.get(p.stream, ""))
    return sorted(out, key=lambda r: (-r.contribution, r.record_id))[:limit]
