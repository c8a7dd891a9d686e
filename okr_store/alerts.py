"""Alert events from stored state changes, and the bookkeeping of their deliveries.

After a run records its values, :func:`detect` asks each :class:`EventSource` what its subjects look
like now (a KR's status, whether it is held, whether a check fails) and compares that with what it saw
last time (table ``alert_state``). Only a change is an event, so a run that changes nothing records
none, and one change is one event however many runs see it. Each event gets one delivery row per
channel and recipient; sending them is the flows' job (:mod:`flows.alerts`), which claims a row before
it sends (two processes never send the same one) and records the outcome here.

A new kind of event is one more :class:`EventSource` in :data:`EVENT_SOURCES`: a name, a function that
observes the store, and when a state change is news.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from okr_store import models as m
from okr_store.records import utcnow

SUBJECT_MAX = 300
# what a KR over personal data is announced without ("value" first: its presence marks such facts)
VALUE_FACTS = ("value", "target", "progress", "closed_value", "change_percent")
FAILING = ("blocked", "warned")  # check statuses that are a failure (okr_store.checks.status_of)
STUCK_AFTER = timedelta(minutes=10)  # a "sending" row older than this was left by a crashed process


@dataclass(frozen=True)
class Observation:
    """How one subject looks now: ``state`` (compared with the last one seen), the KRs it concerns and
    the PII-free facts an alert about it carries."""

    state: str
    kr_ids: tuple[str, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSource:
    """One kind of event: ``observe`` maps each subject to its :class:`Observation`; ``notifies`` says
    whether going from the state seen before (None: never seen) to the one now is news."""

    kind: str
    observe: Callable[[sa.Connection], dict[str, Observation]]
    notifies: Callable[[str | None, str], bool]


def _changed(before: str | None, now: str) -> bool:
    return before is not None and before != now  # a KR seen for the first time has changed nothing


def _became(state: str) -> Callable[[str | None, str], bool]:
    return lambda before, now: now == state and before != state


def _active_krs(conn: sa.Connection) -> list[Any]:
    k = m.key_result.c
    return list(conn.execute(sa.select(k.id, k.streams, k.held_reason, k.held_since, k.last_value_id)
                             .where(k.active.is_(True))))


def observe_statuses(conn: sa.Connection) -> dict[str, Observation]:
    """Each active KR's status: that of its current value."""
    k, v = m.key_result.c, m.kr_value.c
    q = (sa.select(k.id, v.id.label("value_id"), v.status, v.value, v.target, v.progress, v.as_of)
         .join(m.kr_value, v.id == k.last_value_id).where(k.active.is_(True)))
    return {
        r.id: Observation(r.status, (r.id,), {
            "status": r.status, "value_id": r.value_id, "value": r.value, "target": r.target,
            "progress": r.progress, "as_of": r.as_of,
        })
        for r in conn.execute(q)
    }


def observe_holds(conn: sa.Connection) -> dict[str, Observation]:
    """Each active KR: ``held`` (with the PII-free reason the store keeps) or ``ok``."""
    return {
        r.id: Observation("held" if r.held_reason else "ok", (r.id,),
                          {"reason": r.held_reason, "since": r.held_since} if r.held_reason else {})
        for r in _active_krs(conn)
    }


def check_subject(kr_id: str | None, stream: str | None, label: str) -> str:
    """What a check's events are about: its KR, else its stream, else the check alone (a
    reconciliation compares two metrics and has neither: ``reconcile(<name>)``)."""
    if kr_id:
        return f"kr:{kr_id}:{label}"
    return f"stream:{stream}:{label}" if stream else label


