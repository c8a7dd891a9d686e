"""Runs that cannot overwrite each other: fencing tokens, heartbeats, crash take-over and queueing.

The process tests run the real ``okrsync run`` console script. Run A is held inside its read of one
stream by a lock the test takes on that stream's SQLite source (a second file), so every step happens
in a known order without racing a clock: the test waits for conditions (a sync row, an expired lease,
a line on stderr), never for an amount of time.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from flows import pipeline
from flows.run import LocalSteps, RunContext, run_project
from okr_store import models as m
from okr_store.records import RID, utcnow
from okr_store.store import Store
from okrsync.errors import LeaseBusy, LeaseLost, SourceError
from okrsync.project import load_project

OKRSYNC = Path(sys.executable).parent / "okrsync"
AS_OF = datetime(2026, 11, 20, 18, 0)


def _two_sources(d: Path, **settings: object) -> Path:
    """The demo with shipments read from a second SQLite file (so a test can lock just that one)."""
    shutil.copy(d / "erp.db", d / "erp2.db")
    pf = d / "okrsync.yaml"
    text = pf.read_text()
    text = text.replace("sources:\n", "sources:\n  erp2:\n    kind: sql\n    url: sqlite:///erp2.db\n"
                        "    statement_timeout_seconds: 3600\n", 1)
    text = text.replace("  shipments:\n    source: erp\n", "  shipments:\n    source: erp2\n", 1)
    extra = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    text = text.replace("settings:\n", "settings:\n" + extra, 1)
    pf.write_text(text)
    return pf


def _env() -> dict[str, str]:
    drop = ("PREFECT_API_URL", "OKRSYNC_PROJECT", "OKRSYNC_STORE_URL", "COLUMNS")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"NO_COLOR": "1"}


def _default_signals() -> None:
    """A test runner's worker may ignore SIGINT, and children inherit that: give the run a terminal's."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(pf: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([str(OKRSYNC), "-p", str(pf), "run"], stdout=out, stderr=subprocess.STDOUT,
                                env=_env(), cwd=pf.parent, preexec_fn=_default_signals)  # noqa: PLW1509


def _run(pf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(OKRSYNC), "-p", str(pf), "run"], capture_output=True, text=True, env=_env(),
                          cwd=pf.parent, timeout=600)


def _until(what: str, check: Callable[[], object], limit: float = 300) -> object:
    """Poll ``check`` until it returns something truthy (the limit only stops a hung test)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


@contextmanager
def _locked(db: Path) -> Iterator[sqlite3.Connection]:
    """An exclusive lock on a SQLite file: readers wait until it is released."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("BEGIN EXCLUSIVE")
    try:
        yield con
    finally:
        con.execute("ROLLBACK")
        con.close()


def _store(pf: Path) -> Store:
    return Store(load_project(pf).store_url())


def _q(store: Store, query: sa.Executable) -> list[sa.Row]:
    with store.engine.connect() as conn:
        return list(conn.execute(query))


def _blocked_on_shipments(store: Store) -> str | None:
    """The id of the run that committed orders and is still going: it waits on the locked shipments
    source (its schema probe or its read)."""
    sr, r = m.sync_run.c, m.run.c
    running = {x.id for x in _q(store, sa.select(r.id).where(r.status == "running"))}
    done = {x.run_id for x in _q(store, sa.select(sr.run_id).where(sr.stream == "orders",
                                                                     sr.status == "committed"))}
    return next(iter(running & done), None)


def _state(store: Store) -> dict[str, object]:
    """Everything a run may change: watermarks, snapshots, latest values, holds."""
    st, k = m.stream_state.c, m.key_result.c
    return {
        "streams": sorted(tuple(r) for r in _q(store, sa.select(st.name, st.watermark, st.last_sync_id))),
        "krs": sorted(tuple(r) for r in _q(store, sa.select(k.id, k.last_value_id, k.held_reason))),
        "values": _q(store, sa.select(sa.func.count()).select_from(m.kr_value))[0][0],
    }


