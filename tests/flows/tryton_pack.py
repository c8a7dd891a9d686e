"""The Tryton metric pack (examples/tryton/okrsync.yaml) against real Tryton databases.

The pack runs as a run does (sync every stream, compute every KR: the pipeline's steps without Prefect's
scheduling) on a private copy of a Tryton database built through Tryton's own API (tests/erp/), on
PostgreSQL and on SQLite. Every KR value must equal what Tryton itself says, computed by
``tests.erp.tryton_api facts`` from Tryton's model reads (never SQL, never okrsync). Then Tryton's API
takes a draft order through quote, confirmation, shipment and invoice, and an incremental run must read
exactly the changed records and move the KRs to Tryton's new values.

The cases live here; ``test_tryton_pack_postgresql.py`` and ``test_tryton_pack_sqlite.py`` collect them,
each with its ``backend`` fixture, so pytest-xdist (``--dist loadfile``) runs the two backends, and
their Tryton builds, on different workers at the same time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows import compute, pipeline
from okr_store import queries
from okr_store.records import SyncCounts
from okr_store.store import Store
from okrsync.errors import OkrsyncError
from okrsync.project import Project, load_project
from tests.erp.fixtures import TEST_TODAY, TrytonDb, tryton_for

PACK = Path(__file__).resolve().parents[2] / "examples" / "tryton" / "okrsync.yaml"
AS_OF = datetime(2026, 11, 20, 18, 0)  # UTC, the pack's timezone: the last day of the built data
Q4 = (date(2026, 10, 1), TEST_TODAY)  # the pack's default period, to date
PLACES = Decimal("1e-12")  # okrsync keeps ratios and averages to 12 places
KEY_ACCOUNT = "2"  # the party the pack pins (Acme Holdings, the builder's key account)


class Runner:
    """Sync every stream and compute every KR as a run does (without Prefect's scheduling around it)."""

    def __init__(self, path: Path) -> None:
        self.project: Project = load_project(path)
        self.store = Store(self.project.store_url())
        compute.register_okrs(self.project, self.store)

    def run(self) -> tuple[dict[str, SyncCounts], dict[str, str]]:
        run_id = self.store.start_run(AS_OF, None)
        counts: dict[str, SyncCounts] = {}
        failed: dict[str, str] = {}
        connector = self.project.connector("tryton")
        try:
            for name in self.project.streams:
                try:
                    counts[name] = pipeline.sync_stream(self.project, self.store, connector, run_id, name)
                except OkrsyncError as exc:
                    failed[name] = exc.message
        finally:
            connector.close()
        compute.compute_values(self.project, self.store, run_id, None, AS_OF, failed)
        self.store.finish_run(run_id, "partial" if failed else "succeeded", None)
        return counts, failed

    def krs(self) -> dict[str, queries.KrStatus]:
        with self.store.engine.connect() as conn:
            return {k.id: k for o in queries.status_tree(conn) for k in o.key_results}


def change(db: TrytonDb, command: str, day: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tryton's API makes a change on ``day``: what it did, and the facts after it (one Tryton process
    for both: see :func:`expected`)."""
    done = db.api(command, "--day", day, "--facts", Q4[0].isoformat(), Q4[1].isoformat())
    return done, done.pop("facts")


def expected(db: TrytonDb, f: dict[str, Any] | None = None) -> dict[str, Decimal]:
    """Every KR of the pack, from Tryton's own model reads (``f``: facts already read)."""
    if f is None:
        f = facts(db)
    booked = Decimal(f["booked_revenue"])
    key = Decimal(f["booked_by_party"].get(KEY_ACCOUNT, "0"))
    days = f["days_to_invoice"]
    assert booked and f["shipments_due"] and days, f"the built data leaves a KR of the pack empty: {f}"
    return {
        "KR-BOOKED": booked,
        "KR-KEY-ACCOUNT": key,
        "KR-KEY-SHARE": (key / booked).quantize(PLACES),
        "KR-ON-TIME": (Decimal(f["shipments_on_time"]) / f["shipments_due"]).quantize(PLACES),
        "KR-DAYS-TO-INVOICE": (Decimal(sum(days)) / len(days)).quantize(PLACES),
        "KR-INVOICED": Decimal(f["invoiced_revenue"]),
    }


def facts(db: TrytonDb) -> dict[str, Any]:
    return db.api("facts", "--start", Q4[0].isoformat(), "--end", Q4[1].isoformat())


def check(runner: Runner, want: dict[str, Decimal]) -> None:
    """Assert every KR was computed (none held) and equals Tryton's own value."""
    krs = runner.krs()
    assert set(krs) == set(want)
    for kr_id, value in want.items():
        kr = krs[kr_id]
        assert kr.held_reason is None, (kr_id, kr.held_reason)
        assert kr.value is not None and kr.value.value == value, (kr_id, kr.value, value)


@pytest.fixture
def pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the pack in a folder of its own (its store goes to .okrsync/ beside it)."""
    monkeypatch.delenv("OKRSYNC_STORE_URL", raising=False)
    shutil.copyfile(PACK, tmp_path / "okrsync.yaml")
    return tmp_path / "okrsync.yaml"


@pytest.mark.slow  # every pack KR against Tryton's reporting before and after ~10 events: minutes
def test_pack_krs_equal_trytons_own_numbers_before_and_after_a_change(
    request: pytest.FixtureRequest, backend: str, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tryton_for(request, backend)
    assert db.summary["top_customer"]["party_id"] == int(KEY_ACCOUNT)  # the pack pins the largest customer
    monkeypatch.setenv("TRYTON_DATABASE_URL", db.url)
    runner = Runner(pack)

    counts, failed = runner.run()
    check(runner, expected(db))
    assert not failed, failed
    states = db.summary["sale_states"]
    confirmed = states.get("processing", 0) + states.get("done", 0)  # one shipment and invoice each
    assert counts["shipments"].inserted == confirmed
    before = runner.krs()["KR-BOOKED"].value

    changed, f = change(db, "advance-draft", TEST_TODAY.isoformat())  # quote → confirm → ship → invoice
    counts, failed = runner.run()
    reads = {name: (c.rows_read, c.inserted, c.updated, c.deleted) for name, c in counts.items()}
    want_reads: dict[str, Any] = {"shipments": (1, 1, 0, 0), "order_to_invoice": (1, 1, 0, 0),
                                  "sales": (1, 0, 1, 0), "invoices": (1, 1, 0, 0)}
    assert reads == want_reads, reads
    after = expected(db, f)
    check(runner, after)
    # the order, dated today, adds its untaxed amount to this quarter's bookings
    assert before is not None and after["KR-BOOKED"] == before.value + Decimal(changed["untaxed_amount"])


def test_pack_validates_against_trytons_schema(request: pytest.FixtureRequest, backend: str,
                                               pack: Path) -> None:
    db = tryton_for(request, backend)
    env = {k: v for k, v in os.environ.items() if k not in ("OKRSYNC_PROJECT", "OKRSYNC_STORE_URL")}
    done = subprocess.run([Path(sys.executable).parent / "okrsync", "-p", str(pack), "validate",
                           "--check-sources"], env={**env, "TRYTON_DATABASE_URL": db.url},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 streams, 8 metrics, 6 key results" in " ".join(done.stdout.split())


def test_a_sale_cancelled_the_tryton_way_is_not_booked_revenue(
    request: pytest.FixtureRequest, backend: str, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shipment and invoice cancelled, both exceptions ignored: Tryton ends the sale ``done`` with its
    cached amount intact but actual quantities 0, and its own sale reporting no longer counts it."""
    db = tryton_for(request, backend)
    monkeypatch.setenv("TRYTON_DATABASE_URL", db.url)
    runner = Runner(pack)
    runner.run()
    before = runner.krs()["KR-BOOKED"].value
    assert before is not None

    cancelled, f = change(db, "cancel-sale", TEST_TODAY.isoformat())
    assert cancelled["state"] == "done" and Decimal(cancelled["untaxed_amount"]) > 0, cancelled
    assert not any(cancelled["actual_quantities"]), cancelled
    assert Q4[0] <= date.fromisoformat(cancelled["sale_date"]) <= Q4[1], cancelled  # it was booked in Q4

    counts, failed = runner.run()
    assert not failed, failed
    assert counts["sales"].updated == 1, counts["sales"]
    want = expected(db, f)  # Tryton's sale reporting: actual quantities
    check(runner, want)
    assert want["KR-BOOKED"] == before.value - Decimal(cancelled["untaxed_amount"])


def test_a_sale_in_another_currency_is_booked_at_trytons_rate_of_its_date(
    request: pytest.FixtureRequest, backend: str, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tryton_for(request, backend)
    monkeypatch.setenv("TRYTON_DATABASE_URL", db.url)
    runner = Runner(pack)
    runner.run()
    before = runner.krs()["KR-BOOKED"].value
    assert before is not None

    sale, f = change(db, "foreign-sale", "2026-11-05")  # EUR at 0.8 that day, 1.25 from the next
    counts, failed = runner.run()
    assert not failed, failed
    assert counts["sales"].inserted == 1, counts["sales"]
    want = expected(db, f)  # Tryton's sale reporting, in the company's currency (USD)
    check(runner, want)
    # 3 × 333.3333 EUR at 0.8 EUR per USD, at USD's two places: not 999.9999 added at face value
    assert Decimal(sale["untaxed_amount"]) == Decimal("1000.00")
    assert want["KR-BOOKED"] == before.value + Decimal("1250.00")


def test_an_invoice_credited_with_refund_is_taken_back_once(
    request: pytest.FixtureRequest, backend: str, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tryton posts a credit note and cancels the invoice: the ledger takes the revenue back once, and
    days-to-invoice still counts the sale (it was invoiced, on the credited invoice's date)."""
    db = tryton_for(request, backend)
    monkeypatch.setenv("TRYTON_DATABASE_URL", db.url)
    runner = Runner(pack)
    runner.run()
    before = runner.krs()["KR-INVOICED"].value
    assert before is not None

    credited, f = change(db, "credit-invoice", TEST_TODAY.isoformat())
    assert credited["state"] == "cancelled", credited  # the credit note is posted, or paid (reconciled)
    assert credited["credit_note_state"] in ("posted", "paid"), credited
    assert Decimal(credited["credit_note_amount"]) == -Decimal(credited["untaxed_amount"]), credited
    assert Q4[0] <= date.fromisoformat(credited["invoice_date"]), credited  # invoiced and credited in Q4
    counts, failed = runner.run()
    assert not failed, failed
    want = expected(db, f)  # invoiced revenue from Tryton's ledger (revenue accounts)
    check(runner, want)
    assert want["KR-INVOICED"] == before.value - Decimal(credited["untaxed_amount"])


def test_on_time_shipment_is_by_the_original_planned_date_and_overdue_counts_late(
    request: pytest.FixtureRequest, backend: str, pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tryton's reschedule action moves a missed planned date to today: a shipment that then leaves
    "on its planned date" is still late by the original one, and one not shipped at all is late as of
    now (Tryton's ``delay`` says both; ``facts`` computes the rate from it)."""
    db = tryton_for(request, backend)
    assert db.summary["shipments_rescheduled"] > 0  # the build's data already holds such shipments
    monkeypatch.setenv("TRYTON_DATABASE_URL", db.url)
    runner = Runner(pack)
    runner.run()
    before = expected(db)

    late, f = change(db, "late-shipments", TEST_TODAY.isoformat())
    shipped, waiting = late["shipped"], late["waiting"]
    assert shipped["state"] == "done" and shipped["effective_date"] == shipped["planned_date"], shipped
    assert shipped["origin_planned_date"] < shipped["planned_date"] and shipped["delay_days"] > 0, shipped
    assert waiting["state"] == "waiting" and waiting["delay_days"] > 0, waiting

    counts, failed = runner.run()
    assert not failed, failed
    assert counts["shipments"].inserted == 2, counts["shipments"]
    want = expected(db, f)
    check(runner, want)
    # both count as due and late: the rate's numerator stays, its denominator grows by two
    ratio = before["KR-ON-TIME"]
    assert want["KR-ON-TIME"] < ratio
    assert (Decimal(f["shipments_on_time"]) / (f["shipments_due"] - 2)).quantize(PLACES) == ratio
