"""What a definition change would do to stored key results, and applying it (``okrsync plan``).

For each KR whose definition in the project file differs from the one registered in the store
(:mod:`okr_store.definitions`), :func:`compare` evaluates both definitions on the *same* snapshot and
as-of time (those of the KR's current value), lists the records entering, leaving or changing their
contribution (as ``diff`` does between two values), and recomputes every stored value of the KR under
the new definition at that value's own snapshot and as-of time, to show which past values would change.
Nothing is written. :func:`apply` registers the new definitions, audits each change with its reason in
the hash-chained audit log and, when asked, records the recomputed past values as *restatements*: new
rows that name the value they restate (``restated_from``); the originals stay as they were.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa

from metrics.definition import KrDefinition
from metrics.evaluate import Evaluation, StreamView, evaluate
from okr_store import current, definitions
from okr_store import models as m
from okr_store.lease import Fence
from okr_store.lineage import definition_frame, version_at
from okr_store.queries import StoredValue, definition_body
from okr_store.records import utcnow
from okr_store.store import Store, ValueRecord
from okrsync.errors import MetricError

Kind = Literal["entering", "leaving", "changed"]


@dataclass(frozen=True)
class Moved:
    """A record whose contribution differs between the two definitions on the same snapshot."""

    kind: Kind
    stream: str
    record_id: str
    before: Decimal | None  # its contribution under the registered definition (None: not counted)
    after: Decimal | None  # under the new one
    fields: dict[str, Any]  # the record's fields at the snapshot, as stored (sensitive ones sealed)

    @property
    def delta(self) -> Decimal:
        return (self.after or Decimal(0)) - (self.before or Decimal(0))


@dataclass(frozen=True)
class PastValue:
    """A stored value of the KR, and what the new definition gives at its own snapshot and as-of."""

    value: StoredValue
    new: Evaluation | None  # None: a stream the new definition reads was not synced at that snapshot
    moved: bool | None = None  # set on a copy whose values a role may not see (okrsync.plan.as_seen)

    @property
    def changes(self) -> bool:
        if self.moved is not None:
            return self.moved
        return self.new is not None and (self.new.value, self.new.reason) != (self.value.value,
                                                                              self.value.reason)


@dataclass(frozen=True)
class KrChange:
    kr_id: str
    old: KrDefinition | None  # the registered definition (None: its body is missing from the store)
    new: KrDefinition
    changed: tuple[str, ...]  # what differs: "metric.filter", "dimensions.region", "period.end", …
    as_of: datetime
    snapshot: dict[str, int | None]
    before: Evaluation | None
    after: Evaluation
    summary: dict[str, tuple[int, Decimal]]  # kind → (records, contribution delta)
    records: list[Moved]  # the largest moves first, up to the limit asked
    total_moved: int
    past: list[PastValue] = field(default_factory=list)  # in as-of order
    moves: bool | None = None  # set on a copy whose values a role may not see (okrsync.plan.as_seen)

    @property
    def delta(self) -> Decimal | None:
        if self.before is None or self.before.value is None or self.after.value is None:
            return None
        return self.after.value - self.before.value

    @property
    def value_changes(self) -> bool:
        """Whether any value changes: the one on the current snapshot, or a stored past one."""
        if self.moves is not None:
            return self.moves
        now = self.before is None or (self.before.value, self.before.reason) != (self.after.value,
                                                                                 self.after.reason)
        return now or any(p.changes for p in self.past)


@dataclass
class Plan:
    changes: list[KrChange]  # every KR whose definition differs from the registered one
    new: list[str]  # in the project file, with no registered definition yet (a run registers them)
    retired: list[str]  # registered and active, no longer in the project file

    @property
    def affected(self) -> list[KrChange]:
        """The KRs whose values change (now or in the past)."""
        return [c for c in self.changes if c.value_changes]

    @property
    def same_values(self) -> list[KrChange]:
        """Definition changed, every value the same (a description, a unit, an equivalent filter)."""
        return [c for c in self.changes if not c.value_changes]


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """The paths where two definitions' JSON differ, two levels deep (``metric.filter``)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict) and path.count(".") < 1:
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += differences(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return out
    return [path or "definition"]


def _views(store: Store, streams: Sequence[str], snapshot: Mapping[str, int | None]) -> dict[str, StreamView]:
    out = {}
    for s in streams:
        found = store.view(s, snapshot.get(s))
        if found is not None:
            out[s] = StreamView(s, found[0], found[1].schema)
    return out


def _evaluate(
    store: Store, defs: Sequence[KrDefinition], snapshot: Mapping[str, int | None], as_of: datetime
) -> dict[str, Evaluation]:
    """Evaluate the definitions whose streams the snapshot holds (one query per stream)."""
    views = _views(store, sorted({s for d in defs for s in d.streams}), snapshot)
    ok = [d for d in defs if all(s in views and snapshot.get(s) is not None for s in d.streams)]
    if not ok:
        return {}
    with store.engine.connect() as conn:
        return evaluate(conn, views, ok, as_of)


def _dec(v: Any) -> Decimal | None:
    import pandas as pd

    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v if isinstance(v, Decimal) else Decimal(str(v))


def moved_records(
    store: Store,
    old: KrDefinition | None,
    new: KrDefinition,
    snapshot: Mapping[str, int | None],
    as_of: datetime,
    limit: int,
) -> tuple[dict[str, tuple[int, Decimal]], list[Moved], int]:
    """Records entering, leaving or changing contribution between two definitions on one snapshot:
    (kind → (count, contribution delta), the ``limit`` largest moves, how many moved in all)."""
    a = definition_frame(store, old, snapshot, as_of) if old is not None else None
    b = definition_frame(store, new, snapshot, as_of)
    if a is None:
        a = b.iloc[0:0]
    merged = a.merge(b, on=["stream", "record_id"], how="outer", suffixes=("_a", "_b"), indicator=True)
    kinds = merged["_merge"].map({"left_only": "leaving", "right_only": "entering", "both": "changed"})
    moved = (
        (kinds != "changed")
        | (merged["contribution_a"] != merged["contribution_b"])
        | (merged["denominator_contribution_a"] != merged["denominator_contribution_b"])
    )
    merged = merged.assign(kind=kinds)[moved]
    rows = [
        (str(r.kind), str(r.stream), str(r.record_id), _dec(r.contribution_a), _dec(r.contribution_b))
        for r in merged.itertuples()
    ]
    def delta(r: tuple[str, str, str, Decimal | None, Decimal | None]) -> Decimal:
        return (r[4] or Decimal(0)) - (r[3] or Decimal(0))

    summary: dict[str, tuple[int, Decimal]] = {}
    for kind in ("entering", "leaving", "changed"):
        part = [r for r in rows if r[0] == kind]
        summary[kind] = (len(part), sum((delta(r) for r in part), Decimal(0)))
    rows.sort(key=lambda r: (-abs(delta(r)), r[1], r[2]))
    shown = rows[:limit]
    by_stream: dict[str, list[str]] = defaultdict(list)
    for r in shown:
        by_stream[r[1]].append(r[2])
    with store.engine.connect() as conn:
        found = {s: version_at(conn, store, s, snapshot.get(s), ids) for s, ids in by_stream.items()}
    records = [Moved(k, s, rid, x, y, found[s].get(rid, {})) for k, s, rid, x, y in shown]  # type: ignore[arg-type]
    return summary, records, len(rows)


def _current_values(conn: sa.Connection, kr_ids: list[str]) -> dict[str, StoredValue]:
    k, v = m.key_result.c, m.kr_value.c
    q = sa.select(m.kr_value).join(m.key_result, k.last_value_id == v.id).where(k.id.in_(kr_ids))
    return {r.kr_id: StoredValue.of(r) for r in conn.execute(q)}


def _live_values(conn: sa.Connection, kr_ids: list[str]) -> dict[str, list[StoredValue]]:
    """Each KR's stored values that no restatement replaced, in as-of order."""
    v = m.kr_value.c
    replaced = sa.select(v.restated_from).where(v.restated_from.is_not(None))
    q = sa.select(m.kr_value).where(v.kr_id.in_(kr_ids), v.id.not_in(replaced))
    q = q.order_by(*current.as_of_order())
    out: dict[str, list[StoredValue]] = defaultdict(list)
    for r in conn.execute(q):
        out[r.kr_id].append(StoredValue.of(r))
    return out


def _past(store: Store, defs: Mapping[str, KrDefinition], values: Mapping[str, list[StoredValue]]
          ) -> dict[str, list[PastValue]]:
    """Every stored value recomputed under the new definition at its own snapshot and as-of time:
    one evaluation per (snapshot, as-of), i.e. per past run, for all the KRs it computed."""
    groups: dict[tuple[datetime, str], list[StoredValue]] = defaultdict(list)
    for vs in values.values():
        for v in vs:
            groups[(v.as_of, json.dumps(v.snapshot, sort_keys=True))].append(v)
    results: dict[int, Evaluation | None] = {}
    for (as_of, snap), vs in groups.items():
        found = _evaluate(store, [defs[v.kr_id] for v in vs], json.loads(snap), as_of)
        results.update({v.id: found.get(v.kr_id) for v in vs})
    return {kr: [PastValue(v, results[v.id]) for v in vs] for kr, vs in values.items()}


def check_fields(store: Store, defs: Sequence[KrDefinition]) -> None:
    """A :class:`MetricError` naming the first field a definition reads that its stream's stored
    records do not have (before anything is evaluated)."""
    for d in defs:
        for metric in d.parts.values():
            tables = store.streams.tables(metric.stream)
            if tables is None:
                continue  # never synced: nothing to compare on
            missing = sorted(metric.fields_used() - set(tables.schema.names))
            if missing:
                raise MetricError(
                    f"key result {d.kr_id!r}, metric {metric.name!r}: field {missing[0]!r} is not in "
                    f"stream {metric.stream!r} (it has {', '.join(tables.schema.names)})",
                    hint="fix the metric, or add the field to the stream and run `okrsync run` first",
                )


def compare(store: Store, defs: Mapping[str, KrDefinition], now: datetime, *, limit: int = 20) -> Plan:
    """The plan for the project's definitions ``defs`` (KR id → definition) against the store."""
    with store.engine.connect() as conn:
        registered = definitions.registered(conn)
        active = set(conn.execute(sa.select(m.key_result.c.id).where(m.key_result.c.active)).scalars())
        changed = [k for k, d in defs.items() if registered.get(k) is not None and registered[k] != d.hash]
        olds: dict[str, KrDefinition | None] = {}
        for k in changed:
            try:
                olds[k] = KrDefinition.from_json(definition_body(conn, registered[k]))  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a body lost from the store: compare with nothing
                olds[k] = None
        currents = _current_values(conn, changed)
        live = _live_values(conn, changed)
    check_fields(store, [defs[k] for k in changed])
    latest = store.snapshot({s for k in changed for s in defs[k].streams})
    past = _past(store, {k: defs[k] for k in changed}, live)
    out = []
    for k in changed:
        new, old, cur = defs[k], olds[k], currents.get(k)
        as_of = cur.as_of if cur is not None else now
        snapshot = {**latest, **(cur.snapshot if cur is not None else {})}
        streams = sorted(set(new.streams) | set(old.streams if old else []))
        snapshot = {s: snapshot.get(s) for s in streams}
        after = _evaluate(store, [new], snapshot, as_of).get(k) or Evaluation(None, "no records to evaluate "
                                                                              "at this snapshot", 0, {})
        before = _evaluate(store, [old], snapshot, as_of).get(k) if old is not None else None
        summary, records, total = moved_records(store, old, new, snapshot, as_of, limit)
        what = tuple(differences(json.loads(old.canonical_json()), json.loads(new.canonical_json()))) \
            if old is not None else ("definition",)
        out.append(KrChange(k, old, new, what, as_of, snapshot, before, after, summary, records, total,
                            past.get(k, [])))
    new_krs = [k for k in defs if registered.get(k) is None]
    retired = sorted(k for k in active if k not in defs and registered.get(k) is not None)
    return Plan(out, new_krs, retired)


@dataclass(frozen=True)
class Restatement:
    """A past value recomputed under the new definition, ready to be recorded next to it."""

    restates: int  # the value id
    as_of: datetime
    record: ValueRecord


def apply(
    store: Store,
    defs: Sequence[KrDefinition],
    *,
    reason: str,
    actor: str,
    restatements: Sequence[Restatement] = (),
    fence: Fence | None = None,
) -> dict[str, str | None]:
    """Register ``defs``, audit each change with ``reason``, record ``restatements`` — all in one
    transaction (nothing is written if any of it fails). Returns KR → the definition registered before."""
    before: dict[str, str | None] = {}
    with store.engine.begin() as conn:
        if fence is not None:
            fence.check(conn)
        for d in defs:
            definitions.keep(conn, d.kr_id, d.hash, d.canonical_json())
            before[d.kr_id] = definitions.register(conn, d.kr_id, d.hash, actor=actor,
                                                   action=definitions.APPLIED, reason=reason)
        now = utcnow()
        for r in restatements:
            v = r.record
            vid = conn.execute(
                m.kr_value.insert().values(
                    kr_id=v.kr_id, run_id=fence.run_id if fence else "restate", flow_run_id=None,
                    value=None if v.value is None else str(v.value), reason=v.reason, records=v.records,
                    baseline=str(v.baseline), target=str(v.target),
                    progress_raw=None if v.progress_raw is None else str(v.progress_raw),
                    progress=None if v.progress is None else str(v.progress), expected=str(v.expected),
                    status=v.status, as_of=r.as_of, computed_at=now, definition_hash=v.definition_hash,
                    snapshot=json.dumps(dict(v.snapshot), sort_keys=True), restated_from=r.restates,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            current.promote(conn, v.kr_id, int(vid), r.as_of)
    return before
