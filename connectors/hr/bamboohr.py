"""BambooHR employees as a stream (``system: bamboohr``, ``report: employees``).

How a sync reads (docs/hr.md has the user's view):

* A full read is one custom report, ``POST reports/custom?format=JSON&onlyCurrent=false`` with the BambooHR
  fields behind the stream's kept columns only (data minimisation): every employee, active or not. Custom
  reports are not paged; the rows are ordered by (lastChanged, id) and yielded in ``batch_size`` frames.
* An incremental read asks ``GET employees/changed?since=…`` (the watermark's lastChanged, one second
  earlier, minus ``lookback_seconds``) which employees changed, then fetches only those with the same report
  restricted to their ids (``filters.employeeIds``, ``ids_per_request`` at a time), and keeps the rows after
  the watermark. No change: one call.
* ``deleted`` reports the employees ``employees/changed`` lists with action ``Deleted`` (tombstones), reusing
  the answer the read just fetched. ``keys`` (the weekly reconciliation) is a one-field report of every id.
* Fields BambooHR silently leaves out of a report (the key's user may not see them) fail the read, naming
  them: a missing salary column must not look like empty salaries.

Columns: ``terminationType`` and ``terminationReason`` are the labels of BambooHR's ``terminationTypeId``
and ``terminationReasonId`` list fields; ``terminationKind`` (voluntary, involuntary, other) is derived
from the type (see :class:`~connectors.hr.options.TerminationTypes`). ``payRate`` ("85000.00 USD") is
split into ``payRate`` (Decimal, 2 places) and ``payRateCurrency``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import DeletePolicy, StreamSpec, Watermark
from connectors.hr.ats import BambooHrAts
from connectors.hr.bamboohr_client import BambooHrClient
from connectors.hr.options import BambooHrOptions, stream_options
from connectors.kit.cursor import Incremental
from connectors.kit.values import Unconvertible, exact_decimal, id_frame, naive_utc, typed_frame
from okrsync.errors import ConfigError, SourceError, did_you_mean
from okrsync.schema import Field, FieldType, StreamSchema

if TYPE_CHECKING:  # imported where a read builds frames: loading a project file needs no pandas
    import pandas as pd

_T = FieldType


@dataclass(frozen=True)
class _Column:
    field: Field
    source: str | None  # the logical BambooHR field it comes from (None: the record id)


def _col(name: str, kind: FieldType, source: str | None, scale: int | None = None) -> _Column:
    return _Column(Field(name, kind, scale), source)


EMPLOYEE_COLUMNS: tuple[_Column, ...] = (
    _col("id", _T.INTEGER, None),
    _col("firstName", _T.STRING, "firstName"),
    _col("lastName", _T.STRING, "lastName"),
    _col("department", _T.STRING, "department"),
    _col("division", _T.STRING, "division"),
    _col("location", _T.STRING, "location"),
    _col("jobTitle", _T.STRING, "jobTitle"),
    _col("status", _T.STRING, "status"),
    _col("hireDate", _T.DATE, "hireDate"),
    _col("terminationDate", _T.DATE, "terminationDate"),
    _col("terminationType", _T.STRING, "terminationType"),
    _col("terminationKind", _T.STRING, "terminationType"),
    _col("terminationReason", _T.STRING, "terminationReason"),
    _col("dateOfBirth", _T.DATE, "dateOfBirth"),
    _col("payRate", _T.DECIMAL, "payRate", 2),
    _col("payRateCurrency", _T.STRING, "payRate"),
    _col("payPer", _T.STRING, "payPer"),
    _col("lastChanged", _T.DATETIME, "lastChanged"),
)
COLUMNS_BY_NAME = {c.field.name: c for c in EMPLOYEE_COLUMNS}
# Our logical field → the BambooHR field id requested by default (``field_ids`` overrides it).
DEFAULT_FIELD_IDS = {
    "firstName": "firstName", "lastName": "lastName", "department": "department", "division": "division",
    "location": "location", "jobTitle": "jobTitle", "status": "status", "hireDate": "hireDate",
    "terminationDate": "terminationDate", "terminationType": "terminationTypeId",
    "terminationReason": "terminationReasonId", "dateOfBirth": "dateOfBirth", "payRate": "payRate",
    "payPer": "payPer", "lastChanged": "lastChanged",
}
CURSOR = "lastChanged"
_PAY = re.compile(r"^(-?\d{1,15}(?:\.\d+)?)(?:\s*([A-Z]{3}))?$")
_ID = re.compile(r"^\d{1,18}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NO_DATE = ("", "0000-00-00")
_EPOCH = datetime.min


@dataclass(frozen=True)
class _Change:
    id: int
    action: str
    last_changed: datetime | None


class _BadValue(ValueError):
    pass


class BambooHr:
    """The ``system: bamboohr`` half of :class:`~connectors.hr.HrConnector`."""

    default_deletes: ClassVar[DeletePolicy] = "tombstones"
    default_reconcile_every_hours: ClassVar[float] = 168

    def __init__(self, name: str, options: BambooHrOptions, base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] | None = None) -> None:
        self.name, self.options = name, options
        unknown = [k for k in options.field_ids if k not in DEFAULT_FIELD_IDS]
        if unknown:
            raise ConfigError(f"source {name!r}: field_ids: {unknown[0]!r} is not a column of the employees "
                              f"report{did_you_mean(unknown[0], DEFAULT_FIELD_IDS)}",
                              hint=f"columns: {', '.join(DEFAULT_FIELD_IDS)}")
        self.field_ids = DEFAULT_FIELD_IDS | options.field_ids
        self.client = BambooHrClient(name, options, base_dir, sleep, now)
        self.ats = BambooHrAts(name, self.client, options.hired_statuses)
        self._changed_cache: dict[tuple[str, str], list[_Change]] = {}

    @property
    def api_calls(self) -> int:
        return self.client.calls

    # -- the Connector protocol --------------------------------------------------------------------

    def check(self) -> None:
        """One call that reads no personal data: the account's field list."""
        self.client.get("meta/fields", "checking the connection")

    def schema(self, stream: StreamSpec) -> StreamSchema:
        if (report := _ats(self.name, stream)) is not None:
            return self.ats.schema(stream, report)
        self._check(stream)
        return StreamSchema(tuple(c.field for c in EMPLOYEE_COLUMNS))

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        if (report := _ats(self.name, stream)) is not None:
            yield from self.ats.read(stream, report)  # no cursor: always the whole list
            return
        kept = stream.kept_fields(self.schema(stream))
        # Only what the stream keeps is asked for (data minimisation), plus the id and the order's cursor.
        needed = [c for c in EMPLOYEE_COLUMNS if c.field.name in {*kept, "id", CURSOR}]
        # Rows at or before the watermark were read; with lookback_seconds the window is read again.
        window = Incremental.of(stream, since, _T.DATETIME)
        if window.full:
            records = self._report(stream, needed, None)
        else:
            changes = self._changes(stream, window, cache=True)
            ids = sorted({c.id for c in changes if c.action.lower() != "deleted" and (
                c.last_changed is None or window.keeps(c.last_changed, (c.id,)))})
            records = []
            step = self.options.ids_per_request
            for start in range(0, len(ids), step):
                records += self._report(stream, needed, ids[start:start + step])
        names = [c.field.name for c in needed]
        rows = [self._row(stream, needed, r) for r in records]
        by_id = {row[0]: row for row in rows}  # one row per employee, should an answer repeat one
        at = names.index(CURSOR)
        ordered = sorted(by_id.values(), key=lambda row: (row[at] or _EPOCH, row[0]))
        ordered = [row for row in ordered if window.keeps(row[at], (row[0],))]
        positions = [names.index(k) for k in kept]
        fields = [COLUMNS_BY_NAME[k].field for k in kept]
        for start in range(0, len(ordered), stream.batch_size):
            batch = ordered[start:start + stream.batch_size]
            yield typed_frame(fields, [[row[p] for row in batch] for p in positions])

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """Ids of employees BambooHR reports as deleted since the watermark; nothing on a full read."""
        if _ats(self.name, stream) is None:
            self._check(stream)
        window = Incremental.of(stream, since, _T.DATETIME)
        if window.full:
            return
        changes = self._changes(stream, window, cache=False)
        gone = sorted({c.id for c in changes if c.action.lower() == "deleted"})
        if gone:
            yield id_frame(gone)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        if (report := _ats(self.name, stream)) is not None:
            yield from self.ats.keys(stream, report)
            return
        self._check(stream)
        records = self._report(stream, [COLUMNS_BY_NAME[CURSOR]], None)
        if not records:  # reconciling against nothing would delete every employee
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: BambooHR listed no employee at "
                              "all; not taking that as everyone deleted", transient=True,
                              hint="check the API key's user can see employees; the next run tries again")
        ids = sorted({self._id(stream, r) for r in records})
        for start in range(0, len(ids), stream.batch_size):
            yield id_frame(ids[start:start + stream.batch_size])

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        if not _ID.match(record_id) or _ats(self.name, stream) is not None:
            return None
        return f"https://{self.options.company_domain}.bamboohr.com/employees/employee.php?id={record_id}"

    def close(self) -> None:
        self.client.close()
        self._changed_cache.clear()

    # -- planning ----------------------------------------------------------------------------------

    def _check(self, stream: StreamSpec) -> None:
        """Check the stream's declarations against the report's columns."""
        where = f"source {self.name!r}, stream {stream.name!r}"
        so = stream_options(self.name, stream)
        if so.report is None:
            raise ConfigError(f"{where}: a BambooHR stream names its report",
                              hint="write `report: employees`")
        if stream.primary_key != ("id",):
            raise ConfigError(f"{where}: the primary key of the BambooHR employees report is id",
                              hint="write `primary_key: id`")
        if stream.cursor not in ((), (CURSOR,)):
            raise ConfigError(f"{where}: the cursor of the BambooHR employees report is lastChanged",
                              hint="write `cursor: lastChanged` (it moves with every change to an employee)")
        for name in (*(stream.fields or ()), *stream.cursor):
            if name not in COLUMNS_BY_NAME:
                raise ConfigError(f"{where}: the employees report has no field {name!r}"
                                  f"{did_you_mean(name, COLUMNS_BY_NAME)}",
                                  hint=f"fields: {', '.join(COLUMNS_BY_NAME)}")

    # -- calls -------------------------------------------------------------------------------------

    def _report(self, stream: StreamSpec, wanted: Sequence[_Column],
                ids: list[int] | None) -> list[dict[str, Any]]:
        """The employees of one custom report (every one, or only ``ids``)."""
        field_ids = list(dict.fromkeys(self.field_ids[c.source] for c in wanted if c.source is not None))
        body: dict[str, Any] = {"title": "okrsync", "fields": field_ids}
        if ids is not None:
            body["filters"] = {"employeeIds": ids}
        what = f"stream {stream.name!r}: custom report"
        params = {"format": "JSON", "onlyCurrent": "false"}  # onlyCurrent=false: future-dated changes too
        data = self.client.post("reports/custom", what, body, params=params)
        if not isinstance(data, dict) or not isinstance(data.get("employees"), list):
            raise SourceError(f"source {self.name!r}: {what}: the answer has no list of employees",
                              hint="check base_url: it must be the BambooHR API "
                              "(…/api/gateway.php/{company}/v1/)")
        employees: list[dict[str, Any]] = [e for e in data["employees"] if isinstance(e, dict)]
        if len(employees) != len(data["employees"]):
            raise SourceError(f"source {self.name!r}: {what}: an employee entry is not an object",
                              hint="check base_url")
        listed = {str(f.get("id")) for f in data.get("fields") or [] if isinstance(f, dict)}
        listed |= {str(f.get("alias")) for f in data.get("fields") or [] if isinstance(f, dict)}
        seen = set(employees[0]) if employees else set()
        missing = [f for f in field_ids if f not in listed and f not in seen]
        if missing:
            ours = [c.field.name for c in wanted if c.source and self.field_ids[c.source] in missing]
            raise SourceError(
                f"source {self.name!r}: {what}: BambooHR left out field(s) {', '.join(missing)} (columns "
                f"{', '.join(ours)}): the API key's user may not see them, or the account has no such field",
                hint="give that user access to these fields in BambooHR, map them with `field_ids`, or leave "
                "them out of the stream's `fields`")
        return employees

    def _changes(self, stream: StreamSpec, window: Incremental, cache: bool) -> list[_Change]:
        """``employees/changed`` since the window's start (one second earlier: whole seconds)."""
        lower = window.start - timedelta(seconds=1)
        text = lower.strftime("%Y-%m-%dT%H:%M:%SZ")
        key = (stream.name, text)
        if not cache and key in self._changed_cache:
            return self._changed_cache.pop(key)  # what the read just fetched: one call per sync
        what = f"stream {stream.name!r}: changed employees"
        data = self.client.get("employees/changed", what, params={"since": text})
        entries = data.get("employees") if isinstance(data, dict) else None
        if isinstance(entries, dict):
            entries = list(entries.values())
        if entries is None or not isinstance(entries, list):
            raise SourceError(f"source {self.name!r}: {what}: the answer has no employees",
                              hint="check base_url: it must be the BambooHR API")
        changes = []
        for e in entries:
            if not isinstance(e, dict) or not _ID.match(str(e.get("id", ""))):
                raise SourceError(f"source {self.name!r}: {what}: an entry has no employee id",
                                  hint="check base_url")
            stamp = e.get("lastChanged")
            try:
                last = _timestamp(stamp) if stamp else None
            except _BadValue:
                raise SourceError(f"source {self.name!r}: {what}: employee {e['id']}: lastChanged is not a "
                                  "timestamp", hint="report it to BambooHR support") from None
            changes.append(_Change(int(str(e["id"])), str(e.get("action") or ""), last))
        if cache:
            self._changed_cache[key] = changes
        return changes

    # -- values ------------------------------------------------------------------------------------

    def _id(self, stream: StreamSpec, record: dict[str, Any]) -> int:
        raw = record.get("id")
        if raw is None or not _ID.match(str(raw)):
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: an employee in the report has "
                              "no numeric id", hint="check base_url: it must be the BambooHR API")
        return int(str(raw))

    def _row(self, stream: StreamSpec, columns: Sequence[_Column], record: dict[str, Any]) -> list[Any]:
        emp = self._id(stream, record)
        out: list[Any] = []
        for c in columns:
            name = c.field.name
            if c.source is None:
                out.append(emp)
                continue
            raw = record.get(self.field_ids[c.source])
            try:
                out.append(self._value(name, raw))
            except (_BadValue, ValueError, InvalidOperation):
                raise SourceError(f"source {self.name!r}, stream {stream.name!r}: employee {emp}: field "
                                  f"{name!r} does not hold a {_describe(c.field)}",
                                  hint="fix the employee in BambooHR, or leave the field out of the stream's "
                                  "`fields`") from None
        return out

    def _value(self, name: str, raw: Any) -> Any:
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        kind = COLUMNS_BY_NAME[name].field.type
        if name in ("payRate", "payRateCurrency"):
            amount, currency = _pay(raw)
            return amount if name == "payRate" else currency
        if name == "terminationKind":
            return self.options.termination_types.kind(_text(raw))
        if kind is _T.DATE:
            return _date(raw)
        if kind is _T.DATETIME:
            return _timestamp(raw)
        return _text(raw)


