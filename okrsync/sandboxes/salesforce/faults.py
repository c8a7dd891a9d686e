"""Fault injection switches and the log of every request the sandbox received."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from okrsync.sandboxes import https

MAX_DELAY_MS = 2000


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int = 0

    @property
    def soql(self) -> str | None:
        values = self.query.get("q")
        return values[0] if values else None


class RequestLog(https.RequestLog[RequestRecord]):
    """Every request the Salesforce sandbox received, in order."""


@dataclass
class _Rule:
    status: int
    error_code: str
    message: str
    remaining: int | None  # None = forever


@dataclass
class Faults:
    """Per-test switches. Request counters count every request received after arming."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _on_request: dict[int, _Rule] = field(default_factory=dict)
    _request_counter: int = 0
    _on_page: dict[int, _Rule] = field(default_factory=dict)
    locator_expires_on_page: int | None = None
    session_expires_after: int | None = None
    bulk_fail_message: str | None = None
    bulk_polls_in_progress: int = 1
    bulk_results_damage: dict[int, str] = field(default_factory=dict)  # page -> "abort" | "truncate"
    delay_ms: int = 0
    delay_path_contains: str = ""
    token_rejection: tuple[str, str] | None = None  # (error, error_description)

    # -- arming ---------------------------------------------------------------------------------------
    def http_error_on_request(
        self,
        nth: int,
        status: int = 503,
        error_code: str = "SERVER_UNAVAILABLE",
        message: str = "Service temporarily unavailable",
        always: bool = False,
    ) -> None:
        """The ``nth`` API request from now (1 = the next one) fails; with ``always`` every later one too."""
        with self._lock:
            self._on_request[self._request_counter + nth] = _Rule(
                status, error_code, message, None if always else 1
            )

    def http_error_on_query_page(
        self,
        page: int,
        status: int = 503,
        error_code: str = "SERVER_UNAVAILABLE",
        message: str = "Service temporarily unavailable",
        always: bool = False,
    ) -> None:
        """Page ``page`` of any REST query fails (1 = the initial query, 2 = the first queryMore, ...).

        Once: only the first request for that page fails, a retry succeeds. ``always``: it keeps failing.
        """
        self._on_page[page] = _Rule(status, error_code, message, None if always else 1)

    def expire_session_after(self, calls: int) -> None:
        """After ``calls`` more authenticated calls every session id is invalid (401 INVALID_SESSION_ID)."""
        self.session_expires_after = calls

    def expire_locator_on_page(self, page: int) -> None:
        """Fetching page ``page`` (>= 2) of a query answers 400 INVALID_QUERY_LOCATOR."""
        self.locator_expires_on_page = page

    def fail_bulk_jobs(self, message: str = "InternalServerError : Query job failed") -> None:
        """Bulk 2.0 query jobs created from now on end in state ``Failed`` with this ``errorMessage``."""
        self.bulk_fail_message = message

    def damage_bulk_results(self, page: int = 1, mode: str = "abort") -> None:
        """Bulk results page ``page`` (1-based) is broken: ``abort`` promises more bytes than it sends and
        drops the connection (the client sees a protocol error); ``truncate`` cuts the CSV mid-row but with a
        consistent Content-Length (only a check against ``Sforce-NumberOfRecords`` notices)."""
        if mode not in ("abort", "truncate"):
            raise ValueError(mode)
        self.bulk_results_damage[page] = mode

    def reject_token_requests(
        self, error: str = "invalid_grant", description: str = "authentication failure"
    ) -> None:
        """Every login from now on fails, whatever it presents: OAuth token requests (any grant type) answer
        400 ``{"error": error, "error_description": description}`` and SOAP ``login()`` answers an
        ``INVALID_LOGIN`` fault with ``description``. With :meth:`expire_session_after` this makes a client's
        re-authentication fail. :meth:`clear` lifts it."""
        self.token_rejection = (error, description)

    def slow(self, ms: int, path_contains: str = "") -> None:
        """Delay responses (to requests whose path contains ``path_contains``) by ``ms`` milliseconds."""
        self.delay_ms = max(0, min(ms, MAX_DELAY_MS))
        self.delay_path_contains = path_contains

    def clear(self) -> None:
        with self._lock:
            self._on_request.clear()
            self._on_page.clear()
        self.locator_expires_on_page = self.session_expires_after = self.bulk_fail_message = None
        self.bulk_polls_in_progress = 1
        self.bulk_results_damage.clear()
        self.delay_ms = 0
        self.token_rejection = None

    # -- consulted by the server ----------------------------------------------------------------------
    def next_request(self) -> _Rule | None:
        with self._lock:
            self._request_counter += 1
            rule = self._on_request.get(self._request_counter)
            if rule and rule.remaining is None:
                # an "always" rule keeps applying to all later requests
                self._on_request[self._request_counter + 1] = rule
            return rule

    def for_page(self, page: int) -> _Rule | None:
        with self._lock:
            rule = self._on_page.get(page)
            if rule is None:
                return None
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._on_page[page]
            return rule

    def describe(self) -> dict[str, Any]:
        return {"on_request": dict(self._on_request), "on_page": dict(self._on_page)}
