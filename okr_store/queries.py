"""Read paths: the objective tree with latest values, a KR's history, one stored value."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metrics.score import roll_up
from okr_store import models as m
from okr_store.closing import CloseState, close_states
from okr_store.current import as_of_order, counted, newest_first
from okrsync.errors import NotFound, close_matches


def _dec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


@dataclass(frozen=True)
class StoredValue:
    id: int
    kr_id: str
    value: Decimal | None
    reason: str | None
    records: int
    baseline: Decimal
    target: Decimal
    progress_raw: Decimal | None
    progress: Decimal | None
    expected: Decimal
    status: str
    as_of: datetime
    computed_at: datetime
    definition_hash: str
    snapshot: dict[str, int | None]
    run_id: str
    flow_run_id: str | None
    restated_from: int | None = None  # a restatement under a newer definition (okrsync plan --restate)

    @classmethod
    def of(cls, r: Any) -> StoredValue:
        return cls(
            r.id,
            r.kr_id,
            _dec(r.value),
            r.reason,
            r.records,
            Decimal(r.baseline),
            Decimal(r.target),
            _dec(r.progress_raw),
            _dec(r.progress),
            Decimal(r.expected),
            r.status,
            r.as_of,
            r.computed_at,
            r.definition_hash,
            json.loads(r.snapshot),
            r.run_id,
            r.flow_run_id,
            getattr(r, "restated_from", None),
        )


@dataclass
class KrStatus:
    id: str
    title: str
    owner: str | None
    metric: str
    period: str
    baseline: Decimal
    target: Decimal
    direction: str
    weight: Decimal
    unit: str | None
    streams: list[str]
    value: StoredValue | None
    held_reason: str | None
    held_since: datetime | None
    fresh_at: datetime | None  # oldest last successful sync among the streams it reads
    # What the last sync of each stream it reads warned about (records dated in the future, …)
    warnings: dict[str, str] = field(default_factory=dict)
    # Final, provisional or restated after close (okr_store.closing); None: the period never closes
    close: CloseState | None = None
    active: bool = True  # False: retired, or no longer in the project file (its history stays)


@dataclass
class ObjectiveStatus:
    id: str
    title: str
    owner: str | None
    weight: Decimal
    key_results: list[KrStatus] = field(default_factory=list)
    objectives: list[ObjectiveStatus] = field(default_factory=list)

    @property
    def progress(self) -> Decimal | None:
        parts: list[tuple[Decimal, Decimal | None]] = [
            (k.weight, k.value.progress if k.value else None) for k in self.key_results
        ]
        parts += [(o.weight, o.progress) for o in self.objectives]
        return roll_up(parts)

    @property
    def held(self) -> bool:
        return any(k.held_reason for k in self.key_results) or any(o.held for o in self.objectives)


def _kr_statuses(conn: sa.Connection, where: Any) -> list[tuple[Any, KrStatus]]:
    """(row, status) of the key results ``where`` selects, in position order, with latest values and
    data freshness (close states filled in)."""
    st = m.stream_state.c
    states = list(conn.execute(sa.select(st.name, st.last_success_at, st.read_warning)))
    fresh = {r.name: r.last_success_at for r in states}
    warned = {r.name: r.read_warning for r in states if r.read_warning}
    k_ = m.key_result.c
    values = {
        r.id: StoredValue.of(r)
        for r in conn.execute(
            sa.select(m.kr_value).join(m.key_result, k_.last_value_id == m.kr_value.c.id).where(where)
        )
    }
    out: list[tuple[Any, KrStatus]] = []
    for k in conn.execute(sa.select(m.key_result).where(where).order_by(k_.position)):
        streams = json.loads(k.streams)
        times = [fresh.get(s) for s in streams]
        fresh_at = None if not times or any(t is None for t in times) else min(t for t in times if t)
        kr = KrStatus(
            k.id,
            k.title,
            k.owner,
            k.metric,
            k.period_label,
            Decimal(k.baseline),
            Decimal(k.target),
            k.direction,
            Decimal(k.weight),
            k.unit,
            streams,
            values.get(k.last_value_id),
            k.held_reason,
            k.held_since,
            fresh_at,
            {s: warned[s] for s in streams if s in warned},
            active=bool(k.active),
        )
        out.append((k, kr))
    closed = close_states(conn, {kr.id: kr.value.as_of if kr.value else None for _, kr in out})
    for _, kr in out:
        kr.close = closed.get(kr.id)
    return out


def status_tree(conn: sa.Connection) -> list[ObjectiveStatus]:
    """Active objectives (nested) with their KRs' latest values and data freshness."""
    objs = {
        r.id: (r, ObjectiveStatus(r.id, r.title, r.owner, Decimal(r.weight)))
        for r in conn.execute(
            sa.select(m.objective).where(m.objective.c.active).order_by(m.objective.c.position)
        )
    }
    for k, kr in _kr_statuses(conn, m.key_result.c.active):
        if k.objective_id in objs:
            objs[k.objective_id][1].key_results.append(kr)
    roots = []
    for row, o in objs.values():
        if row.parent_id and row.parent_id in objs:
            objs[row.parent_id][1].objectives.append(o)
        else:
            roots.append(o)
    return roots


