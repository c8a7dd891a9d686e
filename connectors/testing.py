"""The connector contract, shipped: one call gives a connector's tests the invariants okrsync relies on.

A plugin author (and every built-in connector) writes a :class:`ContractSource` — a source the suite may
change: a folder, a loopback server, a throwaway database — provides it as the pytest fixture
``contract_source``, and adds one line to a test module (as the Singer SDK's ``get_tap_test_class``)::

    @pytest.fixture
    def contract_source(tmp_path):
        return MySource(tmp_path)

    TestContract = contract_tests()

Each invariant is one test, on a fresh source:

* ``test_rows_come_in_cursor_order`` — a full read is ordered by (cursor, primary key), NULL cursors
  first, in frames of at most ``batch_size`` rows, with the stream's kept fields;
* ``test_keys_are_unique_and_match_the_read`` — no primary key twice in a read; ``keys()`` lists the
  same records, each once;
* ``test_ties_at_a_batch_boundary`` — records sharing one cursor value are read after the watermark,
  and resuming after any one of them (a commit at a batch boundary) gives exactly the rest;
* ``test_lookback_rereads_late_rows`` — a record committed late, dated before the watermark, is read
  again within ``lookback_seconds``;
* ``test_tombstones`` — a connector with ``reports_deletions`` lists a deleted record in ``deleted()``,
  and neither the next read nor ``keys()`` has it;
* ``test_clean_failure_mid_read`` — a read that fails raises an ``OkrsyncError`` (never a raw
  exception), the rows before it are a prefix of the truth, and resuming from them after the fault
  gives exactly the rest;
* ``test_no_secret_in_any_error`` — no secret of the source appears in any error the suite provoked
  (refused credentials, a failed read, an unknown field), in its message, hint, repr or traceback, nor
  in any log record.

Hooks a source cannot offer (``delete``, ``fail_next_read``, ``refusing_connector``) raise
``NotImplementedError``; the tests that need them are then skipped, saying why.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from connectors.base import SourceConnector, StreamSpec, Watermark, cursor_values, typed_watermark
from connectors.kit.values import naive_utc
from okrsync.errors import OkrsyncError
from okrsync.schema import StreamSchema

Key = tuple[Any, ...]


class ContractSource:
    """What the suite needs from a connector's tests (override the hooks the source can offer)."""

    #: A stream with a cursor (a datetime field) and a primary key over a few dozen records or more.
    stream: StreamSpec

    def connector(self) -> SourceConnector:
        """A fresh connector on the source (the suite closes it)."""
        raise NotImplementedError

    def secrets(self) -> Sequence[str]:
        """Values that must never appear in an error or a log: the credentials the connector uses."""
        return ()

    def touch(self, keys: Sequence[Key], at: datetime) -> None:
        """Change these existing records so that their cursor reads ``at`` (naive UTC, whole seconds)."""
        raise NotImplementedError

    def delete(self, key: Key, at: datetime) -> None:
        """Delete one record at ``at`` (naive UTC)."""
        raise NotImplementedError

    def fail_next_read(self, after_rows: int) -> None:
        """Make the next read fail, after about ``after_rows`` rows where the source can (a later page),
        else at its start; :meth:`mend` lifts it."""
        raise NotImplementedError

    def mend(self) -> None:
        """Undo :meth:`fail_next_read`."""

    def refusing_connector(self) -> SourceConnector:
        """A connector whose credentials the source refuses."""
        raise NotImplementedError


