"""Salesforce-style record ids: 15-character case-sensitive ids plus the 3-character checksum suffix."""

from __future__ import annotations

import itertools
import threading

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

KEY_PREFIXES: dict[str, str] = {
    "User": "005",
    "Account": "001",
    "Opportunity": "006",
    "Lead": "00Q",
    "Case": "500",
    "DatedConversionRate": "04w",
    "Organization": "00D",
    "QueryLocator": "01g",
    "BulkJob": "750",
}


def checksum_suffix(id15: str) -> str:
    """The 3 characters Salesforce appends to a 15-character id to make it case-insensitive-safe."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(id15: str) -> str:
    if len(id15) == 18:
        return id15
    if len(id15) != 15:
        raise ValueError(f"not a Salesforce id: {id15!r}")
    return id15 + checksum_suffix(id15)


def _base62(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "".join(reversed(chars))


class IdFactory:
    """Deterministic, thread-safe id generator: prefix + pod '5g' + '0' + base62 counter + checksum."""

    def __init__(self, start: int = 1) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._start = start
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(self._start))
            n = next(counter)
        # mix in a multiplier so consecutive ids exercise upper/lower case (and thus the checksum)
        return to18(prefix + "5g0" + _base62(n * 7919 + 3844, 9))
