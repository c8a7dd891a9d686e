"""Reading one SOQL query out of Salesforce: REST pages, Bulk API 2.0 jobs, and resuming.

* :meth:`Extractor.extract` sends the query over REST; when the first page says the result holds more
  than ``bulk_threshold`` rows it runs the same query as one Bulk API 2.0 job instead (falling back to
  REST if the job fails). Rows come back as lists of raw values, in batches of ``stream.batch_size``.
* A lost query cursor (``INVALID_QUERY_LOCATOR``) restarts the query after the last row read: by Id
  within the second that row belongs to (SOQL compares datetimes to the second), then by cursor.
* Each Bulk CSV page is checked against its announced row count and fetched again when short; the
  total is checked against the job's ``numberRecordsProcessed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation

from connectors.base import StreamSpec
from connectors.kit.values import naive_utc
from connectors.salesforce import soql
from connectors.salesforce.client import LocatorExpired, SfClient
from connectors.salesforce.options import VALIDATE
from connectors.salesforce.values import csv_rows, json_rows
from okrsync.errors import SourceError

MAX_STALLED_RESTARTS = 3


@dataclass
class Read:
    """One extraction: the query, the columns asked for, and the keyset position reached."""

    soql: str
    paths: list[str]
    order: list[str]
    include_deleted: bool = False
    last: tuple[Any, ...] | None = None
    floor: datetime | None = None  # once a second was finished by Id: restart at this cursor value
    rows: int = 0
    buffer: list[list[Any]] = field(default_factory=list)


class Extractor:
    """Runs queries for one source through its :class:`SfClient`; remembers what it decided."""

    def __init__(self, name: str, client: SfClient) -> None:
        self.name, self.client, self.options = name, client, client.options
        self.headers = {"Sforce-Query-Options": f"batchSize={self.options.page_size}"}
        self.bulk_jobs = 0
        self.notes: list[str] = []  # what was decided (fallbacks, resumes), for the run's log

    def extract(self, stream: StreamSpec, read: Read) -> Iterator[list[list[Any]]]:
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

    def _rest_first(self, stream: StreamSpec, read: Read) -> dict[str, Any]:
        return self._query(stream, self._resumed(read), read.include_deleted)

    def _query(self, stream: StreamSpec, text: str, include_deleted: bool) -> dict[str, Any]:
        """The first page of one query."""
        page: dict[str, Any] = self.client.call(
            f"stream {stream.name!r}: query",
            lambda sf: sf.query(text, include_deleted=include_deleted, headers=self.headers))
        return page

    def _pages(self, stream: StreamSpec, text: str, include_deleted: bool,
               page: dict[str, Any] | None = None) -> Iterator[list[dict[str, Any]]]:
        """The records of each page of one query (``page``: its first page, if already fetched).
        Raises :class:`LocatorExpired` if the server forgot the cursor."""
        if page is None:
            page = self._query(stream, text, include_deleted)
        while True:
            assert page is not None
            yield page["records"]
            if page["done"]:
                return
            url: str = page["nextRecordsUrl"]

            def more(sf: Salesforce, url: str = url) -> dict[str, Any]:
                result: dict[str, Any] = sf.query_more(url, identifier_is_url=True, headers=self.headers)
                return result

            page = self.client.call(f"stream {stream.name!r}: next page", more)

    def _rest(self, stream: StreamSpec, read: Read,
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
        yield from _batches(read, stream.batch_size, final=True)

    def _stalled(self, stream: StreamSpec, times: int) -> None:
        if times >= MAX_STALLED_RESTARTS:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: the query locator expired "
                              f"{times} times without progress", transient=True,
                              hint="nothing was committed; the next run reads again from the last "
                              "committed position")

    def _finish_second(self, stream: StreamSpec, read: Read) -> Iterator[list[list[Any]]]:
        """Read the rest of the second the last row belongs to, by Id, then go on after that second.

        SOQL compares datetimes to the whole second, so restarting at ``cursor >= last`` would re-read
        that second from its start: a mass update sharing one second could then never get past a cursor
        that keeps expiring. Within one second the Id is an exact keyset."""
        assert read.last is not None
        cursor, start = read.order[0], read.last[0].replace(microsecond=0)
        end = start + timedelta(seconds=1)
        head = read.soql.partition(" ORDER BY ")[0]
        second = _narrowed(head, f"{cursor} >= {soql.literal(start)} AND {cursor} < {soql.literal(end)}")
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
                    yield from _batches(read, stream.batch_size)
                break
            except LocatorExpired:
                stalled += 1
                self._stalled(stream, stalled)
        read.last, read.floor = best, end

    def _take(self, stream: StreamSpec, read: Read, rows: list[list[Any]]) -> Iterator[list[list[Any]]]:
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
        yield from _batches(read, stream.batch_size)

    def _resumed(self, read: Read) -> str:
        """The query, restarted after the last row read (keyset) if some were read already."""
        if read.last is None:
            return read.soql
        first = read.order[0]
        value = read.floor or read.last[0]
        bound = (f"{first} >= {soql.literal(value.replace(microsecond=0))}" if isinstance(value, datetime)
                 else f"{first} >= {soql.literal(value)}")
        head, sep, order = read.soql.partition(" ORDER BY ")
        return f"{_narrowed(head, bound)}{sep}{order}"

    def _bulk(self, stream: StreamSpec, read: Read) -> Iterator[list[list[Any]]]:
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
        yield from _batches(read, stream.batch_size, final=True)

    def _bulk_page(self, stream: StreamSpec, read: Read, text: str, job_id: str,
                   locator: str) -> tuple[list[list[Any]], str]:
        """One CSV page; a cut or short page is fetched again (the client's retry policy)."""
        try:
            for attempt in self.client.policy.attempts(_ShortPage):
                with attempt:
                    result = self.client.call(
                        f"stream {stream.name!r}: Bulk results",
                        lambda sf: _bulk_client(sf, text).get_query_results(job_id, locator,
                                                                            self.options.bulk_page_size))
                    try:
                        rows = csv_rows(result["records"], read.paths)
                    except ValueError as exc:
                        raise SourceError(f"source {self.name!r}, stream {stream.name!r}: {exc}",
                                          hint=VALIDATE) from None
                    if len(rows) != result["number_of_records"]:
                        raise _ShortPage(len(rows), result["number_of_records"])
        except _ShortPage as short:
            raise SourceError(f"source {self.name!r}, stream {stream.name!r}: a Bulk result page held "
                              f"{short.got} rows, not the {short.announced} announced", transient=True,
                              hint="nothing was committed; the next run reads again") from None
        return rows, result["locator"]


class _BulkFailed(Exception):
    pass


class _ShortPage(Exception):
    """A Bulk result page with fewer rows than it announced (a cut download)."""

    def __init__(self, got: int, announced: int) -> None:
        super().__init__(f"{got} of {announced} rows")
        self.got, self.announced = got, announced


def _batches(read: Read, size: int, *, final: bool = False) -> Iterator[list[list[Any]]]:
    """Take the full batches of ``size`` rows off ``read.buffer`` (and with ``final`` the rest too)."""
    rows = read.buffer
    end = len(rows) if final else len(rows) - len(rows) % size
    if end:  # sliced by position: the rows left over are copied once, not once per batch
        read.buffer = rows[end:]
        for start in range(0, end, size):
            yield rows[start:start + size]


def _narrowed(head: str, condition: str) -> str:
    """``SELECT … FROM … [WHERE …]`` (no ORDER BY) with ``condition`` ANDed to its filter."""
    return f"{head}{' AND ' if ' WHERE ' in head else ' WHERE '}{condition}"


def _bulk_client(sf: Salesforce, text: str) -> Any:
    obj = text.split(" FROM ", 1)[1].split(" ", 1)[0]
    return getattr(sf.bulk2, obj)._client


def _key(row: list[Any], positions: list[int]) -> tuple[Any, ...]:
    return tuple(naive_utc(row[i]) if isinstance(row[i], str) and _looks_datetime(row[i]) else row[i]
                 for i in positions)


def _looks_datetime(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[10] == "T"
