"""What a new user hit in their first hour (issue #12), through the real ``okrsync`` console script on
the demo ERP: a metric on a field the source lacks, exports of every record, repeated ``--where``, a
store in a read-only directory. Runs are local (no Prefect API), a few seconds each.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import shlex
import shutil
import signal
import sqlite3
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from okrsync.demo_erp import build_erp
from tests.okrsync.conftest import OKRSYNC, Cli, Result
from tests.okrsync.test_cli_errors import PROJECT, one_line


@pytest.fixture(scope="module")
def erp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("erp") / "erp.db"
    build_erp(path, today=date(2026, 11, 20))
    return path


@pytest.fixture(scope="module")
def ran(cli: Cli, erp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project on the demo ERP after one run (shared: the tests below only read it)."""
    d = tmp_path_factory.mktemp("ran")
    shutil.copy(erp, d / "erp.db")
    (d / "okrsync.yaml").write_text(PROJECT)
    r = cli("run", cwd=d)
    assert r.code == 0, r
    return d


def erp_orders(erp: Path, where: str = "1=1") -> dict[str, Decimal]:
    """Independently of okrsync: id → untaxed amount of the orders KR1 counts (Q4 2026, booked)."""
    with sqlite3.connect(erp) as conn:
        rows = conn.execute(
            "SELECT id, CAST(untaxed_amount AS TEXT) FROM orders WHERE state IN ('confirmed', 'done') "
            f"AND order_date BETWEEN '2026-10-01' AND '2026-12-31' AND {where}"
        ).fetchall()
    return {str(i): Decimal(a) for i, a in rows}


# ---- a metric on a field the source does not have ------------------------------------------------
def test_a_run_checks_metric_fields_against_the_source_before_reading(cli: Cli, erp: Path,
                                                                     tmp_path: Path) -> None:
    shutil.copy(erp, tmp_path / "erp.db")
    # The stream keeps every field (no `fields:`), so only the source can tell that this one is missing.
    (tmp_path / "okrsync.yaml").write_text(PROJECT.replace("field: untaxed_amount", "field: untaxed_amont"))
    r = cli("run", cwd=tmp_path)
    assert r.code == 1, r
    text = one_line(r.out + r.err)
    assert ("okrsync.yaml:19: metrics.revenue.field: stream 'orders' has no field 'untaxed_amont' (did you "
            "mean 'untaxed_amount'?)") in text, r
    assert "nothing was read" in text and "KeyError" not in text and "Traceback" not in text, r
    with sqlite3.connect(tmp_path / ".okrsync" / "store.db") as conn:
        assert conn.execute("SELECT count(*) FROM sync_run WHERE status = 'committed'").fetchone() == (0,)


# ---- exports of every record ----------------------------------------------------------------------
def test_csv_and_json_list_every_record_unless_limited(cli: Cli, erp: Path, ran: Path) -> None:
    expected = erp_orders(erp)
    assert len(expected) > 500  # far more than a table page (50)
    as_csv, as_json, some, table_all = cli.many(
        (("drill", "KR1", "--format", "csv"), ran),
        (("drill", "KR1", "--format", "json"), ran),
        (("drill", "KR1", "--format", "csv", "--limit", "7", "--sort", "record"), ran),
        (("drill", "KR1", "--limit", "all"), ran),
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert {r["record_id"]: Decimal(r["untaxed_amount"]) for r in rows} == expected, as_csv.err
    assert len(rows) == len(expected)
    body = json.loads(as_json.out)
    assert body["total"] == len(body["records"]) == len(expected)
    assert {r["record_id"]: Decimal(r["contribution"]) for r in body["records"]} == expected
    assert [r["record_id"] for r in csv.DictReader(io.StringIO(some.out))] == sorted(expected)[:7]
    assert table_all.code == 2 and "--format csv or json" in table_all.err, table_all


def test_a_repeated_where_keeps_either_value(cli: Cli, erp: Path, ran: Path) -> None:
    either, one, both_fields = cli.many(
        (("drill", "KR1", "--format", "json", "--where", "region=EMEA", "--where", "region=APAC"), ran),
        (("drill", "KR1", "--format", "json", "--where", "region=APAC"), ran),
        (("drill", "KR1", "--format", "json", "--where", "region=EMEA", "--where", "region=APAC",
          "--where", "state=done"), ran),
    )
    got = {r["record_id"] for r in json.loads(either.out)["records"]}
    assert got == set(erp_orders(erp, "region IN ('EMEA', 'APAC')")), either
    assert {r["record_id"] for r in json.loads(one.out)["records"]} == set(erp_orders(erp, "region = 'APAC'"))
    got = {r["record_id"] for r in json.loads(both_fields.out)["records"]}
    assert got == set(erp_orders(erp, "region IN ('EMEA', 'APAC') AND state = 'done'")), both_fields


# ---- a store in a directory this user cannot write ------------------------------------------------
def read_only(cli: Cli, folder: Path, *args: str) -> Result:
    """``okrsync ARGS`` with ``folder`` mounted read-only (a private mount namespace: the check holds
    for root too, and nothing outside this process sees the mount)."""
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), str(OKRSYNC), *args],
                       cwd=folder, env=cli.env, capture_output=True, text=True, timeout=180, check=False)
    return Result(args, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory: pytest.TempPathFactory) -> None:
    probe = tmp_path_factory.mktemp("probe")
    p = subprocess.run(["unshare", "-m", "sh", "-c", f'mount --bind -o ro "{probe}" "{probe}" && ! touch '
                        f'"{probe}/x"'], capture_output=True, check=False)
    if shutil.which("unshare") is None or p.returncode != 0:
        pytest.skip(f"cannot mount a folder read-only here (unshare -m, mount --bind): {p.stderr!r}")


