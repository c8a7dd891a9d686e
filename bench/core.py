"""Measuring helpers (wall time, peak RSS), the machine description and the result records."""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


# ---- time ------------------------------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch() as sw: …`` then ``sw.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def median_of(n: int, fn: Callable[[], T]) -> tuple[T, float, list[float]]:
    """Run ``fn`` ``n`` times; (last result, median seconds, all seconds)."""
    times: list[float] = []
    out: T | None = None
    for _ in range(n):
        out, s = timed(fn)
        times.append(s)
    assert out is not None
    return out, statistics.median(times), times


# ---- memory ----------------------------------------------------------------------------------------


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssProbe:
    """Peak resident set size of this process over a phase.

    On Linux the kernel's high-water mark (``VmHWM``) is reset at the start of each phase by writing
    ``5`` to ``/proc/self/clear_refs``, so each phase gets its own peak. Elsewhere ``ru_maxrss`` is used
    (a process-wide peak that never goes down: ``resettable`` is then False).
    """

    def __init__(self) -> None:
        self.resettable = self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kb("VmHWM") is not None

    def current_mb(self) -> float:
        kb = _status_kb("VmRSS")
        return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024

    def peak_mb(self) -> float:
        kb = _status_kb("VmHWM") if self.resettable else None
        return (kb if kb is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


@dataclass
class Memory:
    start_mb: float = 0.0
    peak_mb: float = 0.0

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@contextmanager
def peak_rss() -> Iterator[Memory]:
    """``with peak_rss() as mem: …`` then ``mem.peak_mb`` / ``mem.growth_mb`` (over the RSS at entry)."""
    gc.collect()
    probe = RssProbe()
    mem = Memory(start_mb=probe.current_mb())
    try:
        yield mem
    finally:
        mem.peak_mb = probe.peak_mb()


# ---- machine ---------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "packages": {
            d: _version(d) for d in ("okrsync", "pandas", "numpy", "sqlalchemy", "psycopg", "prefect")
        },
    }


# ---- results ---------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table: okrsync's number, a baseline's, and their ratio.

    ``ratio`` is always a *cost* ratio, okrsync ÷ baseline: for seconds and MB the quotient of the two
    values, for throughputs (``higher_is_better``) its inverse. Above 1: okrsync costs that many times
    what the baseline does.
    """

    phase: str
    metric: str
    value: float | None
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    note: str = ""
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if not self.value or not self.baseline_value:
            return None
        if self.higher_is_better:
            return self.baseline_value / self.value
        return self.value / self.baseline_value

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"ratio": self.ratio}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "results": [r.to_json() for r in self.rows],
            "checks": [asdict(c) for c in self.checks],
            "all_checks_ok": self.ok,
            "sync_breakdown_seconds": self.breakdown,
            "extra": self.extra,
        }