def observe_checks(conn: sa.Connection) -> dict[str, Observation]:
    """Each declared check by its latest result: ``failing`` (blocked or warned) or ``ok`` (passed,
    accepted, superseded). Samples and observed values are left out: they may hold record values."""
    c = m.check_result.c
    latest = sa.select(sa.func.max(c.id)).group_by(c.stream, c.kr_id, c.label)
    rows = conn.execute(sa.select(c.id, c.stream, c.kr_id, c.kind, c.label, c.severity, c.status,
                                  c.element_count, c.unexpected_count, c.held_krs)
                        .where(c.id.in_(latest)))
    readers: dict[str, list[str]] = {}
    for kr in _active_krs(conn):
        for stream in json.loads(kr.streams or "[]"):
            readers.setdefault(stream, []).append(kr.id)
    out = {}
    for r in rows:
        held = tuple(json.loads(r.held_krs or "[]"))
        concerns = held or ((r.kr_id,) if r.kr_id else tuple(readers.get(r.stream or "", ())))
        subject = check_subject(r.kr_id, r.stream, r.label)
        out[subject[:SUBJECT_MAX]] = Observation(
            "failing" if r.status in FAILING else "ok", concerns, {
                "check_id": r.id, "check": r.label, "check_kind": r.kind, "severity": r.severity,
                "status": r.status, "stream": r.stream, "failed_rows": r.unexpected_count,
                "rows": r.element_count, "held_krs": list(held),
            })
    return out


def observe_closes(conn: sa.Connection) -> dict[str, Observation]:
    """Each active KR: ``closed:<close id>`` while its period's close stands (okr_store.closing), else
    ``open``; a reopened and closed-again period is a new close, so news again."""
    c, v = m.kr_close.c, m.kr_value.c
    q = (sa.select(c.id, c.kr_id, c.period_label, c.seq, c.closes_at, v.value, v.status, v.progress)
         .join(m.kr_value, v.id == c.value_id).where(c.reopened_at.is_(None)))
    closed = {r.kr_id: r for r in conn.execute(q)}
    out = {}
    for kr in _active_krs(conn):
        r = closed.get(kr.id)
        out[kr.id] = Observation("open", (kr.id,)) if r is None else Observation(
            f"closed:{r.id}", (kr.id,), {"period": r.period_label, "close": r.seq, "closes_at": r.closes_at,
                                         "value": r.value, "status": r.status, "progress": r.progress})
    return out


def observe_restatements(conn: sa.Connection) -> dict[str, Observation]:
    """Each active KR: ``restated:<id>`` for the latest restatement of its closed value, else ``none``:
    every new restatement is news (records that moved it: ``okrsync restatements show ID``)."""
    r_ = m.kr_restatement.c
    latest = sa.select(sa.func.max(r_.id)).group_by(r_.kr_id)
    rows = {r.kr_id: r for r in conn.execute(
        sa.select(r_.id, r_.kr_id, r_.value, r_.closed_value, r_.total_changes).where(r_.id.in_(latest)))}
    out = {}
    for kr in _active_krs(conn):
        r = rows.get(kr.id)
        if r is None:
            out[kr.id] = Observation("none", (kr.id,))
            continue
        change = None  # stored as exact decimal text; no percentage from or to nothing, or from zero
        if r.value is not None and r.closed_value is not None and Decimal(r.closed_value) != 0:
            new, old = Decimal(r.value), Decimal(r.closed_value)
            change = str(((new - old) / abs(old) * 100).quantize(Decimal("0.1")))
        out[kr.id] = Observation(f"restated:{r.id}", (kr.id,), {
            "restatement_id": r.id, "value": r.value, "closed_value": r.closed_value,
            "change_percent": change, "records": r.total_changes})
    return out


def _is(prefix: str) -> Callable[[str | None, str], bool]:
    return lambda before, now: now.startswith(prefix) and before != now


# The kinds of event, in the order they are detected. Add one with a line here (and its observer).
EVENT_SOURCES: tuple[EventSource, ...] = (
    EventSource("status_changed", observe_statuses, _changed),
    EventSource("held", observe_holds, _became("held")),
    EventSource("check_failed", observe_checks, _became("failing")),
    EventSource("closed", observe_closes, _is("closed:")),
    EventSource("restated", observe_restatements, _is("restated:")),
)
EVENT_KINDS: tuple[str, ...] = tuple(s.kind for s in EVENT_SOURCES)


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    subject: str
    kr_ids: tuple[str, ...]
    facts: dict[str, Any]
    created_at: datetime
    run_id: str | None = None


