"""Closing periods: final values, restatements after close, reopening.

A key result whose project setting ``close_after_days`` is set has a *closing time*: local midnight
``close_after_days`` days after its period ends (``key_result.closes_at``). Until then its values are
*provisional*. The first run whose **as-of time** (never the wall clock: runs are deterministic under
clock skew and back-fills) is at or after the closing time, and which computed the KR, *closes* the
period with that value (:func:`close_due`, a ``kr_close`` row): its value, progress and status are final.

A later run that computes a different value for a closed period does not replace it. The value is kept
(``kr_value.restates``, never current) and becomes a *restatement* listing the records that moved it
(a diff against the closed value: :mod:`okr_store.restating`), for admins to acknowledge
(:func:`acknowledge`, audited). An admin may reopen a closed period with a reason (:func:`reopen`,
audited); the next run as of that time or later computes the KR as usual and closes it again.

Runs of a project are serialised by its lease; two closings of one period can still never both land:
each close takes the next ``seq`` of its KR and period, which is unique.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

import sqlalchemy as sa

from okr_store import audit
from okr_store import models as m
from okr_store.records import utcnow
from okrsync.errors import ConfigError, NotFound

State = Literal["open", "provisional", "final", "restated"]
REOPEN = "period.reopen"
ACKNOWLEDGE = "restatement.ack"


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


@dataclass(frozen=True)
class Closed:
    """One closing of a KR's period: the final value (``value_id``) and who reopened it, if anyone."""

    id: int
    kr_id: str
    period_label: str
    seq: int
    value_id: int
    value: Decimal | None
    closes_at: datetime
    as_of: datetime
    closed_at: datetime
    run_id: str
    reopened_at: datetime | None = None
    reopened_by: str | None = None
    reopen_reason: str | None = None

    @classmethod
    def of(cls, r: Any) -> Closed:
        return cls(
            int(r.id),
            r.kr_id,
            r.period_label,
            int(r.seq),
            int(r.value_id),
            _dec(r.value),
            r.closes_at,
            r.as_of,
            r.closed_at,
            r.run_id,
            r.reopened_at,
            r.reopened_by,
            r.reopen_reason,
        )


@dataclass(frozen=True)
class Restatement:
    """A value a closed period would have now, and the records that moved it from the closed value."""

    id: int
    close_id: int
    kr_id: str
    value_id: int
    closed_value_id: int
    value: Decimal | None
    closed_value: Decimal | None
    changes: list[dict[str, Any]]  # stream, record_id, kind, before, after, delta, why, fields
    total_changes: int
    as_of: datetime
    created_at: datetime
    run_id: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_reason: str | None

    @classmethod
    def of(cls, r: Any) -> Restatement:
        return cls(
            int(r.id),
            int(r.close_id),
            r.kr_id,
            int(r.value_id),
            int(r.closed_value_id),
            _dec(r.value),
            _dec(r.closed_value),
            json.loads(r.changes),
            int(r.total_changes),
            r.as_of,
            r.created_at,
            r.run_id,
            r.acknowledged_at,
            r.acknowledged_by,
            r.acknowledge_reason,
        )

    @property
    def delta(self) -> Decimal | None:
        """The restated value minus the closed value (None when either has no value)."""
        if self.value is None or self.closed_value is None:
            return None
        return self.value - self.closed_value

    @property
    def percent(self) -> Decimal | None:
        """The change relative to the closed value, in %, one decimal (None: no base to compare with)."""
        if self.delta is None or not self.closed_value:
            return None
        return (self.delta * 100 / abs(self.closed_value)).quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def pending(self) -> bool:
        return self.acknowledged_at is None

    def change_text(self) -> str:
        """``+1.2 %`` (or the absolute change when the closed value is zero or missing)."""
        if self.percent is not None:
            return f"{'+' if self.percent >= 0 else '-'}{abs(self.percent)} %"
        if self.delta is not None:
            return f"{'+' if self.delta >= 0 else '-'}{abs(self.delta)}"
        return f"{self.closed_value if self.closed_value is not None else '—'} → {self.value or '—'}"


