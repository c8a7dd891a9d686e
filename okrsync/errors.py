"""The one exception hierarchy of okrsync.

Every message says what happened, where (file:line, source/stream/record) and what to do next.
The CLI maps ``exit_code`` to the process exit status; users see the message, not a traceback.
A misspelt name gets its suggestion from :func:`did_you_mean`, the same everywhere.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Self


class OkrsyncError(Exception):
    """Base class: a failure okrsync understands and can explain.

    ``source``, ``stream`` and ``record`` say where it happened; :attr:`message` renders them once, in
    front of the reason (``source 'erp', stream 'orders', record 42: …``). A layer that knows more of
    the place adds it with :meth:`at`, which never overwrites what a lower layer already set.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, source: str | None = None,
                 stream: str | None = None, record: object = None) -> None:
        self.reason = message
        self.hint = hint
        self.source = source
        self.stream = stream
        self.record = record
        super().__init__(self.message)

    @property
    def location(self) -> str:
        """``source 'erp', stream 'orders', record 42`` — the parts known, or ``""``."""
        parts = [f"source {self.source!r}" if self.source else "",
                 f"stream {self.stream!r}" if self.stream else "",
                 f"record {self.record}" if self.record is not None else ""]
        return ", ".join(p for p in parts if p)

    @property
    def message(self) -> str:
        where = self.location
        return f"{where}: {self.reason}" if where else self.reason

    def at(self, *, source: str | None = None, stream: str | None = None, record: object = None) -> Self:
        """Fill in where it happened (only what is not set yet); returns the error, to ``raise … from``."""
        self.source = self.source or source
        self.stream = self.stream or stream
        self.record = self.record if self.record is not None else record
        self.args = (self.message,)
        return self

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keep hint, transient, the location… when a task's error crosses processes (Dask task runner).
        return _rebuild, (type(self), self.message, dict(self.__dict__))


def _rebuild(cls: type[OkrsyncError], message: str, state: dict[str, object]) -> OkrsyncError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(OkrsyncError):
    """The project file (or a command's arguments) is wrong. Exit status 2."""

    exit_code = 2


class SourceError(OkrsyncError):
    """A source could not be read. ``transient`` errors are worth a retry."""

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False,
                 source: str | None = None, stream: str | None = None, record: object = None) -> None:
        super().__init__(message, hint=hint, source=source, stream=stream, record=record)
        self.transient = transient


class StoreError(OkrsyncError):
    """The OKR store could not be opened, migrated or written."""


class MetricError(OkrsyncError):
    """A metric could not be evaluated (for example a column changed type at the source)."""


class NotFound(OkrsyncError):
    """A key result, value or record asked for does not exist. Exit status 2 (bad argument)."""

    exit_code = 2


class CheckFailed(OkrsyncError):
    """A blocking data-quality check failed; dependent key results were held."""


class RunFailed(OkrsyncError):
    """A run finished with failures; key results kept their last good values."""


class LeaseLost(StoreError):
    """This run no longer holds its project's lease (it stalled past it and another run took over):
    it must change nothing more."""


class LeaseBusy(StoreError):
    """Another live run of the project holds the lease and did not finish in time."""


def close_matches(word: str, candidates: Iterable[str], *, n: int = 3, cutoff: float = 0.6,
                  prefix: bool = False) -> list[str]:
    """The candidates ``word`` was probably meant to be: the same name in another case, else the closest
    spellings (difflib, at most ``n``), else with ``prefix`` a candidate it is the start of (``total`` for
    ``total_amount``). The one rule behind every "did you mean" okrsync prints."""
    names = list(dict.fromkeys(candidates))
    same = [c for c in names if c.lower() == word.lower()]
    hits = same or difflib.get_close_matches(word, names, n=n, cutoff=cutoff)
    if not hits and prefix and len(word) >= 3:
        hits = [c for c in names if c.lower().startswith(word.lower())]
    return hits[:n]


def did_you_mean(word: str, candidates: Iterable[str], *, n: int = 3, cutoff: float = 0.6,
                 prefix: bool = False) -> str:
    """`` (did you mean 'x', 'y'?)`` for :func:`close_matches`, or ``""`` when nothing is close."""
    hits = close_matches(word, candidates, n=n, cutoff=cutoff, prefix=prefix)
    return f" (did you mean {', '.join(map(repr, hits))}?)" if hits else ""
