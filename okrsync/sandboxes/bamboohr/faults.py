"""Fault injection for the BambooHR sandbox, and the log of every request it received."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from okrsync.sandboxes import https


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; Authorization is redacted
    body: Any = None  # the parsed JSON body, if any
    status: int = 0


class RequestLog(https.RequestLog[RequestRecord]):
    """Every request the BambooHR sandbox received, in order."""


@dataclass
class Fault:
    status: int
    retry_after: str | None
    remaining: int | None  # None: every matching request from now on
    path_contains: str
    message: str


@dataclass
class Faults:
    """Per-test switches. Each armed fault answers the next matching requests instead of the API."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rules: list[Fault] = field(default_factory=list)

    def throttle(self, times: int | None = 1, retry_after: float | str | None = 1, status: int = 429,
                 path_contains: str = "") -> None:
        """The next ``times`` requests answer ``status`` (429; BambooHR's older throttling answers 503) with
        ``Retry-After: retry_after`` (seconds, or an HTTP date given as text; None: no header)."""
        self._add(Fault(status, None if retry_after is None else _text(retry_after), times, path_contains,
                        "API rate limit exceeded"))

    def unavailable(self, times: int | None = 1, retry_after: float | str | None = None,
                    path_contains: str = "") -> None:
        """The next ``times`` requests answer 503, without ``Retry-After`` unless given (an outage)."""
        self._add(Fault(503, None if retry_after is None else _text(retry_after), times, path_contains,
                        "Service Unavailable"))

    def server_error(self, times: int | None = 1, status: int = 500, path_contains: str = "") -> None:
        self._add(Fault(status, None, times, path_contains, "Internal Server Error"))

    def reject_key(self, times: int | None = None) -> None:
        """Requests answer 401 as for a revoked API key (every one, unless ``times``)."""
        self._add(Fault(401, None, times, "", "Invalid API key"))

    def forbid(self, times: int | None = None, path_contains: str = "") -> None:
        """Requests answer 403 as for a key whose user lacks permission."""
        self._add(Fault(403, None, times, path_contains, "Forbidden"))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._rules.append(fault)

    def next(self, path: str) -> Fault | None:
        """The fault answering this request, if one is armed (consulted once per request)."""
        with self._lock:
            for rule in self._rules:
                if rule.path_contains in path:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
            return None


def _text(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)
