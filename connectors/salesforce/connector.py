"""Salesforce objects as streams, through simple-salesforce.

How a sync reads (see docs/connectors.md for the user's view):

* ``read`` sends one SOQL query ordered by (cursor, Id) — ``SystemModstamp >= watermark − lookback`` on
  incremental runs — and pages through ``nextRecordsUrl`` one page at a time. If the first page says the
  result holds more than ``bulk_threshold`` rows, the same query runs as one Bulk API 2.0 job instead and
  its CSV pages are read locator by locator (each retried alone, each checked against its row count).
  A failed Bulk job falls back to REST.
* ``deleted`` asks ``queryAll`` for records with ``IsDeleted = true`` changed since the watermark: the
  store closes their versions (tombstones), one query per sync instead of reading every Id. Records purged
  from the recycle bin are caught by the periodic key reconciliation (``keys``), weekly by default.
* A query locator that expired mid-read (``INVALID_QUERY_LOCATOR``) restarts the query after the last row
  read (keyset on cursor and Id); nothing is read twice into a batch and nothing is skipped.
* ``api_calls`` counts requests to ``/services/data/`` (what the org counts against its daily limit).
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ValidationError
from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation

from connectors.base import StreamSpec, Watermark
from connectors.salesforce import soql
from connectors.salesforce.client import LocatorExpired, SfClient
from connectors.salesforce.options import SalesforceOptions, SalesforceStreamOptions
from connectors.salesforce.values import (
    BadValue,
    SfField,
    csv_rows,
    field_of,
    frame,
    json_rows,
    parse_datetime,
)
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import Field, FieldType, StreamSchema

MAX_STALLED_RESTARTS = 3
VALIDATE = "run `okrsync validate --check-sources` to compare the stream with the object's describe"


@dataclass(frozen=True)
class _Plan:
    obj: str
    fields: dict[str, SfField]  # every column the stream may keep, by name
    converted: dict[str, str]  # converted column → source amount field
    date_field: str | None
    where: str | None
    has_currency: bool
    deletable: bool


@dataclass
class _Read:
    """One extraction: the query, the columns asked for, and the keyset position reached."""

    soql: str
    paths: list[str]
    order: list[str]
    include_deleted: bool = False
    last: tuple[Any, ...] | None = None
    floor: datetime | None = None  # once a second was finished by Id: restart at this cursor value
    rows: int = 0
    buffer: list[list[Any]] = field(default_factory=list)


class SalesforceConnector:
    """One org. Cheap to create; logs in on first use."""

    kind: ClassVar[str] = "salesforce"
    Options: ClassVar[type[BaseModel]] = SalesforceOptions
    StreamOptions: ClassVar[type[BaseModel]] = SalesforceStreamOptions
    # Deleted records are reported by the source (queryAll); every Id is compared once a week.
    default_deletes: ClassVar[str] = "tombstones"
    default_reconcile_every_hours: ClassVar[float] = 168

    def __init__(self, name: str, options: SalesforceOptions | Mapping[str, Any], base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        try:
            self.options = (options if isinstance(options, SalesforceOptions)
                            else SalesforceOptions.model_validate(options))
        except ValidationError as exc:
            raise ConfigError(f"source {name!r}: {_errors(exc)}",
                              hint="see the salesforce source keys in docs/connectors.md") from None
        self.client = SfClient(name, self.options, base_dir, sleep)
        self._describes: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, _Plan] = {}
        self._rates: list[tuple[str, Decimal, date, date]] | None = None
        self.bulk_jobs = 0
        self.notes: list[str] = []  # what the connector decided (fallbacks), for the run's log

    @property
    def api_calls(self) -> int:
        return self.client.calls

    # -- the Connector protocol -------------------------------------------------------------------------

    def check(self) -> None:
        """Log in and read the org's limits (one API call)."""
        self.client.call("checking the connection", lambda sf: sf.limits())

    def schema(self, stream: StreamSpec) -> StreamSchema:
        self._plans.pop(stream.name, None)
        return StreamSchema(tuple(f.field for f in self._plan(stream).fields.values()))

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        plan = self._plan(stream)
        kept = stream.kept_fields(StreamSchema(tuple(f.field for f in plan.fields.values())))
        paths = self._query_paths(plan, kept)
        conditions = [plan.where] if plan.where else []
        if since is not None and stream.cursor:
            lower = _as_datetime(since.cursor) - timedelta(seconds=stream.lookback_seconds)
            conditions.append(f"{stream.cursor[0]} >= {soql.literal(lower.replace(microsecond=0))}")
        order = [*stream.cursor[:1], "Id"]
        read = _Read(soql.select(plan.obj, paths, conditions, order), paths, order)
        if since is not None and stream.cursor and not stream.lookback_seconds:
            # SOQL datetimes stop at the second: skip what was read up to the watermark itself.
            read.last = (_as_datetime(since.cursor), *since.key)
        for rows in self._extract(stream, read):
            yield self._frame(stream, plan, paths, rows, kept)

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        """Ids of records deleted (recycle bin) since the watermark; nothing on a full read."""
        plan = self._plan(stream)
        if since is None or not stream.cursor or not plan.deletable:
            return
        lower = _as_datetime(since.cursor) - timedelta(seconds=stream.lookback_seconds)
        cursor = stream.cursor[0]
        conditions = ["IsDeleted = true", f"{cursor} >= {soql.literal(lower.replace(microsecond=0))}"]
        read = _Read(soql.select(plan.obj, ["Id", cursor], conditions, [cursor, "Id"]), ["Id", cursor],
                     [cursor, "Id"], include_deleted=True)
        for rows in self._extract(stream, read):
            yield pd.DataFrame({"Id": pd.Series([r[0] for r in rows], dtype="str")})

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        plan = self._plan(stream)
        text = soql.select(plan.obj, ["Id"], [plan.where] if plan.where else [], ["Id"])
        read = _Read(text, ["Id"], ["Id"])
        for rows in self._extract(stream, read):
            yield pd.DataFrame({"Id": pd.Series([r[0] for r in rows], dtype="str")})

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        """``{instance}/lightning/r/{Object}/{Id}/view`` (the instance from ``instance_url`` or
        ``login_url``; for a My Domain login, ``https://{domain}.salesforce.com``)."""
        o = self.options
        base = o.instance_url or o.login_url or (
            f"https://{o.domain}.salesforce.com" if o.domain not in ("login", "test") else None)
        if base is None:
            return None
        obj = SalesforceStreamOptions.model_validate(stream.options).object
        return f"{base}/lightning/r/{obj}/{record_id}/view"

    def close(self) -> None:
        self.client.close()

    # -- describing ---------------------------------------------------------------------------------------

    def _describe(self, obj: str, stream: StreamSpec) -> dict[str, Any]:
        if obj not in self._describes:
            def describe(sf: Salesforce) -> Any:
                return getattr(sf, obj).describe()

            try:
                self._describes[obj] = self.client.call(f"describing {obj}", describe)
            except SourceError as exc:
                if "NOT_FOUND" in exc.message:
                    raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: the org has no object "
                                      f"{obj!r} (or the integration user cannot see it)",
                                      hint="use the object's API name (custom objects end in __c)") from None
                raise
        return self._describes[obj]

    def _plan(self, stream: StreamSpec) -> _Plan:
        if stream.name in self._plans:
            return self._plans[stream.name]
        where = f"source {self.name!r}, stream {stream.name!r}"
        try:
            so = SalesforceStreamOptions.model_validate(stream.options)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {_errors(exc)}",
                              hint="a salesforce stream takes `object`, and optionally `where` and "
                              "`convert_currency`") from None
        if stream.primary_key != ("Id",):
            raise ConfigError(f"{where}: the primary key of a Salesforce stream is Id",
                              hint="write `primary_key: Id`")
        desc = self._describe(so.object, stream)
        own = {d["name"]: d for d in desc["fields"]}
        fields: dict[str, SfField] = {}
        for name, d in own.items():
            if (found := field_of(name, d)) is not None:
                fields[name] = found
        for path in [p for p in (stream.fields or ()) if "." in p]:
            fields[path] = self._related(stream, so.object, own, path)
        names = list(fields)
        for name in (*(stream.fields or ()), *stream.primary_key, *stream.cursor):
            if name not in fields and not (so.convert_currency and name in self._converted_names(so)):
                raise ConfigError(f"{where}: {so.object} has no field {name!r}{_did_you_mean(name, names)}",
                                  hint=VALIDATE)
        if len(stream.cursor) > 1 or (stream.cursor and fields[stream.cursor[0]].field.type
                                      is not FieldType.DATETIME):
            raise ConfigError(f"{where}: the cursor of a Salesforce stream is one datetime field",
                              hint="write `cursor: SystemModstamp` (it changes with every edit)")
        converted: dict[str, str] = {}
        date_field = None
        if so.convert_currency:
            cc = so.convert_currency
            for amount in cc.fields:
                if amount not in fields or fields[amount].field.type is not FieldType.DECIMAL:
                    raise ConfigError(f"{where}: convert_currency: {amount!r} is not a number field of "
                                      f"{so.object}{_did_you_mean(amount, names)}", hint=VALIDATE)
                col = f"{amount}_{self.options.currency}"
                converted[col] = amount
                scale = fields[amount].field.scale
                fields[col] = SfField(col, Field(col, FieldType.DECIMAL, scale), "currency")
            if cc.date_field is not None:
                if cc.date_field not in fields or not fields[cc.date_field].field.type.temporal:
                    raise ConfigError(f"{where}: convert_currency: date_field {cc.date_field!r} is not a "
                                      f"date or datetime field of {so.object}", hint=VALIDATE)
                date_field = cc.date_field
        clause = None
        if so.where is not None:
            try:
                clause = soql.where_clause(
                    so.where, lambda n: self._filter_field(stream, so.object, fields, n))
            except soql.FilterError as exc:
                raise ConfigError(f"{where}: where: {exc}", hint="a `where` filter has the shape of a "
                                  "metric's `filter`") from None
        plan = _Plan(so.object, fields, converted, date_field, clause, "CurrencyIsoCode" in own,
                     "IsDeleted" in own)
        self._plans[stream.name] = plan
        return plan

    def _converted_names(self, so: SalesforceStreamOptions) -> set[str]:
        cc = so.convert_currency
        return {f"{f}_{self.options.currency}" for f in cc.fields} if cc else set()

    def _filter_field(self, stream: StreamSpec, obj: str, fields: dict[str, SfField], name: str) -> str:
        if name not in fields or name in self._converted_names(
                SalesforceStreamOptions.model_validate(stream.options)):
            raise soql.FilterError(f"{obj} has no field {name!r}{_did_you_mean(name, list(fields))}")
        return name

    def _related(self, stream: StreamSpec, obj: str, own: dict[str, Any], path: str) -> SfField:
        """``Account.Name``: follow the relationship through the parent object's describe."""
        where = f"source {self.name!r}, stream {stream.name!r}"
        rel, _, rest = path.partition(".")
        by_rel = {d["relationshipName"]: d for d in own.values() if d.get("relationshipName")}
        ref = by_rel.get(rel)
        if ref is None or not ref.get("referenceTo"):
            raise ConfigError(f"{where}: {obj} has no relationship {rel!r}{_did_you_mean(rel, list(by_rel))}",
                              hint="relationship fields are written Relationship.Field, e.g. Account.Name")
        parent = self._describe(ref["referenceTo"][0], stream)
        parent_fields = {d["name"]: d for d in parent["fields"]}
        if "." in rest:
            inner = self._related(stream, parent["name"], parent_fields, rest)
            return SfField(path, Field(path, inner.field.type, inner.field.scale), inner.sf_type)
        d = parent_fields.get(rest)
        f = field_of(path, d) if d else None
        if f is None:
            raise ConfigError(f"{where}: {parent['name']} has no field {rest!r}"
                              f"{_did_you_mean(rest, list(parent_fields))}", hint=VALIDATE)
        return f

    def _query_paths(self, plan: _Plan, kept: Sequence[str]) -> list[str]:
        paths = [k for k in kept if k not in plan.converted]
        extra = list(plan.converted.values())
        if plan.converted:
            extra += ["CurrencyIsoCode"] if plan.has_currency else []
            extra += [plan.date_field] if plan.date_field else []
        return list(dict.fromkeys([*paths, *extra]))

    # -- extracting -----------------------------------------------------------------------------------

    def _extract(self, stream: StreamSpec, read: _Read) -> Iterator[list[list[Any]]]:
        """Rows of raw values in batches of ``stream.batch_size`` (REST, or Bulk 2.0 when large)."""
        first: dict[str, Any] | None = self._rest_first(stream, read)
        assert first is not None
        if first["totalSize"] > self.options.bulk_threshold and not first["done"]:
            start = read.last
            try:
                yield from self._bulk(stream, read)
                return
            except _BulkFailed as exc:
                self.notes.append(f"stream {stream.name!r}: Bulk API 2.0 job failed ({exc}); read over REST")
                if read.last != start:  # the job gave rows before failing: go on after them
                    first = None
        yield from self._rest(stream, read, first)

    def _rest_first(self, stream: StreamSpec, read: _Read) -> dict[str, Any]:
        headers = {"Sforce-Query-Options": f"batchSize={self.options.page_size}"}
        text = self._resumed(read)
        page: dict[str, Any] = self.client.call(
            f"stream {stream.name!r}: query",
            lambda sf: sf.query(text, include_deleted=read.include_deleted, headers=headers))
        return page

    def _pages(self, stream: StreamSpec, text: str, include_deleted: bool,
               page: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The records of each page of one query (``page``: its first page, if already fetched).
        Raises :class:`LocatorExpired` if the server forgot the cursor."""
        headers = {"Sforce-Query-Options": f"batchSize={self.options.page_size}"}
        if page is None:
            page = self.client.call(
                f"stream {stream.name!r}: query",
                lambda sf: sf.query(text, include_deleted=include_deleted, headers=headers))
        while True:
            assert page is not None
            yield page["records"]
            if page["done"]:
                return
            url: str = page["nextRecordsUrl"]

            def more(sf: Salesforce, url: str = url) -> dict[str, Any]:
                result: dict[str, Any] = sf.query_more(url, identifier_is_url=True, headers=headers)
                return result

            page = self.client.call(f"stream {stream.name!r}: next page", more)

    def _rest(self, stream: StreamSpec, read: _Read,
              page: dict[str, Any] | None) -> Iterator[list[list[Any]]]:
        stalled, resumed_at = 0, read.last
        while True:
            try:
                text = read.soql if page is not None else self._resumed(read)
                for records in self._pages(stream, text, read.include_deleted, page):
                    yield from self._take(stream, read, json_rows(records, read.paths))
                break
            except LocatorExpired:
                page = None
                stalled = stalled + 1 if read.last == resumed_at else 0
                self._stalled(stream, stalled)
                resumed_at = read.last
                self.notes.append(f"stream {stream.name!r}: query locator expired; resumed after the "
                                  "last row read")
                if read.last is not None and len(read.order) == 2:
                    yield from self._finish_second(stream, read)
        if read.buffer:
            yield read.buffer
            read.buffer = []

    def _stalled(self, stream: StreamSpec, times: int) -> None:
        if times >= MAX_STALLED_RESTARTS:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: the query locator expired "
                              f"{times} times without progress", transient=True,
                              hint="nothing was committed; the next run reads again from the last "
                              "committed position")

    def _finish_second(self, stream: StreamSpec, read: _Read) -> Iterator[list[list[Any]]]:
        """Read the rest of the second the last row belongs to, by Id, then go on after that second.

        SOQL compares datetimes to the whole second, so restarting at ``cursor >= last`` would re-read
        that second from its start: a mass update sharing one second could then never get past a cursor
        that keeps expiring. Within one second the Id is an exact keyset."""
        assert read.last is not None
        cursor, start = read.order[0], read.last[0].replace(microsecond=0)
        end = start + timedelta(seconds=1)
        head = read.soql.partition(" ORDER BY ")[0]
        glue = " AND " if " WHERE " in head else " WHERE "
        second = f"{head}{glue}{cursor} >= {soql.literal(start)} AND {cursor} < {soql.literal(end)}"
        keys, id_at = [read.paths.index(o) for o in read.order], read.paths.index("Id")
        before, best, after_id, stalled = read.last, read.last, None, 0
        while True:
            text = second + (f" AND Id > {soql.literal(after_id)}" if after_id else "") + " ORDER BY Id"
            try:
                for records in self._pages(stream, text, read.include_deleted):
                    rows = json_rows(records, read.paths)
                    if not rows:
                        continue
                    after_id, stalled = rows[-1][id_at], 0
                    fresh = [r for r in rows if _key(r, keys) > before]
                    best = max([best, *(_key(r, keys) for r in fresh)])
                    read.rows += len(fresh)
                    read.buffer.extend(fresh)
                    while len(read.buffer) >= stream.batch_size:
                        yield read.buffer[: stream.batch_size]
                        read.buffer = read.buffer[stream.batch_size:]
                break
            except LocatorExpired:
                stalled += 1
                self._stalled(stream, stalled)
        read.last, read.floor = best, end

    def _take(self, stream: StreamSpec, read: _Read, rows: list[list[Any]]) -> Iterator[list[list[Any]]]:
        """Add rows after the keyset position to the buffer; yield full batches."""
        keys = [read.paths.index(o) for o in read.order]
        if read.last is not None:  # rows are ordered: skip the ones at or before the position reached
            start = 0
            while start < len(rows) and _key(rows[start], keys) <= read.last:
                start += 1
            rows = rows[start:]
        if not rows:
            return
        read.last = _key(rows[-1], keys)
        read.rows += len(rows)
        read.buffer.extend(rows)
        while len(read.buffer) >= stream.batch_size:
            yield read.buffer[: stream.batch_size]
            read.buffer = read.buffer[stream.batch_size:]

    def _resumed(self, read: _Read) -> str:
        """The query, restarted after the last row read (keyset) if some were read already."""
        if read.last is None:
            return read.soql
        first = read.order[0]
        value = read.floor or read.last[0]
        bound = (f"{first} >= {soql.literal(value.replace(microsecond=0))}" if isinstance(value, datetime)
                 else f"{first} >= {soql.literal(value)}")
        head, sep, order = read.soql.partition(" ORDER BY ")
        glue = " AND " if " WHERE " in head else " WHERE "
        return f"{head}{glue}{bound}{sep}{order}"

    def _bulk(self, stream: StreamSpec, read: _Read) -> Iterator[list[list[Any]]]:
        """One Bulk API 2.0 query job; CSV pages read one locator at a time, each checked."""
        o = self.options
        op = Operation.query_all if read.include_deleted else Operation.query
        text = self._resumed(read)
        job = self.client.call(f"stream {stream.name!r}: create Bulk job",
                               lambda sf: _bulk_client(sf, text).create_job(op, text))
        self.bulk_jobs += 1
        job_id = job["id"]
        while True:
            info = self.client.call(f"stream {stream.name!r}: Bulk job status",
                                    lambda sf: _bulk_client(sf, text).get_job(job_id, True))
            if info["state"] == "JobComplete":
                break
            if info["state"] in ("Failed", "Aborted"):
                raise _BulkFailed(str(info.get("errorMessage") or info["state"])[:200])
            self.client.sleep(o.bulk_poll_seconds)
        expected = int(info.get("numberRecordsProcessed") or 0)
        locator, got = "", 0
        while True:
            rows, locator = self._bulk_page(stream, read, text, job_id, locator)
            got += len(rows)
            yield from self._take(stream, read, rows)
            if not locator:
                break
        if got != expected:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: the Bulk job reported "
                              f"{expected} rows but its results held {got}", transient=True,
                              hint="nothing was committed; the next run reads again")
        if read.buffer:
            yield read.buffer
            read.buffer = []

    def _bulk_page(self, stream: StreamSpec, read: _Read, text: str, job_id: str,
                   locator: str) -> tuple[list[list[Any]], str]:
        """One CSV page; a cut or short page is fetched again (up to ``retries`` times)."""
        for attempt in range(self.options.retries + 1):
            result = self.client.call(
                f"stream {stream.name!r}: Bulk results",
                lambda sf: _bulk_client(sf, text).get_query_results(job_id, locator,
                                                                    self.options.bulk_page_size))
            try:
                rows = csv_rows(result["records"], read.paths)
            except ValueError as exc:
                raise SourceError(f"source {self.name!r}, stream {stream.name!r}: {exc}",
                                  hint=VALIDATE) from None
            if len(rows) == result["number_of_records"]:
                return rows, result["locator"]
            if attempt < self.options.retries:
                self.client.backoff(attempt)
        raise SourceError(f"source {self.name!r}, stream {stream.name!r}: a Bulk result page held "
                          f"{len(rows)} rows, not the {result['number_of_records']} announced",
                          transient=True,
                          hint="nothing was committed; the next run reads again")

    def _frame(self, stream: StreamSpec, plan: _Plan, paths: list[str], rows: list[list[Any]],
               kept: Sequence[str]) -> pd.DataFrame:
        sf_fields = [plan.fields[p] for p in paths]
        try:
            df = frame(rows, sf_fields, paths.index("Id"))
        except BadValue as exc:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: {exc}",
                              hint=f"fix the record in Salesforce or leave the field out of `fields`; "
                              f"{VALIDATE}") from None
        for col, amount in plan.converted.items():
            df[col] = self._convert(stream, plan, df, amount)
        return df[list(kept)]

    # -- currencies ---------------------------------------------------------------------------------------

    def _convert(self, stream: StreamSpec, plan: _Plan, df: pd.DataFrame, amount: str) -> pd.Series:
        company = self.options.currency
        quantum = Decimal(1).scaleb(-(plan.fields[amount].field.scale or 0))
        codes = df["CurrencyIsoCode"] if plan.has_currency else pd.Series(company, index=df.index)
        today = datetime.now(UTC).date()
        dates = df[plan.date_field] if plan.date_field else pd.Series(today, index=df.index)
        out: list[Decimal | None] = []
        for rid, value, code, on in zip(df["Id"], df[amount], codes, dates, strict=True):
            if value is None or (isinstance(value, float) and value != value):
                out.append(None)
                continue
            day = on.date() if isinstance(on, datetime) else on if isinstance(on, date) else today
            rate = Decimal(1) if code == company else self._rate(stream, str(code), day, rid)
            out.append((value / rate).quantize(quantum, rounding=ROUND_HALF_EVEN))
        return pd.Series(out, index=df.index, dtype=object)

    def _rate(self, stream: StreamSpec, code: str, day: date, rid: str) -> Decimal:
        rates = self.options.rates
        if isinstance(rates, dict):
            if code in rates:
                return rates[code]
        else:
            for iso, rate, start, end in self._dated_rates(stream):
                if iso == code and start <= day < end:
                    return rate
        raise SourceError(f"source {self.name!r}, stream {stream.name!r}: record {rid}: no conversion rate "
                          f"for {code} on {day.isoformat()}",
                          hint="add the rate to the source's `rates`, or to the org's dated exchange rates")

    def _dated_rates(self, stream: StreamSpec) -> list[tuple[str, Decimal, date, date]]:
        if self._rates is None:
            columns = ["IsoCode", "ConversionRate", "StartDate", "NextStartDate"]
            text = soql.select("DatedConversionRate", columns, [], [])
            records = self.client.call("reading DatedConversionRate", lambda sf: sf.query_all(text))
            self._rates = [(r["IsoCode"], Decimal(repr(float(r["ConversionRate"]))),
                            date.fromisoformat(r["StartDate"]), date.fromisoformat(r["NextStartDate"]))
                           for r in records["records"]]
        return self._rates


class _BulkFailed(Exception):
    pass


def _bulk_client(sf: Salesforce, text: str) -> Any:
    obj = text.split(" FROM ", 1)[1].split(" ", 1)[0]
    return getattr(sf.bulk2, obj)._client


def _key(row: list[Any], positions: list[int]) -> tuple[Any, ...]:
    return tuple(parse_datetime(row[i]) if isinstance(row[i], str) and _looks_datetime(row[i]) else row[i]
                 for i in positions)


def _looks_datetime(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[10] == "T"


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return parse_datetime(str(value))


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    lower = [n for n in names if n.lower() == name.lower()]
    hits = lower or close
    return f" (did you mean {', '.join(map(repr, hits))}?)" if hits else ""


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors())