class ConnectorContract:
    """The invariants (see the module notes); :func:`contract_tests` makes the pytest class."""

    batch_size = 3
    ties = 7
    late_seconds = 30
    lookback_seconds = 300

    # -- the invariants --------------------------------------------------------------------------------

    def test_rows_come_in_cursor_order(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            stream = self._stream(src, batch_size=max(self.batch_size, 25))
            frames = [f for f in conn.read(stream, None) if not f.empty]
            assert frames, "the full read gave no rows: the suite needs a source with records"
            assert all(len(f) <= stream.batch_size for f in frames), \
                f"a frame holds more than batch_size ({stream.batch_size}) rows"
            kept = stream.kept_fields(conn.schema(stream))
            assert all(list(f.columns) == list(kept) for f in frames), \
                f"frames must hold the stream's kept fields in schema order: {list(kept)}"
            _assert_ordered(pd.concat(frames, ignore_index=True), stream)

    def test_keys_are_unique_and_match_the_read(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            stream = self._stream(src)
            read = _ids(_read(conn, stream, None), stream)
            assert len(read) == len(set(read)), f"keys read twice: {_twice(read)}"
            listed = [i for f in conn.keys(stream) for i in _ids(f, stream)]
            assert len(listed) == len(set(listed)), f"keys() lists records twice: {_twice(listed)}"
            assert set(listed) == set(read), "keys() and a full read disagree on which records live"

    def test_ties_at_a_batch_boundary(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            stream = self._stream(src)
            golden = _read(conn, stream, None)
            mark = _watermark(conn, stream, golden)
            tied = _pick(golden, stream, self.ties)
            at = _later(mark)
            src.touch(tied, at)
            changed = _read(conn, stream, mark)
            want = {_key_text(k) for k in tied}
            got = _ids(changed, stream)
            assert sorted(got) == sorted(want), f"the records touched at {at} were not read exactly once"
            assert all(naive_utc(c) == at for c in cursor_values(changed, stream)), "their cursor is not `at`"
            for cut in sorted({1, self.batch_size, len(changed) - 1}):
                resumed = _read(conn, stream, _watermark(conn, stream, changed.iloc[:cut]))
                assert _ids(resumed, stream) == got[cut:], \
                    f"resuming after {cut} of {len(got)} records of one cursor value lost or repeated some"

    def test_lookback_rereads_late_rows(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            stream = self._stream(src)
            golden = _read(conn, stream, None)
            mark = _watermark(conn, stream, golden)
            late = _pick(golden, stream, 1)
            before = naive_utc(mark.cursor).replace(microsecond=0) - timedelta(seconds=self.late_seconds)
            src.touch(late, before)
            behind = stream.model_copy(update={"lookback_seconds": self.lookback_seconds})
            got = _ids(_read(conn, behind, mark), stream)
            assert _key_text(late[0]) in got, (f"a record dated {self.late_seconds} s before the watermark "
                                               f"was not read again (lookback {self.lookback_seconds} s)")
            assert len(got) == len(set(got)), f"keys read twice: {_twice(got)}"

    def test_tombstones(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            if not conn.reports_deletions:
                _skip(f"source kind {conn.kind!r} does not report deletions (reports_deletions is False)")
            stream = self._stream(src)
            golden = _read(conn, stream, None)
            mark = _watermark(conn, stream, golden)
            gone = _pick(golden, stream, 1)[0]
            _offered(lambda: src.delete(gone, _later(mark)), "delete")
            deleted = [i for f in conn.deleted(stream, mark) for i in _ids(f, stream)]
            assert _key_text(gone) in deleted, "deleted() does not list a record deleted after the watermark"
            assert _key_text(gone) not in _ids(_read(conn, stream, mark), stream), "a deleted record was read"
            assert _key_text(gone) not in [i for f in conn.keys(stream) for i in _ids(f, stream)], \
                "keys() still lists a deleted record"

    def test_clean_failure_mid_read(self, contract_source: ContractSource) -> None:
        src = contract_source
        with _opened(src.connector()) as conn:
            stream = self._stream(src, batch_size=max(self.batch_size, 25))
            golden = _read(conn, stream, None)
            _offered(lambda: src.fail_next_read(len(golden) // 2), "fail_next_read")
            received: list[pd.DataFrame] = []
            try:
                for frame in conn.read(stream, None):
                    received.append(frame)
            except OkrsyncError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point: nothing but OkrsyncError may escape
                raise AssertionError(f"a failed read raised {type(exc).__name__}, not an OkrsyncError: "
                                     f"{exc}") from exc
            else:
                raise AssertionError("fail_next_read() armed a fault, but the read succeeded")
            finally:
                src.mend()
            before = pd.concat(received, ignore_index=True) if received else golden.iloc[:0]
            assert _ids(before, stream) == _ids(golden, stream)[:len(before)], \
                "the rows yielded before the failure are not the start of the full read"
            mark = _watermark(conn, stream, before) if len(before) else None
            rest = _read(conn, stream, mark)
            assert _ids(before, stream) + _ids(rest, stream) == _ids(golden, stream), \
                "resuming after the failure did not give exactly the rows the failed read had not given"

    def test_no_secret_in_any_error(self, contract_source: ContractSource) -> None:
        src = contract_source
        errors: list[BaseException] = []
        with _logged() as records:
            with _opened(src.connector()) as conn:
                stream = self._stream(src)
                try:
                    conn.schema(stream.model_copy(update={"fields": ("no_such_field_okrsync",)}))
                    raise AssertionError("an unknown field in `fields` was not refused")
                except OkrsyncError as exc:
                    errors.append(exc)
                golden = _read(conn, stream, None)
                try:
                    src.fail_next_read(len(golden) // 2)
                    errors.append(_failure(lambda: list(conn.read(stream, None))))
                except NotImplementedError:
                    pass
                finally:
                    src.mend()
            try:
                refusing = src.refusing_connector()
            except NotImplementedError:
                refusing = None
            if refusing is not None:
                with _opened(refusing) as bad:
                    def use() -> None:
                        bad.check()
                        list(bad.read(stream, None))

                    errors.append(_failure(use))
        secrets = [s for s in src.secrets() if s]
        for error in errors:
            text = _texts(error)
            for secret in secrets:
                assert secret not in text, f"a secret appears in an error: {type(error).__name__}"
        logs = "\n".join(r.getMessage() for r in records)
        for secret in secrets:
            assert secret not in logs, "a secret appears in the logs"

    # -- helpers -----------------------------------------------------------------------------------------

    def _stream(self, src: ContractSource, **update: Any) -> StreamSpec:
        assert src.stream.cursor, "the contract needs a stream with a cursor"
        return src.stream.model_copy(update={"batch_size": self.batch_size, **update})


def contract_tests(**settings: Any) -> type[ConnectorContract]:
    """The pytest class of the contract (``batch_size``, ``ties``, ``late_seconds``,
    ``lookback_seconds`` may be changed); it runs on the fixture ``contract_source``."""
    return type("TestConnectorContract", (ConnectorContract,), dict(settings))


# -- reading as the framework does ------------------------------------------------------------------


@contextmanager
def _opened(conn: SourceConnector) -> Iterator[SourceConnector]:
    try:
        yield conn
    finally:
        conn.close()


def _read(conn: SourceConnector, stream: StreamSpec, since: Watermark | None) -> pd.DataFrame:
    frames = [f for f in conn.read(stream, since) if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(stream.kept_fields(conn.schema(stream))))
    return pd.concat(frames, ignore_index=True)


def _watermark(conn: SourceConnector, stream: StreamSpec, rows: pd.DataFrame) -> Watermark:
    """What the framework stores after committing ``rows`` and hands back (a JSON round trip)."""
    last = rows.tail(1)
    mark = Watermark(cursor_values(last, stream).iloc[0], tuple(last.iloc[0][k] for k in stream.primary_key))
    schema = conn.schema(stream)
    kept = stream.kept_fields(schema)
    typed = typed_watermark(mark.to_json(), stream, StreamSchema(tuple(f for f in schema.fields
                                                                      if f.name in kept)))
    assert typed is not None
    return typed


def _later(mark: Watermark) -> datetime:
    """A whole second a minute after the watermark's cursor: later than every record read."""
    return naive_utc(mark.cursor).replace(microsecond=0) + timedelta(minutes=1)


def _pick(rows: pd.DataFrame, stream: StreamSpec, n: int) -> list[Key]:
    """``n`` keys spread over the read (not the last row: the watermark's)."""
    keys = [tuple(_plain(v) for v in row) for row in rows[list(stream.primary_key)].itertuples(index=False)]
    pool = keys[:-1] or keys
    step = max(1, len(pool) // (n + 1))
    picked = pool[step::step][:n]
    assert len(picked) == n, f"the suite needs at least {n + 2} records in the stream"
    return picked


def _ids(rows: pd.DataFrame, stream: StreamSpec) -> list[str]:
    return [_key_text(tuple(_plain(v) for v in row))
            for row in rows[list(stream.primary_key)].itertuples(index=False)]


def _key_text(key: Key) -> str:
    return "|".join(str(v) for v in key)


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _assert_ordered(df: pd.DataFrame, stream: StreamSpec) -> None:
    cursor = cursor_values(df, stream)
    nulls = cursor.isna().to_numpy()
    assert not (nulls[1:] & ~nulls[:-1]).any(), "a NULL cursor comes after a non-NULL one"
    keys = df.loc[~nulls, list(stream.primary_key)].itertuples(index=False)
    rows = [(_plain(c), *(_plain(k) for k in key)) for c, key in zip(cursor[~nulls], keys, strict=True)]
    for i in range(1, len(rows)):
        assert rows[i - 1] < rows[i], f"rows {i} and {i + 1} are not in (cursor, primary key) order"
    ids = _ids(df, stream)
    assert len(ids) == len(set(ids)), f"keys read twice: {_twice(ids)}"


def _twice(ids: list[str]) -> list[str]:
    return sorted(i for i, n in Counter(ids).items() if n > 1)[:5]


# -- failures, secrets and skips --------------------------------------------------------------------


def _failure(action: Any) -> BaseException:
    try:
        action()
    except OkrsyncError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point: nothing but OkrsyncError may escape
        raise AssertionError(f"{type(exc).__name__} escaped the connector, not an OkrsyncError") from exc
    raise AssertionError("the source was armed to fail, but nothing failed")


def _texts(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, OkrsyncError):
        parts += [exc.message, exc.hint or ""]
    return "\n".join(parts)


@contextmanager
def _logged() -> Iterator[list[logging.LogRecord]]:
    """Every log record of every logger, at DEBUG, while the block runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root, handler = logging.getLogger(), Keep(logging.DEBUG)
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _offered(hook: Any, name: str) -> None:
    try:
        hook()
    except NotImplementedError:
        _skip(f"the contract source does not offer {name}()")


def _skip(reason: str) -> None:
    import pytest  # only ever imported by a test run

    pytest.skip(reason)
