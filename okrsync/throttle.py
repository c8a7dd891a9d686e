"""How often a caller may try: the sign-in throttle (per user name and client address) and the
per-user rate limit of drill-down and export requests. Both keep recent attempts in bounded maps
(cachetools' TTLCache: a fixed number of keys, each forgotten a window after its last attempt), so a
flood of made-up names or addresses cannot grow the server's memory.

Why not the ``limits`` package: its memory storage is bounded in time only, not in size."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cachetools import TTLCache

# The web app's defaults, per user (okrsync serve --drill-per-minute, --exports-per-minute).
DRILL_PER_MINUTE = 120
EXPORTS_PER_MINUTE = 10


class Window:
    """The times of the last ``limit`` attempts of each key within ``seconds``, for at most ``keys``
    keys (the least recently tried are dropped first when full)."""

    def __init__(self, limit: int, seconds: float, keys: int, clock: Callable[[], float]) -> None:
        from cachetools import TTLCache  # the web app's; `okrsync status` only reads the defaults above

        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._seen: TTLCache[Hashable, deque[float]] = TTLCache(maxsize=keys, ttl=seconds, timer=clock)
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        q = self._seen.get(key) or deque(maxlen=self.limit)
        while q and now - q[0] >= self.seconds:
            q.popleft()
        return q

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            return self.seconds - (now - q[0]) if len(q) >= self.limit else 0.0

    def add(self, key: Hashable) -> bool:
        """Count an attempt; True when it is the one that used up the window."""
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            q.append(now)
            self._seen[key] = q  # (re)set: the key lives a window past its last attempt
            return len(q) >= self.limit

    def take(self, key: Hashable) -> float:
        """Count an attempt if the window allows it and return 0; else the seconds to wait."""
        with self._lock:
            now = self.clock()
            q = self._recent(key, now)
            if len(q) >= self.limit:
                return self.seconds - (now - q[0])
            q.append(now)
            self._seen[key] = q
            return 0.0

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            self._seen.expire()
            return len(self._seen)


@dataclass
class Throttle:
    """Failed sign-ins: ``attempts`` failures for one user name from one address within ``window``
    seconds close that pair for the rest of the window. Another address (the real user's) is not
    affected, so a stranger cannot lock a user out. One address failing ``per_address`` times across
    any names is closed too: that bounds guessing across names, and keeps one address from flushing
    its own pairs out of the bounded map."""

    attempts: int = 5
    window: float = 300.0
    per_address: int = 100
    keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _pairs: Window = field(init=False, repr=False)
    _addresses: Window = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pairs = Window(self.attempts, self.window, self.keys, self.clock)
        self._addresses = Window(self.per_address, self.window, self.keys, self.clock)

    def blocked_for(self, name: str, address: str) -> float:
        """Seconds until ``name`` may try again from ``address`` (0: now)."""
        return max(self._pairs.wait((name, address)), self._addresses.wait(address))

    def failed(self, name: str, address: str) -> bool:
        """Count a failure; True when it closed the pair or the address (worth a log line)."""
        closed_pair = self._pairs.add((name, address))
        closed_address = self._addresses.add(address)
        return closed_pair or closed_address

    def succeeded(self, name: str, address: str) -> None:
        self._pairs.forget((name, address))

    def size(self) -> int:
        """Keys held (for tests: it never passes ``2 × keys``)."""
        return len(self._pairs) + len(self._addresses)


@dataclass
class RateLimit:
    """At most ``requests`` per ``seconds`` for each key (user and kind of request)."""

    requests: int
    seconds: float = 60.0
    keys: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _window: Window = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._window = Window(self.requests, self.seconds, self.keys, self.clock)

    def take(self, key: Hashable) -> float:
        """Count a request if allowed and return 0; else the seconds to wait (not counted)."""
        return self._window.take(key)
