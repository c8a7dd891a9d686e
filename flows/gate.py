"""The data-quality gate of a stream sync: nothing is committed on data that fails a blocking check.

Expectations (Great Expectations) judge every batch as it is read; freshness is judged on the newest
cursor value; volume change inside the commit transaction. A failed ``error`` check blocks: the
staged rows are kept for an admin to accept, the watermark stays, and the KRs reading the stream are
held at their last good value. ``warn`` checks are recorded and let the data through.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from connectors.base import StreamSpec, cursor_values
from metrics.quality import CheckSpec, Outcome, freshness, volume_change
from okr_store.checks import record_outcomes
from okr_store.records import RID
from okr_store.store import Store

MASK = "•••"  # what a sensitive field shows in a check sample
SAMPLE_ROWS = 20


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bool | int | float | str):
        return v
    return str(v)


class StreamGate:
    """Collects the outcomes of one stream's checks during one sync."""

    def __init__(self, stream: StreamSpec, checks: tuple[CheckSpec, ...]) -> None:
        self.stream = stream
        self.checks = checks
        self.gx = [c for c in checks if not c.builtin]
        self.sensitive = set(stream.sensitive)
        self.validator: Any = None
        if self.gx:  # imports Great Expectations: only for streams that declare expectations
            from metrics.gx import BatchValidator

            self.validator = BatchValidator(
                stream.name, self.gx, sensitive=self.sensitive, sample_size=SAMPLE_ROWS
            )
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.newest: Any = None
        self.volume: Outcome | None = None

    def observe(self, batch: pd.DataFrame) -> None:
        """Judge one staged batch (fields plus ``_rid``)."""
        if self.stream.cursor:
            top = cursor_values(batch, self.stream).max()
            if top is not None and not pd.isna(top) and (self.newest is None or top > self.newest):
                self.newest = top
        if self.validator is None:
            return
        self.validator.validate(batch)
        for o in self.validator.outcomes():
            have = self.samples.setdefault(o.check.label, [])
            want = [r for r in o.failing_record_ids if r not in {s["record_id"] for s in have}]
            if not want or len(have) >= SAMPLE_ROWS:
                continue
            rows = batch[batch[RID].isin(want)].head(SAMPLE_ROWS - len(have))
            for rec in rows.to_dict("records"):
                fields = {k: (MASK if k in self.sensitive else _plain(v)) for k, v in rec.items() if k != RID}
                have.append({"record_id": rec[RID], "fields": fields})

    def outcomes(self, now: datetime, watermark_cursor: Any, future: str | None = None) -> list[Outcome]:
        """Outcomes of every check judged before the commit; ``future`` says how many records were
        dated ahead of the source's clock (freshness fails on them rather than report a negative age)."""
        out: list[Outcome] = list(self.validator.outcomes()) if self.validator is not None else []
        for c in self.checks:
            if c.kind == "freshness":
                newest = _as_utc(self.newest if self.newest is not None else watermark_cursor)
                out.append(freshness(c, newest, now, future))
        return out

    def close(self) -> None:
        """Release the GX objects of this sync (they live in a process-wide context)."""
        if self.validator is not None:
            self.validator.close()
            self.validator = None

    def volume_gate(self) -> Any:
        """The commit gate for ``volume_change`` (None when the stream has no such check)."""
        spec = next((c for c in self.checks if c.kind == "volume_change"), None)
        if spec is None:
            return None

        def gate(before: int, after: int) -> bool:
            self.volume = volume_change(spec, before, after)
            return not self.volume.blocking

        return gate

    def record(
        self, store: Store, run_id: str, sync_id: int, outcomes: list[Outcome], held: list[str]
    ) -> list[int]:
        with store.engine.begin() as conn:
            return record_outcomes(
                conn,
                run_id,
                outcomes,
                stream=self.stream.name,
                sync_id=sync_id,
                held_krs=held,
                samples=self.samples,
            )


def _as_utc(v: Any) -> datetime | None:
    if v is None or (not isinstance(v, datetime | date | str)):
        return None
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
    return datetime(v.year, v.month, v.day)