def _ats(source: str, stream: StreamSpec) -> str | None:
    """The applicant tracking report a stream reads (applications, jobs), or None for employees."""
    report = stream_options(source, stream).report
    return report if report in ("applications", "jobs") else None


def _describe(f: Field) -> str:
    if f.name == "payRate":
        return "pay rate such as '85000.00 USD'"
    return {_T.DATE: "date (YYYY-MM-DD)", _T.DATETIME: "timestamp (ISO 8601)"}.get(f.type, f.type.value)


def _text(raw: Any) -> str:
    if isinstance(raw, dict | list):
        raise _BadValue
    text = str(raw).strip()
    if "\x00" in text:
        raise _BadValue
    return text


def _date(raw: Any) -> date | None:
    text = _text(raw)
    if text in _NO_DATE:  # BambooHR writes an unset date as 0000-00-00
        return None
    if not _DATE.match(text):
        raise _BadValue
    return date.fromisoformat(text)


def _timestamp(raw: Any) -> datetime:
    try:
        return naive_utc(_text(raw))  # BambooHR timestamps are UTC when naive
    except Unconvertible:
        raise _BadValue from None


def _pay(raw: Any) -> tuple[Decimal | None, str | None]:
    """``"85000.00 USD"`` → (Decimal('85000.00'), 'USD'); a value that would lose cents is refused."""
    m = _PAY.match(_text(raw))
    if m is None:
        raise _BadValue
    try:
        return exact_decimal(m.group(1), 2, strict=True), m.group(2)
    except Unconvertible:
        raise _BadValue from None