@dataclass(frozen=True)
class CloseState:
    """Where a KR's current value stands: ``open`` (its period runs, or it never closes),
    ``provisional`` (the period ended, the grace period has not), ``final``, ``restated`` (final, and a
    later source change would move it)."""

    state: State
    closes_at: datetime | None  # naive UTC
    closes_on: date | None  # the local day it closes
    close: Closed | None = None
    restatement: Restatement | None = None  # the latest since the close
    pending: int = 0  # restatements of the close not acknowledged yet
    reopened: Closed | None = None  # the last reopened close of this period, while provisional again
    withheld: bool = False  # the value is a small group this role may not see: no numbers either

    @property
    def label(self) -> str:
        """What leadership reads: ``final``, ``provisional (closes on 2026-10-11)``, ``restated after
        close (+1.2 %)``; empty while the period runs."""
        if self.state == "final":
            return "final"
        if self.state == "restated" and self.restatement is not None:
            return "restated after close" + ("" if self.withheld else f" ({self.restatement.change_text()})")
        if self.state == "provisional":
            if self.reopened is not None:
                return "provisional (reopened, closes at the next run)"
            return f"provisional (closes on {self.closes_on})"
        return ""


def same(a: Decimal | None, b: Decimal | None) -> bool:
    """Whether two values are equal (``1.0`` equals ``1``; no value equals only no value)."""
    return (a is None and b is None) or (a is not None and b is not None and a == b)


def _close_query() -> sa.Select[Any]:
    c, v = m.kr_close.c, m.kr_value.c
    return sa.select(m.kr_close, v.value).join(m.kr_value, v.id == c.value_id)


def _closes_of_current_period(
    conn: sa.Connection, kr_ids: Iterable[str] | None, *, reopened: bool
) -> dict[str, Closed]:
    """Each KR's latest close of its current period, reopened or not."""
    c, k = m.kr_close.c, m.key_result.c
    q = (
        _close_query()
        .join(m.key_result, sa.and_(k.id == c.kr_id, k.period_label == c.period_label))
        .where(c.reopened_at.is_not(None) if reopened else c.reopened_at.is_(None))
    )
    if kr_ids is not None:
        q = q.where(c.kr_id.in_(list(kr_ids)))
    return {r.kr_id: Closed.of(r) for r in conn.execute(q.order_by(c.seq))}


def active_closes(conn: sa.Connection, kr_ids: Iterable[str] | None = None) -> dict[str, Closed]:
    """Each KR's close of its current period that was not reopened (KRs without one are missing)."""
    return _closes_of_current_period(conn, kr_ids, reopened=False)


def last_reopened(conn: sa.Connection, kr_ids: Iterable[str] | None = None) -> dict[str, Closed]:
    """Each KR's latest reopened close of its current period."""
    return _closes_of_current_period(conn, kr_ids, reopened=True)


def latest_value(conn: sa.Connection, close: Closed) -> Decimal | None:
    """What the closed period's value is now: the latest restated value since the close, else the
    closed value (a run compares with it to tell whether anything moved)."""
    v = m.kr_value.c
    row = conn.execute(
        sa.select(v.value).where(v.restates == close.id).order_by(v.id.desc()).limit(1)
    ).first()
    return close.value if row is None else _dec(row.value)


def close_due(
    conn: sa.Connection, values: Sequence[tuple[str, int]], as_of: datetime, run_id: str
) -> list[int]:
    """Close the period of each ``(kr_id, value_id)`` just recorded by a run as of ``as_of`` whose
    closing time has come (in the caller's transaction). Returns the new close ids."""
    if not values:
        return []
    k, c = m.key_result.c, m.kr_close.c
    ids = [kr for kr, _ in values]
    krs = {r.id: r for r in conn.execute(sa.select(k.id, k.period_label, k.closes_at).where(k.id.in_(ids)))}
    active = active_closes(conn, ids)
    reopened = last_reopened(conn, ids)
    now, out = utcnow(), []
    for kr_id, value_id in values:
        row = krs.get(kr_id)
        if row is None or row.closes_at is None or kr_id in active:
            continue
        due = row.closes_at
        if kr_id in reopened and reopened[kr_id].reopened_at is not None:
            due = max(due, reopened[kr_id].reopened_at)
        if as_of < due:
            continue
        seq = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(c.seq), 0)).where(
                c.kr_id == kr_id, c.period_label == row.period_label
            )
        ).scalar_one()
        out.append(
            int(
                conn.execute(  # type: ignore[index]
                    m.kr_close.insert().values(
                        kr_id=kr_id,
                        period_label=row.period_label,
                        seq=int(seq) + 1,
                        value_id=value_id,
                        closes_at=due,
                        as_of=as_of,
                        closed_at=now,
                        run_id=run_id,
                    )
                ).inserted_primary_key[0]
            )
        )  # type: ignore[index]
    return out


