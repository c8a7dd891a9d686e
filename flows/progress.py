"""How a run reports progress to whoever watches it (the CLI's rich progress, or nobody)."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def stream_started(self, stream: str) -> None: ...
    def stream_rows(self, stream: str, rows: int) -> None: ...
    def stream_finished(self, stream: str, summary: str, ok: bool) -> None: ...
    def metrics_started(self, count: int) -> None: ...
    def metric_done(self, kr_id: str, summary: str) -> None: ...


class Silent:
    def stream_started(self, stream: str) -> None:
        pass

    def stream_rows(self, stream: str, rows: int) -> None:
        pass

    def stream_finished(self, stream: str, summary: str, ok: bool) -> None:
        pass

    def metrics_started(self, count: int) -> None:
        pass

    def metric_done(self, kr_id: str, summary: str) -> None:
        pass


reporter: Reporter = Silent()  # the CLI swaps in its own for the duration of a run
