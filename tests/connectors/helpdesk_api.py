"""A helpdesk's REST API on loopback: the source of docs/examples/helpdesk_connector.py.

``GET /api/tickets?updated_since=ISO&page=N`` lists tickets changed at or after ``updated_since`` (whole
seconds, ``Z``), 50 a page, ordered by ``updated_at`` only: tickets that share one are in no particular
order, as many APIs give them. ``GET /api/tickets/deleted?since=ISO&page=N`` lists deleted ones. Every
request needs ``Authorization: Bearer <token>``. ``fail`` arms faults (a status, with ``Retry-After``).
"""

from __future__ import annotations

import json
import random
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE = 50
T0 = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@dataclass
class Ticket:
    id: int
    status: str
    hours: float | None
    escalated: bool
    updated_at: datetime  # aware, UTC, whole seconds


@dataclass
class Fault:
    path_contains: str
    status: int
    page: int | None  # only this page
    remaining: int | None  # None: every matching request
    retry_after: str | None


@dataclass
class HelpdeskApi:
    """A seeded helpdesk: ``tickets`` tickets, a few of them sharing an ``updated_at``."""

    tickets: int = 120
    seed: int = 7
    token: str = field(default_factory=lambda: f"hd-{secrets.token_hex(12)}")
    requests: list[str] = field(default_factory=list)  # "GET /api/tickets?page=2 -> 200"
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        self.lock = threading.Lock()
        self.records: dict[int, Ticket] = {}
        self.deleted: dict[int, datetime] = {}
        for i in range(1, self.tickets + 1):
            stamp = T0 + timedelta(minutes=i // 3)  # three tickets to a minute: ties
            self.records[i] = Ticket(i, rnd.choice(["open", "pending", "solved"]),
                                     rnd.choice([None, 0.1, 1.25, 2.5, 7.75]), rnd.random() < 0.2, stamp)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def start(self) -> HelpdeskApi:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- changing it -------------------------------------------------------------------------------

    def touch(self, ticket_id: int, at: datetime, **fields: Any) -> None:
        with self.lock:
            old = self.records[ticket_id]
            self.records[ticket_id] = Ticket(**{**old.__dict__, **fields, "updated_at": at})

    def delete(self, ticket_id: int, at: datetime) -> None:
        with self.lock:
            del self.records[ticket_id]
            self.deleted[ticket_id] = at

    def fail(self, path_contains: str = "", status: int = 503, *, page: int | None = None,
             times: int | None = None, retry_after: float | None = None) -> None:
        self.faults.append(Fault(path_contains, status, page, times,
                                 None if retry_after is None else f"{retry_after:g}"))

    # -- answering ---------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]],
               auth: str | None) -> tuple[int, dict[str, str], Any]:
        page = int(query.get("page", ["1"])[0])
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and fault.page in (None, page) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return fault.status, headers, {"error": "unavailable"}
            if auth != f"Bearer {self.token}":
                return 401, {}, {"error": "invalid token"}
            if path == "/api/tickets":
                since = _instant(query.get("updated_since", [None])[0])
                found = sorted((t for t in self.records.values() if t.updated_at >= since),
                               key=lambda t: (t.updated_at, (t.id * 7919) % 101))  # ties in no id order
                rows: list[dict[str, Any]] = [_json(t) for t in found]
                key = "tickets"
            elif path == "/api/tickets/deleted":
                since = _instant(query.get("since", [None])[0])
                rows = [{"id": i, "deleted_at": _text(at)}
                        for i, at in sorted(self.deleted.items()) if at >= since]
                key = "deleted"
            else:
                return 404, {}, {"error": "not found"}
        chunk = rows[(page - 1) * PAGE:page * PAGE]
        return 200, {}, {key: chunk, "next_page": page + 1 if page * PAGE < len(rows) else None}


def _handler(api: HelpdeskApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            auth = self.headers.get("Authorization")
            status, headers, body = api.answer(parts.path, parse_qs(parts.query), auth)
            api.requests.append(f"GET {self.path} -> {status}")
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _instant(text: str | None) -> datetime:
    return datetime.min.replace(tzinfo=UTC) if not text else datetime.fromisoformat(text)


def _text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(t: Ticket) -> dict[str, Any]:
    return {"id": t.id, "status": t.status, "hours": t.hours, "escalated": t.escalated,
            "updated_at": _text(t.updated_at)}