@pytest.fixture
def ran_copy(ran: Path, tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "project"
    shutil.copytree(ran, d)
    yield d


@pytest.mark.usefixtures("can_mount")
def test_read_commands_work_on_a_read_only_store(cli: Cli, ran_copy: Path) -> None:
    for args in (("status", "--json"), ("history", "KR1"), ("drill", "KR1", "--format", "csv"),
                 ("checks",), ("diff", "KR1")):
        r = read_only(cli, ran_copy, *args)
        assert "Traceback" not in r.err and "cannot" not in r.err, r
        assert r.code == 0 or (args[0] == "diff" and "only one value so far" in r.err), r
    status = json.loads(read_only(cli, ran_copy, "status", "--json").out)
    assert status["objectives"][0]["key_results"][0]["value"] is not None


@pytest.mark.usefixtures("can_mount")
def test_writing_a_read_only_store_names_the_path_and_the_fix(cli: Cli, ran_copy: Path, erp: Path,
                                                               tmp_path: Path) -> None:
    r = read_only(cli, ran_copy, "run")
    store = ran_copy / ".okrsync" / "store.db"
    assert r.code == 1, r
    text = one_line(r.err)
    assert f"cannot write the store {store}" in text, r
    assert f"make {store.parent} and the files in it writable" in text, r
    assert "server" not in text and "Traceback" not in text, r
    # A project folder that cannot even hold a store yet: read commands say so, naming the path.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "okrsync.yaml").write_text(PROJECT)
    r = read_only(cli, fresh, "status")
    assert r.code == 1, r
    assert f"there is no store at {fresh / '.okrsync' / 'store.db'} yet" in one_line(r.err), r
    assert "okrsync run" in r.err and "Traceback" not in r.err, r


# ---- the template of `okrsync init` ---------------------------------------------------------------
def test_the_init_template_computes_what_its_titles_say(cli: Cli, erp: Path, tmp_path: Path) -> None:
    """Run the template unchanged on an ERP with draft and cancelled orders: revenue is booked revenue,
    the average order value is that revenue over the orders it counts, EMEA revenue is EMEA's share."""
    shutil.copy(erp, tmp_path / "erp.db")
    assert cli("init", cwd=tmp_path).code == 0
    r = cli("run", cwd=tmp_path)
    assert r.code == 0, r
    status = json.loads(cli("status", "--json", cwd=tmp_path).out)
    krs: dict[str, Decimal] = {}

    def walk(objectives: list[dict[str, Any]]) -> None:
        for o in objectives:
            krs.update({k["id"]: Decimal(k["value"]) for k in o["key_results"]})
            walk(o["objectives"])

    walk(status["objectives"])
    booked = "state IN ('confirmed', 'done') AND order_date BETWEEN '2026-10-01' AND '2026-12-31'"
    with sqlite3.connect(erp) as conn:
        n, revenue = conn.execute(f"SELECT count(*), SUM(total_amount) FROM orders WHERE {booked}").fetchone()
        (emea,) = conn.execute(f"SELECT SUM(total_amount) FROM orders WHERE {booked} AND region = 'EMEA'"
                               ).fetchone()
        every = conn.execute("SELECT count(*) FROM orders WHERE order_date >= '2026-10-01'").fetchone()[0]
    assert every > n, "the ERP has orders that are not booked: the test can tell the counts apart"
    cents = Decimal("0.01")
    assert krs["KR-REVENUE"] == Decimal(str(revenue)).quantize(cents)
    assert krs["KR-REVENUE-EMEA"] == Decimal(str(emea)).quantize(cents)
    assert krs["KR-AOV"].quantize(cents) == (krs["KR-REVENUE"] / n).quantize(cents)


# ---- the demo's "try next" commands, typed as printed ---------------------------------------------
VENV_BIN = OKRSYNC.parent


def as_typed(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180, check=False)


def test_the_demo_prints_commands_that_work_as_shown(cli: Cli, tmp_path: Path) -> None:
    """The README's install leaves okrsync in .venv/bin, not on PATH: what the demo suggests must run
    when typed as printed, from where the demo was started (and say `okrsync` when it is on PATH)."""
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)  # the README's layout: ./.venv, run from here
    path = os.pathsep.join(p for p in cli.env.get("PATH", "").split(os.pathsep)
                           if p and Path(p).resolve() != VENV_BIN.resolve())
    env = {**cli.env, "PATH": path}
    built = as_typed(".venv/bin/okrsync demo --dir demo --no-salesforce", tmp_path, env)
    assert built.returncode == 0, built.stderr
    lines = [line.strip() for line in built.stdout.splitlines()]
    commands = [line for line in lines if line.startswith(".venv/bin/okrsync ")]
    assert not any(line.startswith("okrsync ") for line in lines), built.stdout
    assert len(commands) >= 8, built.stdout
    assert all(c.startswith(".venv/bin/okrsync -p demo/okrsync.yaml ") for c in commands), commands
    # a demo without the CRM suggests nothing about it (its KRs do not exist)
    assert not any("KR-SF-" in c or "sandbox salesforce" in c for c in commands), commands
    read_only = [c for c in commands if c.split()[-1] in ("KR-REV", "--json") and " diff " not in c]
    assert len(read_only) >= 3, commands
    for command in read_only:
        r = as_typed(command, tmp_path, env)
        assert r.returncode == 0, (command, r.stderr)
    # A demo that exists already: the hint names the same program; `okrsync` once it is on PATH.
    again = as_typed(".venv/bin/okrsync demo --dir demo", tmp_path, env)
    assert "`.venv/bin/okrsync -p demo/okrsync.yaml status`" in " ".join(again.stderr.split()), again.stderr
    on_path = as_typed(".venv/bin/okrsync demo --dir demo", tmp_path, {**env, "PATH": f"{VENV_BIN}:{path}"})
    assert "`okrsync -p demo/okrsync.yaml status`" in " ".join(on_path.stderr.split()), on_path.stderr
    status = as_typed("okrsync -p demo/okrsync.yaml status --json", tmp_path,
                      {**env, "PATH": f"{VENV_BIN}:{path}"})
    assert status.returncode == 0 and json.loads(status.stdout)["objectives"], status.stderr