def closes(conn: sa.Connection, kr_id: str) -> list[Closed]:
    """Every closing of a KR's periods, oldest first (reopened ones with who reopened them, and why)."""
    c = m.kr_close.c
    return [Closed.of(r) for r in conn.execute(_close_query().where(c.kr_id == kr_id).order_by(c.id))]


def close_json(c: Closed) -> dict[str, Any]:
    return {
        "close_id": c.id,
        "period": c.period_label,
        "seq": c.seq,
        "value_id": c.value_id,
        "value": c.value,
        "closes_at": c.closes_at,
        "as_of": c.as_of,
        "closed_at": c.closed_at,
        "run_id": c.run_id,
        "reopened_at": c.reopened_at,
        "reopened_by": c.reopened_by,
        "reopen_reason": c.reopen_reason,
    }


def restatements(
    conn: sa.Connection, kr_id: str | None = None, *, pending: bool = False, close_id: int | None = None
) -> list[Restatement]:
    """Restatements, newest first: of one KR, of one close, or (``pending``) those of periods still
    closed that no admin acknowledged yet."""
    r = m.kr_restatement.c
    q = sa.select(m.kr_restatement).order_by(r.id.desc())
    if kr_id is not None:
        q = q.where(r.kr_id == kr_id)
    if close_id is not None:
        q = q.where(r.close_id == close_id)
    if pending:
        still_closed = sa.select(m.kr_close.c.id).where(m.kr_close.c.reopened_at.is_(None))
        q = q.where(r.acknowledged_at.is_(None), r.close_id.in_(still_closed))
    return [Restatement.of(row) for row in conn.execute(q)]


def _reason(reason: str) -> str:
    text = reason.strip()
    if len(text) < 3:
        raise ConfigError(
            "give a reason (at least 3 characters): it is kept in the audit log",
            hint='e.g. --reason "ERP credit note 4711 booked late, confirmed by finance"',
        )
    return text


def acknowledge(conn: sa.Connection, restatement_id: int, *, actor: str, reason: str) -> Restatement:
    """An admin has seen a restatement (audited, in the caller's transaction)."""
    text = _reason(reason)
    r = m.kr_restatement.c
    row = conn.execute(sa.select(m.kr_restatement).where(r.id == restatement_id)).first()
    if row is None:
        raise NotFound(f"no restatement #{restatement_id}", hint="`okrsync restatements` lists them")
    if row.acknowledged_at is not None:
        raise ConfigError(
            f"restatement #{restatement_id} was acknowledged already, by {row.acknowledged_by} "
            f"at {row.acknowledged_at:%Y-%m-%d %H:%M} UTC"
        )
    now = utcnow()
    conn.execute(
        m.kr_restatement.update()
        .where(r.id == restatement_id)
        .values(acknowledged_at=now, acknowledged_by=actor, acknowledge_reason=text)
    )
    audit.audit(
        conn,
        actor=actor,
        action=ACKNOWLEDGE,
        reason=text,
        kr_id=row.kr_id,
        target=f"restatement #{restatement_id}",
    )
    return Restatement.of(conn.execute(sa.select(m.kr_restatement).where(r.id == restatement_id)).one())