def kr_status(conn: sa.Connection, kr_id: str) -> KrStatus | None:
    """One key result as the tree shows it, also one no longer active (retired, or gone from the
    project file): its values and their drill-down stay readable."""
    found = _kr_statuses(conn, m.key_result.c.id == kr_id)
    return found[0][1] if found else None


def known_krs(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(m.key_result.c.id).order_by(m.key_result.c.position)).scalars())


def _require_kr(conn: sa.Connection, kr_id: str) -> None:
    if conn.execute(sa.select(m.key_result.c.id).where(m.key_result.c.id == kr_id)).first() is None:
        close = close_matches(kr_id, known_krs(conn))
        raise NotFound(
            f"no key result {kr_id!r} in the store",
            hint=f"did you mean {', '.join(close)}?"
            if close
            else "a key result is registered by the first `okrsync run` after it is added to the project "
            "file; `okrsync status` lists them",
        )


def history(conn: sa.Connection, kr_id: str) -> list[StoredValue]:
    """Every value of a KR in as-of order (then computed-at): back-filled values among the others,
    the current value last."""
    _require_kr(conn, kr_id)
    rows = conn.execute(
        sa.select(m.kr_value).where(m.kr_value.c.kr_id == kr_id, counted()).order_by(*as_of_order())
    )
    return [StoredValue.of(r) for r in rows]


def compared_with(values: Sequence[StoredValue], after: StoredValue) -> StoredValue | None:
    """What ``after`` is compared with by default: of the values before it in ``values`` (a
    :func:`history`, in as-of order), the latest that differs from it, else the previous one (None: it
    is the first)."""
    ids = [v.id for v in values]
    earlier = list(values[: ids.index(after.id)]) if after.id in ids else []
    moved = [v for v in earlier if v.value != after.value]
    return moved[-1] if moved else (earlier[-1] if earlier else None)


def value_at(conn: sa.Connection, kr_id: str, at: datetime | None = None) -> StoredValue:
    """The value as of ``at`` (naive UTC): the one with the latest as-of at or before it (ties: the
    later computed); without ``at``, the current value."""
    _require_kr(conn, kr_id)
    q = sa.select(m.kr_value).where(m.kr_value.c.kr_id == kr_id, counted())
    if at is not None:
        q = q.where(m.kr_value.c.as_of <= at)
    row = conn.execute(q.order_by(*newest_first()).limit(1)).first()
    if row is None:
        when = f" as of {at:%Y-%m-%d %H:%M:%S} UTC or earlier" if at else ""
        raise NotFound(
            f"key result {kr_id!r} has no computed value{when}",
            hint="run `okrsync run` first, or pick a later --at time",
        )
    return StoredValue.of(row)


def value_by_id(conn: sa.Connection, value_id: int) -> StoredValue:
    row = conn.execute(sa.select(m.kr_value).where(m.kr_value.c.id == value_id)).first()
    if row is None:
        raise NotFound(f"no stored value with id {value_id}")
    return StoredValue.of(row)


def definition_body(conn: sa.Connection, digest: str) -> str:
    body = conn.execute(sa.select(m.definition.c.body).where(m.definition.c.hash == digest)).scalar()
    if body is None:
        raise NotFound(f"definition {digest[:12]} is missing from the store")
    return str(body)


def stream_sources(conn: sa.Connection) -> dict[str, str]:
    return {r.name: r.source for r in conn.execute(sa.select(m.stream_state.c.name, m.stream_state.c.source))}


def sync_info(conn: sa.Connection, sync_ids: Sequence[int]) -> dict[int, Any]:
    if not sync_ids:
        return {}
    return {r.id: r for r in conn.execute(sa.select(m.sync_run).where(m.sync_run.c.id.in_(list(sync_ids))))}


def last_runs(conn: sa.Connection, limit: int = 10) -> list[Any]:
    return list(conn.execute(sa.select(m.run).order_by(m.run.c.started_at.desc()).limit(limit)))
