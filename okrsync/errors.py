"""The one exception hierarchy of okrsync.

Every message says what happened, where (file:line, source/stream/record) and what to do next.
The CLI maps ``exit_code`` to the process exit status; users see the message, not a traceback.
"""

from __future__ import annotations


class OkrsyncError(Exception):
    """Base class: a failure okrsync understands and can explain."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  → {self.hint}" if self.hint else self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keep hint, transient… when a task's error crosses processes (Prefect's Dask task runner).
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

    def __init__(self, message: str, *, hint: str | None = None, transient: bool = False) -> None:
        super().__init__(message, hint=hint)
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
