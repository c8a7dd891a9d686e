"""HR systems as a source (``kind: hr``): one connector kind, the system picked by ``system:``.

* ``system: bamboohr`` — :mod:`connectors.hr.bamboohr` (the employees report, incremental on
  ``lastChanged``, deletions as tombstones);
* ``system: files`` — :mod:`connectors.hr.files` (CSV/XLSX exports in a folder, incremental by file).

HR data is personal data: neither system logs a value or puts one in an error message; streams should list
names, pay, birth dates and termination reasons under ``sensitive:`` so that the store seals them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from connectors.base import SourceConnector, StreamSpec, Watermark
from connectors.hr.bamboohr import BambooHr
from connectors.hr.files import HrFiles
from connectors.hr.options import BambooHrOptions, HrFilesOptions, HrOptions, HrStreamOptions
from connectors.kit.options import validated
from okrsync.schema import StreamSchema

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd


class HrConnector(SourceConnector):
    """One HR source. Cheap to create: BambooHR is called, and files are read, on first use."""

    kind: ClassVar[str] = "hr"
    Options: ClassVar[type[BaseModel]] = HrOptions
    StreamOptions: ClassVar[type[BaseModel]] = HrStreamOptions
    # Every record is a person (an employee, a candidate): values over few of them are withheld
    # from roles that may not see personal data (okrsync.small_groups).
    personal_data: ClassVar[bool] = True

    def __init__(self, name: str, options: HrOptions | BambooHrOptions | HrFilesOptions | Mapping[str, Any],
                 base_dir: Path, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] | None = None) -> None:
        self.name, self.base_dir = name, base_dir
        if isinstance(options, HrOptions):
            options = options.settings
        if not isinstance(options, BambooHrOptions | HrFilesOptions):
            hint = "see docs/hr.md for the keys of `system: bamboohr` and `system: files`"
            options = validated(HrOptions, dict(options), where=f"source {name!r}", hint=hint,
                                hide=("bamboohr", "files")).settings
        self.options: BambooHrOptions | HrFilesOptions = options
        self.system: BambooHr | HrFiles
        if isinstance(options, BambooHrOptions):
            self.system = BambooHr(name, options, base_dir, sleep, now)
        else:
            self.system = HrFiles(name, options, base_dir)
        # Deletion defaults depend on the system (and a files source's mode), so they are per instance.
        self.default_deletes = self.system.default_deletes
        self.default_reconcile_every_hours = self.system.default_reconcile_every_hours
        self.reports_deletions = True  # BambooHR's tombstones; a files source says why it has none

    @property
    def api_calls(self) -> int | None:
        """Requests sent to BambooHR (None for a folder of files)."""
        return self.system.api_calls if isinstance(self.system, BambooHr) else None

    def check(self) -> None:
        self.system.check()

    def schema(self, stream: StreamSpec) -> StreamSchema:
        return self.system.schema(stream)

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return self.system.read(stream, since)

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        return self.system.deleted(stream, since)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        return self.system.keys(stream)

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return self.system.record_url(stream, record_id)

    def close(self) -> None:
        self.system.close()