def _json(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def detect(conn: sa.Connection, run_id: str | None = None,
           sources: Sequence[EventSource] = EVENT_SOURCES, withheld: Collection[str] = ()) -> list[Event]:
    """Record an event for each subject whose state changed to one its source calls news; remember
    every state seen. Run it in the transaction that also records the deliveries.

    ``withheld``: KRs over personal data; events about them are stored (and sent) without
    :data:`VALUE_FACTS`, as a small group's value must not reach anyone without the ``sensitive`` role."""
    now = utcnow()
    st = m.alert_state.c
    events = []
    for src in sources:
        seen = {r.subject: r.state for r in conn.execute(sa.select(st.subject, st.state)
                                                         .where(st.kind == src.kind))}
        for subject, obs in src.observe(conn).items():
            before = seen.get(subject)
            if before == obs.state:
                continue
            _remember(conn, src.kind, subject, before, obs.state, now)
            if not src.notifies(before, obs.state):
                continue
            facts = {**obs.facts, "previous": before}
            if set(obs.kr_ids) & set(withheld) and VALUE_FACTS[0] in facts:
                facts = {k: v for k, v in facts.items() if k not in VALUE_FACTS}
                facts["value_withheld"] = "personal data"
            eid = conn.execute(m.alert_event.insert().values(
                kind=src.kind, subject=subject, run_id=run_id, kr_ids=_json(list(obs.kr_ids)),
                facts=_json(facts), created_at=now)).inserted_primary_key[0]  # type: ignore[index]
            events.append(Event(int(eid), src.kind, subject, obs.kr_ids, json.loads(_json(facts)), now,
                                run_id))
    return events


def _remember(conn: sa.Connection, kind: str, subject: str, before: str | None, state: str,
              now: datetime) -> None:
    st = m.alert_state.c
    if before is None:
        conn.execute(m.alert_state.insert().values(kind=kind, subject=subject, state=state, updated_at=now))
    else:
        conn.execute(m.alert_state.update().where(st.kind == kind, st.subject == subject)
                     .values(state=state, updated_at=now))


@dataclass(frozen=True)
class KrInfo:
    id: str
    title: str
    owner: str | None
    objective_id: str
    streams: tuple[str, ...]


def kr_info(conn: sa.Connection, kr_ids: Iterable[str]) -> dict[str, KrInfo]:
    """Title, owner (the KR's, else its objective's), objective and streams of each KR."""
    k, o = m.key_result.c, m.objective.c
    q = (sa.select(k.id, k.title, k.owner, k.objective_id, k.streams, o.owner.label("objective_owner"))
         .join(m.objective, o.id == k.objective_id, isouter=True).where(k.id.in_(list(kr_ids))))
    return {r.id: KrInfo(r.id, r.title, r.owner or r.objective_owner, r.objective_id,
                         tuple(json.loads(r.streams or "[]"))) for r in conn.execute(q)}


def objective_parents(conn: sa.Connection) -> dict[str, str | None]:
    """Each objective's parent (to match a channel's ``key_results`` naming an objective)."""
    o = m.objective.c
    return {r.id: r.parent_id for r in conn.execute(sa.select(o.id, o.parent_id))}


# ---- deliveries --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: int
    channel: str
    recipient: str
    status: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    sent_at: datetime | None
    error: str | None
    kind: str
    subject: str
    kr_ids: tuple[str, ...]
    facts: dict[str, Any]
    event_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The delivery as ``okrsync alerts --json`` and ``GET /api/alerts`` show it."""
        return {"id": self.id, "event_id": self.event_id, "kind": self.kind, "subject": self.subject,
                "key_results": list(self.kr_ids), "channel": self.channel, "recipient": self.recipient,
                "status": self.status, "attempts": self.attempts, "error": self.error,
                "event_at": self.event_at, "last_attempt_at": self.last_attempt_at, "sent_at": self.sent_at,
                "facts": self.facts}


def add_deliveries(conn: sa.Connection, event_id: int, targets: Iterable[tuple[str, str]]) -> int:
    """One pending delivery per distinct (channel, recipient); returns how many."""
    now = utcnow()
    rows = [dict(event_id=event_id, channel=c, recipient=r, status="pending", attempts=0, created_at=now)
            for c, r in dict.fromkeys(targets)]
    if rows:
        conn.execute(m.alert_delivery.insert(), rows)
    return len(rows)


def _deliveries() -> sa.Select[Any]:
    d, e = m.alert_delivery.c, m.alert_event.c
    return (sa.select(d.id, d.event_id, d.channel, d.recipient, d.status, d.attempts, d.created_at,
                      d.last_attempt_at, d.sent_at, d.error, e.kind, e.subject, e.kr_ids, e.facts,
                      e.created_at.label("event_at"))
            .join(m.alert_event, e.id == d.event_id))


def _delivery(r: Any) -> Delivery:
    return Delivery(r.id, r.event_id, r.channel, r.recipient, r.status, r.attempts, r.created_at,
                    r.last_attempt_at, r.sent_at, r.error, r.kind, r.subject, tuple(json.loads(r.kr_ids)),
                    json.loads(r.facts), r.event_at)


def due(conn: sa.Connection, max_attempts: int) -> list[Delivery]:
    """Deliveries to (re)try, oldest first: pending, failed with attempts left, or left "sending" by a
    process that died."""
    d = m.alert_delivery.c
    stuck = sa.and_(d.status == "sending", d.last_attempt_at < utcnow() - STUCK_AFTER)
    q = _deliveries().where(sa.or_(d.status == "pending", sa.and_(d.status == "failed",
                                                                  d.attempts < max_attempts), stuck))
    return [_delivery(r) for r in conn.execute(q.order_by(d.id))]


def claim(conn: sa.Connection, delivery: Delivery) -> bool:
    """Mark the delivery as being sent, unless another process did first."""
    d = m.alert_delivery.c
    q = m.alert_delivery.update().where(d.id == delivery.id, d.status == delivery.status,
                                        d.attempts == delivery.attempts)
    return bool(conn.execute(q.values(status="sending", last_attempt_at=utcnow())).rowcount)


def finish(conn: sa.Connection, delivery_id: int, error: str | None, max_attempts: int) -> None:
    """Record an attempt: sent (``error`` None), failed, or abandoned once out of attempts."""
    d = m.alert_delivery.c
    row = conn.execute(sa.select(d.attempts).where(d.id == delivery_id)).one()
    attempts = row.attempts + 1
    if error is None:
        values: dict[str, Any] = dict(status="sent", sent_at=utcnow(), error=None)
    else:
        values = dict(status="failed" if attempts < max_attempts else "abandoned", error=error[:2000])
    conn.execute(m.alert_delivery.update().where(d.id == delivery_id).values(attempts=attempts, **values))


def defer(conn: sa.Connection, delivery: Delivery, why: str) -> None:
    """Leave the delivery for a later run (rate limit), saying why; not an attempt."""
    d = m.alert_delivery.c
    conn.execute(m.alert_delivery.update().where(d.id == delivery.id)
                 .values(status=delivery.status if delivery.status != "sending" else "pending", error=why))


def sent_since(conn: sa.Connection, channel: str, since: datetime) -> int:
    d = m.alert_delivery.c
    q = sa.select(sa.func.count()).where(d.channel == channel, d.status == "sent", d.sent_at >= since)
    return int(conn.execute(q).scalar_one())


def list_deliveries(conn: sa.Connection, *, status: str | None = None, limit: int = 100) -> list[Delivery]:
    """Deliveries newest first (``status``: only those)."""
    d = m.alert_delivery.c
    q = _deliveries()
    if status is not None:
        q = q.where(d.status == status)
    return [_delivery(r) for r in conn.execute(q.order_by(d.id.desc()).limit(limit))]


def counts(conn: sa.Connection) -> dict[str, int]:
    """How many deliveries are in each status."""
    d = m.alert_delivery.c
    return {r.status: int(r.n) for r in conn.execute(sa.select(d.status, sa.func.count().label("n"))
                                                     .group_by(d.status))}
