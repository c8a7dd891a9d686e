"""The admin's view of alert deliveries (docs/alerts.md): ``GET /api/alerts`` lists them, newest first,
with each one's event, channel, recipient, status, attempts and error (never a URL or a secret)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from okr_store import alerts as stored
from okrsync.web.api import MAX_PAGE, PROBLEMS, WebDep, plain
from okrsync.web.auth import Admin
from okrsync.web.schemas import Scalar, Time

router = APIRouter(prefix="/api", responses=PROBLEMS)
Status = Literal["pending", "sending", "sent", "failed", "abandoned"]


class AlertDelivery(BaseModel):
    id: int
    event_id: int
    kind: str
    subject: str
    key_results: list[str]
    channel: str
    recipient: str  # an email address, or "" for a webhook channel
    status: str
    attempts: int
    error: str | None
    event_at: Time
    last_attempt_at: Time
    sent_at: Time
    facts: dict[str, Scalar | list[str]]


class AlertDeliveries(BaseModel):
    counts: dict[str, int]
    deliveries: list[AlertDelivery]


@router.get("/alerts", response_model=AlertDeliveries, tags=["alerts"])
def list_alerts(
    c: Admin,
    w: WebDep,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    """Alert deliveries, newest first (``status``: only those), and how many are in each status."""
    with w.store.engine.connect() as conn:
        rows = stored.list_deliveries(conn, status=status, limit=limit)
        totals = stored.counts(conn)
    return plain({"counts": totals, "deliveries": [d.as_json() for d in rows]})