def reopen(conn: sa.Connection, kr_id: str, *, actor: str, reason: str) -> Closed:
    """Reopen a KR's closed period (audited, in the caller's transaction): the next run as of now or
    later computes it as usual, and closes it again with that value."""
    text = _reason(reason)
    closed = active_closes(conn, [kr_id]).get(kr_id)
    if closed is None:
        k = m.key_result.c
        known = conn.execute(sa.select(k.period_label).where(k.id == kr_id)).first()
        if known is None:
            raise NotFound(f"no key result {kr_id!r} in the store", hint="`okrsync status` lists them")
        raise ConfigError(
            f"the period {known.period_label} of {kr_id} is not closed: there is nothing to reopen",
            hint="`okrsync status` shows which periods are final",
        )
    now = utcnow()
    c = m.kr_close.c
    conn.execute(
        m.kr_close.update()
        .where(c.id == closed.id)
        .values(reopened_at=now, reopened_by=actor, reopen_reason=text, reopen_until=now)
    )
    audit.audit(
        conn,
        actor=actor,
        action=REOPEN,
        reason=text,
        kr_id=kr_id,
        target=f"period {closed.period_label} (close #{closed.id})",
    )
    return Closed.of(conn.execute(_close_query().where(c.id == closed.id)).one())


def close_states(conn: sa.Connection, current_as_of: dict[str, datetime | None]) -> dict[str, CloseState]:
    """The close state of each KR (``current_as_of``: the as-of time of its current value, None if it
    has none). A period is provisional once the current value is as of its end or later."""
    k = m.key_result.c
    ids = list(current_as_of)
    if not ids:
        return {}
    rows = conn.execute(sa.select(k.id, k.period_end, k.closes_at, k.closes_on).where(k.id.in_(ids)))
    active, reopened = active_closes(conn, ids), last_reopened(conn, ids)
    latest: dict[int, list[Restatement]] = {}
    if active:
        r = m.kr_restatement.c
        q = sa.select(m.kr_restatement).where(r.close_id.in_([c.id for c in active.values()])).order_by(r.id)
        for row in conn.execute(q):
            latest.setdefault(int(row.close_id), []).append(Restatement.of(row))
    out: dict[str, CloseState] = {}
    for row in rows:
        closed = active.get(row.id)
        if closed is not None:
            found = latest.get(closed.id, [])
            moved = bool(found) and not same(found[-1].value, closed.value)  # not back at the closed value
            out[row.id] = CloseState(
                "restated" if moved else "final",
                row.closes_at,
                row.closes_on,
                closed,
                found[-1] if found else None,
                sum(1 for x in found if x.pending),
            )
            continue
        at = current_as_of.get(row.id)
        ended = row.period_end is not None and at is not None and at >= row.period_end
        state: State = "provisional" if row.closes_at is not None and ended else "open"
        out[row.id] = CloseState(state, row.closes_at, row.closes_on, reopened=reopened.get(row.id))
    return out


def state_json(st: CloseState | None) -> dict[str, Any]:
    """The close state as JSON (``status --json``, the API): decimals and times left to the caller."""
    if st is None:
        return {"state": "open", "label": "", "closes_at": None, "closes_on": None}
    out: dict[str, Any] = {
        "state": st.state,
        "label": st.label,
        "closes_at": st.closes_at,
        "closes_on": st.closes_on.isoformat() if st.closes_on else None,
    }
    if st.close is not None and not st.withheld:
        out["closed"] = {
            "close_id": st.close.id,
            "value_id": st.close.value_id,
            "value": st.close.value,
            "as_of": st.close.as_of,
            "closed_at": st.close.closed_at,
        }
    if st.restatement is not None and not st.withheld:
        out["restatement"] = restatement_json(st.restatement, changes=False)
        out["pending_restatements"] = st.pending
    return out


def restatement_json(r: Restatement, *, changes: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "kr_id": r.kr_id,
        "close_id": r.close_id,
        "value_id": r.value_id,
        "closed_value_id": r.closed_value_id,
        "value": r.value,
        "closed_value": r.closed_value,
        "delta": r.delta,
        "percent": r.percent,
        "change": r.change_text(),
        "as_of": r.as_of,
        "created_at": r.created_at,
        "run_id": r.run_id,
        "total_changes": r.total_changes,
        "acknowledged_at": r.acknowledged_at,
        "acknowledged_by": r.acknowledged_by,
        "acknowledge_reason": r.acknowledge_reason,
    }
    if changes:
        out["changes"] = r.changes
    return out