@pytest.fixture(scope="module")
def locked_template(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-source demo after a first full sync (by the real CLI), so the runs of each test are
    incremental and quick. Built once for the module; each test runs on a copy."""
    d = tmp_path_factory.mktemp("leases-template") / "demo"
    shutil.copytree(demo_template, d)
    pf = _two_sources(d, lease_seconds=5, wait_for_run_seconds=600)
    first = _run(pf)
    assert first.returncode == 0, first.stdout + first.stderr
    return d


@pytest.fixture
def locked_project(locked_template: Path, tmp_path: Path) -> Path:
    """A private copy of the synced two-source demo (its store uses relative paths: the copy is whole)."""
    d = tmp_path / "demo"
    shutil.copytree(locked_template, d)
    return d / "okrsync.yaml"


def _stop_outside_a_write(pid: int, store: Store) -> None:
    """SIGSTOP ``pid`` at a moment it holds no write lock on the SQLite store: its heartbeat may be
    writing the lease just then (a busy machine makes that likely), and a process frozen inside a write
    would lock every other run out, which is not what the test is about."""
    database = store.engine.url.database
    assert database, store.engine.url

    def stopped_outside_a_write() -> bool:
        os.kill(pid, signal.SIGSTOP)
        con = sqlite3.connect(database, timeout=0)
        try:
            con.execute("BEGIN IMMEDIATE")  # fails at once if the stopped process holds the write lock
            con.rollback()
            return True
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
            return False
        finally:
            con.close()

    _until("run A to stop outside a write", stopped_outside_a_write)


def test_a_stalled_run_changes_nothing_after_another_took_over(locked_project: Path) -> None:
    """SIGSTOP run A inside a read, let its lease expire, run B to the end, SIGCONT A: A stops at its
    next write and says why; the store is exactly what B left."""
    pf, store = locked_project, _store(locked_project)
    lease = m.run_lease.c
    with _locked(pf.parent / "erp2.db"):
        a = _start(pf, pf.parent / "a.log")
        run_a = _until("run A to block on shipments", lambda: _blocked_on_shipments(store))
        _stop_outside_a_write(a.pid, store)  # its heartbeat stops with it
    try:  # the lock is gone; A stays stopped until its lease has run out and B has finished
        _until("A's lease to run out", lambda: _q(store, sa.select(lease.until))[0][0] < utcnow())
        b = _run(pf)
        assert b.returncode == 0, b.stdout + b.stderr
        after_b = _state(store)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    assert a.wait(timeout=600) == 1
    out = (pf.parent / "a.log").read_text()
    assert "no longer holds" in out, out
    assert _state(store) == after_b  # A resumed, read on, and changed nothing
    runs = {r.id: r for r in _q(store, sa.select(m.run))}
    assert runs[str(run_a)].status == "failed" and "took over" in (runs[str(run_a)].error or "")


def test_kill_9_frees_the_project_at_once(locked_project: Path) -> None:
    pf, store = locked_project, _store(locked_project)
    with _locked(pf.parent / "erp2.db"):
        a = _start(pf, pf.parent / "a.log")
        run_a = _until("run A to block on shipments", lambda: _blocked_on_shipments(store))
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=60)
    b = _run(pf)  # its lease has not expired, but its holder is provably gone: no wait
    assert b.returncode == 0 and "waiting for" not in b.stderr, b.stdout + b.stderr
    runs = {r.id: r for r in _q(store, sa.select(m.run))}
    assert runs[str(run_a)].status == "failed"
    assert f"process {a.pid}" in (runs[str(run_a)].error or "") and "ended without finishing" in runs[
        str(run_a)].error
    assert all(r.held_reason is None for r in _q(store, sa.select(m.key_result.c.held_reason)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_closes_its_row_and_frees_its_leases(locked_project: Path, sig: int) -> None:
    pf, store = locked_project, _store(locked_project)
    with _locked(pf.parent / "erp2.db"):
        a = _start(pf, pf.parent / "a.log")
        run_a = _until("run A to block on shipments", lambda: _blocked_on_shipments(store))
        before = _state(store)
        os.kill(a.pid, sig)
        assert a.wait(timeout=120) == 130, (pf.parent / "a.log").read_text()
    assert "the run is closed and its leases are free" in (pf.parent / "a.log").read_text()
    row = next(r for r in _q(store, sa.select(m.run)) if r.id == run_a)
    assert row.status == "failed" and "interrupted" in row.error
    lease, st, sr = m.run_lease.c, m.stream_state.c, m.sync_run.c
    assert _q(store, sa.select(lease.run_id))[0][0] is None
    assert all(r[0] is None for r in _q(store, sa.select(st.lease_sync_id)))
    assert {r.status for r in _q(store, sa.select(sr.status).where(sr.run_id == run_a))} <= {"committed",
                                                                                              "failed"}
    assert _state(store) == before
    assert _run(pf).returncode == 0


def test_a_second_run_queues_behind_a_live_one(locked_project: Path) -> None:
    pf, store = locked_project, _store(locked_project)
    with _locked(pf.parent / "erp2.db"):
        a = _start(pf, pf.parent / "a.log")
        run_a = _until("run A to block on shipments", lambda: _blocked_on_shipments(store))
        b = _start(pf, pf.parent / "b.log")
        _until("B to say it waits", lambda: "waiting for run" in (pf.parent / "b.log").read_text())
    assert a.wait(timeout=600) == 0, (pf.parent / "a.log").read_text()
    assert b.wait(timeout=600) == 0, (pf.parent / "b.log").read_text()
    runs = sorted(_q(store, sa.select(m.run)), key=lambda r: r.started_at)
    a_row = next(r for r in runs if r.id == run_a)
    b_row = runs[-1]
    assert b_row.id != run_a and b_row.started_at >= a_row.finished_at  # one after the other
    sr = m.sync_run.c
    for run in (run_a, b_row.id):  # each run synced every stream itself: nothing was split
        streams = {r.stream for r in _q(store, sa.select(sr.stream).where(sr.run_id == run,
                                                                          sr.status == "committed"))}
        assert streams == {"orders", "shipments"}


def test_a_run_that_cannot_get_the_project_holds_nothing(demo_dir: Path) -> None:
    pf = _two_sources(demo_dir, wait_for_run_seconds=0)
    run_project(pf, LocalSteps(), as_of=AS_OF)
    store = _store(pf)
    before = _state(store)
    holder = store.begin_run(AS_OF, None, lease_seconds=600, wait_seconds=0)  # a live run elsewhere
    with pytest.raises(LeaseBusy, match="another run of this project is still going"):
        run_project(pf, LocalSteps(), as_of=AS_OF)
    assert _state(store) == before  # no KR marked held, nothing recorded
    store.end_run(holder, "succeeded")


def test_commit_and_recording_check_the_token_in_their_transaction(demo_dir: Path) -> None:
    """Store level: a writer of an expired run, after another run committed, changes nothing."""
    pf = demo_dir / "okrsync.yaml"
    project = load_project(pf)
    store = Store(project.store_url())
    run_project(pf, LocalSteps(), as_of=AS_OF)
    stale = store.begin_run(AS_OF, None, lease_seconds=600, wait_seconds=0)
    connector = project.connector("erp")
    stream = pipeline.effective_stream(project, "orders")
    schema = connector.schema(stream)
    kept = stream.kept_fields(schema)
    tables = store.streams.tables("orders")
    assert tables is not None
    writer = store.begin_sync(stale.run_id, "orders", "erp", stream.primary_key, tables.schema,
                              reconcile=False, fence=stale)
    batch = next(iter(connector.read(stream, None)))[list(kept)].head(5).copy()
    batch["untaxed_amount"] = 0
    writer.stage(batch.assign(**{RID: batch["id"].astype(str)}))
    connector.close()
    with store.engine.begin() as conn:  # the stale run's lease runs out (as if it stalled)
        conn.execute(m.run_lease.update().values(until=utcnow() - timedelta(seconds=1)))
    newer = run_project(pf, LocalSteps(), as_of=AS_OF)
    assert newer.status == "succeeded"
    before = _state(store)
    with pytest.raises(LeaseLost, match="no longer holds"):
        writer.commit('{"stale": true}')
    with pytest.raises(LeaseLost, match="no longer holds"):
        store.record_values(stale.run_id, None, AS_OF, [], {"KR-REV": "stale"}, stale)
    assert _state(store) == before


def test_a_sync_past_the_task_timeout_counts_as_failed(demo_dir: Path) -> None:
    pf = _two_sources(demo_dir)
    run_project(pf, LocalSteps(), as_of=AS_OF)
    store = _store(pf)
    fence = store.begin_run(AS_OF, None, lease_seconds=600, wait_seconds=0)
    ctx = RunContext(str(pf), fence, None, AS_OF, retry_delay_seconds=0, timeout_seconds=1)
    with _locked(pf.parent / "erp2.db"):  # the read waits on the lock far past the timeout
        out = LocalSteps().sync_all(ctx, ["shipments"])
    err = out["shipments"]
    assert isinstance(err, SourceError) and err.transient, err
    assert "did not finish within 1 s" in err.message
    store.end_run(fence, "failed", err.message)