# ---- Ctrl-C in a terminal -------------------------------------------------------------------------
TWO_SOURCES = PROJECT.replace("sources:\n", "sources:\n  erp2:\n    kind: sql\n    url: sqlite:///erp2.db\n"
                              "    statement_timeout_seconds: 3600\n", 1).replace(
    "metrics:\n", "  shipments:\n    source: erp2\n    table: shipments\n    primary_key: id\n"
    "    cursor: [write_date, create_date]\nmetrics:\n", 1)


class Terminal:
    """``okrsync ARGS`` in a pseudo-terminal of its own (its controlling tty), as typed in a shell:
    the line discipline turns a typed ^C into SIGINT for its foreground process group."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.output = bytearray()
        self.proc = subprocess.Popen([str(OKRSYNC), *args], cwd=cwd, env=env, stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True, preexec_fn=_take_tty)
        os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the other side closed
                return
            if not chunk:
                return
            self.output += chunk

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def text(self) -> str:
        return " ".join(self.output.decode(errors="replace").split())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        self.reader.join(timeout=60)
        os.close(self.master)


def _take_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # A shell gives a program SIGINT's default; a test runner's worker may ignore it (xdist does), and
    # children inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def until(what: str, check: Callable[[], object], limit: float = 300) -> object:
    """Poll ``check`` until it returns something truthy (the limit only stops a hung test)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_ctrl_c_in_a_terminal_stops_the_run_and_says_what_was_kept(cli: Cli, erp: Path,
                                                                   tmp_path: Path) -> None:
    for name in ("erp.db", "erp2.db"):
        shutil.copy(erp, tmp_path / name)
    (tmp_path / "okrsync.yaml").write_text(TWO_SOURCES)
    store = tmp_path / ".okrsync" / "store.db"

    def committed() -> set[str]:
        if not store.exists():
            return set()
        with sqlite3.connect(store) as conn:
            try:
                return {r[0] for r in conn.execute("SELECT stream FROM sync_run WHERE status = 'committed'")}
            except sqlite3.OperationalError:  # not created yet
                return set()

    lock = sqlite3.connect(tmp_path / "erp2.db", isolation_level=None)
    lock.execute("PRAGMA journal_mode=DELETE")
    lock.execute("BEGIN EXCLUSIVE")  # the run waits on shipments: orders committed, shipments not
    term = Terminal(["run"], tmp_path, {**cli.env, "TERM": "xterm", "NO_COLOR": "1"})
    try:
        until("orders to commit while shipments waits", lambda: committed() == {"orders"})
        until("the live progress on the terminal", lambda: "✓ sync orders" in term.text())
        term.type(b"\x03")
        assert until("the run to exit", term.proc.poll) == 130, term.text()
    finally:
        term.close()
        lock.execute("ROLLBACK")
        lock.close()
    said = term.text()
    assert "interrupted: kept what was synced before it (orders); not synced: shipments (an unfinished " \
           "sync keeps nothing); no key result was recorded" in said, said
    assert "Traceback" not in said, said
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT status FROM run").fetchall() == [("failed",)]
        assert conn.execute("SELECT run_id FROM run_lease").fetchall() in ([], [(None,)])
    again = cli("run", cwd=tmp_path)  # the next run starts at once and finishes the job
    assert again.code == 0, again
    assert "shipments" in again.out and committed() == {"orders", "shipments"}
