"""Salesforce extraction: okrsync's Salesforce connector (REST, Bulk API 2.0, incremental) against what a
hand-written script does, on the loopback Salesforce sandbox (``okrsync/sandboxes/salesforce``).

* **Baseline**: the real simple-salesforce client with a session id (what ``SalesforceSandbox.client()``
  builds), ``sf.query_all_iter(SOQL)`` over REST, every row collected into ``pd.DataFrame.from_records``.
* **okrsync REST**: ``SalesforceConnector.read(stream, None)`` with password login and
  ``bulk_threshold`` 10⁹ (REST pages of 2,000, typed 50,000-row DataFrames).
* **okrsync Bulk 2.0**: the same with ``bulk_threshold`` 0: one Bulk API 2.0 query job, CSV pages.
* **Incremental**: after ``Org.mutate`` changes 1 % of the opportunities (80 % updated, 20 % deleted),
  ``read`` and ``deleted`` after the watermark of the full read, on a fresh connector.

The sandbox runs in a child process (``spawn``): the timings and the traced memory are this process's
alone, as against a remote org, and the server never competes with the client for the GIL. Seconds are
the median of ``REPEATS`` runs (interleaved: baseline, REST, Bulk, …); memory is the ``tracemalloc`` peak
of one more run of each read (the tracing slows it: those runs are not timed). The baseline holds every
row; the connector's reads are consumed batch by batch, as a sync does.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import requests
from rich.console import Console
from rich.table import Table

from bench.core import MB, Results, Row, timed

T = TypeVar("T")
PHASE = "salesforce extraction"
ROWS = 200_000  # opportunities generated (the sandbox soft-deletes a few of them at generation)
QUICK_ROWS = 20_000
ACCOUNTS = 2000
SEED = 5
MUTATE_SEED = 9
MUTATE_FRACTION = 0.01
REPEATS = 3
PAGE = 2000  # REST rows per page (Salesforce's maximum; the connector's page_size)
SOQL = (
    "SELECT Id, Amount, StageName, CloseDate, IsWon, CurrencyIsoCode, SystemModstamp "
    "FROM Opportunity ORDER BY SystemModstamp, Id"
)
FIELDS = ("Amount", "StageName", "CloseDate", "IsWon", "CurrencyIsoCode")
CENT = Decimal("0.01")
BASELINE, REST, BULK, INCREMENTAL = "baseline", "rest", "bulk", "incremental"
LABELS = {
    BASELINE: "baseline: simple-salesforce query_all_iter → DataFrame",
    REST: "okrsync connector, REST",
    BULK: "okrsync connector, Bulk API 2.0",
    INCREMENTAL: "okrsync incremental (read + deleted)",
}
BASELINE_SHORT = "query_all_iter → DataFrame"


def say(msg: str) -> None:
    print(f"· {msg}", flush=True)


# ---- the sandbox, in a child process -------------------------------------------------------------------


def _org_amount(amount: Any) -> Decimal | None:
    return None if amount is None else Decimal(repr(float(amount))).quantize(CENT)


def _serve(pipe: Connection, opportunities: int, accounts: int, seed: int) -> None:
    """The child process: start the sandbox, say how to reach it, answer commands until ``stop``."""
    from okrsync.sandboxes.salesforce import SalesforceSandbox

    box = SalesforceSandbox(opportunities=opportunities, accounts=accounts, seed=seed).start()
    try:
        c = box.credentials
        pipe.send(
            {
                "instance_url": box.instance_url,
                "cert_path": str(box.cert_path),
                "session_id": box.session_id,
                "version": box.version,
                "username": c.username,
                "password": c.password,
                "security_token": c.security_token,
            }
        )
        while True:
            try:
                cmd, *args = pipe.recv()
            except EOFError:
                return
            if cmd == "stop":
                return
            try:
                if cmd == "live":  # the org's live opportunities: Ids and the Amount sum (Decimal)
                    live = box.org.records("Opportunity")
                    amounts = [a for r in live if (a := _org_amount(r["Amount"])) is not None]
                    pipe.send(("ok", ([r["Id"] for r in live], sum(amounts, Decimal(0)))))
                elif cmd == "mutate":
                    pipe.send(("ok", box.org.mutate("Opportunity", *args)))
                elif cmd == "deleted_after":  # (SystemModstamp, Id) > the watermark (naive UTC)
                    after = (args[0].replace(tzinfo=UTC), args[1])
                    every = box.org.records("Opportunity", include_deleted=True)
                    pipe.send(
                        (
                            "ok",
                            [
                                r["Id"]
                                for r in every
                                if r["IsDeleted"] and (r["SystemModstamp"], r["Id"]) > after
                            ],
                        )
                    )
                else:
                    pipe.send(("error", f"unknown command {cmd!r}"))
            except Exception as exc:  # reported to the parent, which raises it
                pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        box.stop()


class Sandbox:
    """``SalesforceSandbox(opportunities=…, accounts=…, seed=…).start()`` in a child process."""

    def __init__(self, opportunities: int, accounts: int = ACCOUNTS, seed: int = SEED) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, opportunities, accounts, seed), name="salesforce-sandbox", daemon=True
        )
        self._proc.start()
        child.close()
        try:
            if not self._pipe.poll(300):
                raise TimeoutError("the Salesforce sandbox did not start within 300 s")
            self.info: dict[str, str] = self._pipe.recv()
        except BaseException:
            self.stop()
            raise
        self.instance_url = self.info["instance_url"]
        self.cert_path = Path(self.info["cert_path"])

    def _ask(self, *cmd: Any) -> Any:
        self._pipe.send(cmd)
        status, value = self._pipe.recv()
        if status != "ok":
            raise RuntimeError(f"Salesforce sandbox: {value}")
        return value

    def live(self) -> tuple[set[str], Decimal]:
        """``{r["Id"] for r in box.org.records("Opportunity")}`` and the sum of their Amounts."""
        ids, amount = self._ask("live")
        return set(ids), amount

    def mutate(self, fraction: float, seed: int) -> tuple[list[str], list[str]]:
        """``box.org.mutate("Opportunity", fraction, seed=seed)``: (updated Ids, deleted Ids)."""
        updated, deleted = self._ask("mutate", fraction, seed)
        return list(updated), list(deleted)

    def deleted_after(self, cursor: datetime, record_id: str) -> set[str]:
        """Ids of the org's deleted opportunities with (SystemModstamp, Id) after the watermark."""
        return set(self._ask("deleted_after", cursor, record_id))

    def client(self) -> tuple[Any, requests.Session]:
        """What ``box.client()`` builds (a session-id ``Salesforce`` trusting the sandbox's certificate),
        and its HTTP session."""
        from simple_salesforce import Salesforce

        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert_path)
        sf = Salesforce(
            instance_url=self.instance_url,
            session_id=self.info["session_id"],
            session=s,
            version=self.info["version"],
        )
        return sf, s

    def stop(self) -> None:
        try:
            self._pipe.send(("stop",))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=15)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(timeout=5)
        self._pipe.close()


# ---- the reads -------------------------------------------------------------------------------------------


def api_counter(session: requests.Session) -> list[int]:
    """Counts the session's requests to ``/services/data/`` (as the connector's ``api_calls`` does)."""
    count = [0]

    def hook(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" in resp.url:
            count[0] += 1

    session.hooks["response"].append(hook)
    return count


def stream_spec() -> Any:
    from connectors.base import StreamSpec

    return StreamSpec(
        name="opportunities",
        source="crm",
        primary_key="Id",
        cursor="SystemModstamp",
        fields=FIELDS,
        options={"object": "Opportunity"},
    )


def connector(box: Sandbox, **options: Any) -> Any:
    """A fresh ``SalesforceConnector`` logging in with username, password and token (from the env)."""
    from connectors.salesforce import SalesforceConnector

    os.environ["SF_PASSWORD"] = box.info["password"]
    os.environ["SF_TOKEN"] = box.info["security_token"]
    return SalesforceConnector(
        "crm",
        {
            "auth": "password",
            "username": box.info["username"],
            "password_env": "SF_PASSWORD",
            "security_token_env": "SF_TOKEN",
            "login_url": box.instance_url,
            "ca_bundle": str(box.cert_path),
            **options,
        },
        Path.cwd(),
    )


VARIANT_OPTIONS: dict[str, dict[str, Any]] = {
    REST: {"bulk_threshold": 10**9},
    BULK: {"bulk_threshold": 0, "bulk_poll_seconds": 0.2},
}


@dataclass
class Read:
    """One full read: what it returned and what it cost."""

    rows: int
    seconds: float
    api_calls: int
    bulk_jobs: int = 0
    cpu: float = 0.0  # CPU seconds of this process (the client; the sandbox is another process)
    ids: set[str] = field(default_factory=set)
    amount: Decimal = Decimal(0)
    last: tuple[datetime, str] | None = None  # (SystemModstamp, Id) of the last row


def clocked(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    cpu = time.process_time()
    out, seconds = timed(fn)
    return out, seconds, time.process_time() - cpu


def _decimal_sum(values: list[Any]) -> Decimal:
    total = Decimal(0)
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        total += (Decimal(repr(v)) if isinstance(v, float) else Decimal(v)).quantize(CENT)
    return total


def read_baseline(box: Sandbox, keep: bool = True) -> Read:
    """The hand-written script: every row through ``query_all_iter`` into one DataFrame."""

    def go() -> tuple[pd.DataFrame, int]:
        sf, session = box.client()
        calls = api_counter(session)
        try:
            df = pd.DataFrame.from_records(sf.query_all_iter(SOQL)).drop(columns="attributes")
        finally:
            session.close()
        return df, calls[0]

    (df, calls), seconds, cpu = clocked(go)
    out = Read(len(df), seconds, calls, cpu=cpu)
    if keep:
        out.ids = set(df["Id"])
        out.amount = _decimal_sum(df["Amount"].tolist())  # floats: Decimal(repr(x)) to the cent
    return out


def _consume(frames: Iterator[pd.DataFrame], keep: bool) -> tuple[int, list[pd.DataFrame]]:
    rows, kept = 0, []
    for f in frames:
        rows += len(f)
        if keep:
            kept.append(f)
    return rows, kept


def _tally(out: Read, frames: list[pd.DataFrame]) -> Read:
    for f in frames:
        out.ids.update(f["Id"])
        out.amount += _decimal_sum(f["Amount"].tolist())
    if frames and len(frames[-1]):
        last = frames[-1].iloc[-1]
        out.last = (pd.Timestamp(last["SystemModstamp"]).to_pydatetime(), str(last["Id"]))
    return out


def read_connector(box: Sandbox, variant: str, keep: bool = True) -> Read:
    """``conn.read(stream, None)`` on a fresh connector (login included), every batch consumed.

    ``keep``: hold the frames for the checks (counted after the clock stops); without it each batch is
    dropped once counted, as a sync drops it once staged."""
    stream = stream_spec()

    def go() -> tuple[int, list[pd.DataFrame], int, int]:
        conn = connector(box, **VARIANT_OPTIONS[variant])
        try:
            rows, frames = _consume(conn.read(stream, None), keep)
            return rows, frames, conn.api_calls, conn.bulk_jobs
        finally:
            conn.close()

    (rows, frames, calls, jobs), seconds, cpu = clocked(go)
    return _tally(Read(rows, seconds, calls, jobs, cpu=cpu), frames)


@dataclass
class Incremental:
    read: Read
    deleted_ids: set[str]
    read_calls: int
    deleted_calls: int


def read_incremental(box: Sandbox, since: Any, keep: bool = True) -> Incremental:
    """``conn.read(stream, watermark)`` then ``conn.deleted(stream, watermark)`` on a fresh connector."""
    stream = stream_spec()

    def go() -> tuple[int, list[pd.DataFrame], set[str], int, int]:
        conn = connector(box, **VARIANT_OPTIONS[REST])
        try:
            rows, frames = _consume(conn.read(stream, since), keep)
            read_calls = conn.api_calls
            gone: set[str] = set()
            for f in conn.deleted(stream, since):
                gone.update(f["Id"])
            return rows, frames, gone, read_calls, conn.api_calls - read_calls
        finally:
            conn.close()

    (rows, frames, gone, read_calls, deleted_calls), seconds, cpu = clocked(go)
    out = _tally(Read(rows, seconds, read_calls + deleted_calls, cpu=cpu), frames)
    return Incremental(out, gone, read_calls, deleted_calls)


@contextmanager
def traced() -> Iterator[list[float]]:
    """``with traced() as peak: …`` then ``peak[0]``: the tracemalloc peak (MB) over the traced memory at
    entry. Python objects and numpy buffers of this process (the sandbox is another process)."""
    gc.collect()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    peak = [0.0]
    try:
        yield peak
    finally:
        peak[0] = (tracemalloc.get_traced_memory()[1] - start) / MB


# ---- the phase -------------------------------------------------------------------------------------------


class SalesforcePhase:
    def __init__(self, opportunities: int, res: Results, repeats: int = REPEATS) -> None:
        self.n, self.res, self.repeats = opportunities, res, repeats

    def run(self) -> None:
        say(f"salesforce: starting the sandbox with {self.n:,} opportunities (child process) …")
        box, start_s = timed(lambda: Sandbox(self.n))
        try:
            self._run(box, start_s)
        finally:
            box.stop()

    def _run(self, box: Sandbox, start_s: float) -> None:
        live, org_amount = box.live()
        say(f"  {start_s:.1f} s; {len(live):,} live opportunities at {box.instance_url}")
        readers: dict[str, Callable[[bool], Read]] = {
            BASELINE: lambda keep: read_baseline(box, keep),
            REST: lambda keep: read_connector(box, REST, keep),
            BULK: lambda keep: read_connector(box, BULK, keep),
        }
        runs: dict[str, list[Read]] = {v: [] for v in readers}
        for i in range(self.repeats):
            for v, fn in readers.items():
                r = fn(True)
                runs[v].append(r)
                say(
                    f"salesforce: {LABELS[v]} (run {i + 1}/{self.repeats}): {r.rows:,} rows, "
                    f"{r.seconds:.2f} s, {r.api_calls} API calls"
                )
        peaks: dict[str, float] = {}
        tracemalloc.start()
        try:
            for v, fn in readers.items():
                with traced() as peak:
                    fn(False)
                peaks[v] = peak[0]
                say(f"salesforce: {LABELS[v]}, traced (not timed): peak {peaks[v]:.1f} MB")
        finally:
            tracemalloc.stop()
        self._check_full(runs, live, org_amount)
        seconds = {v: statistics.median(r.seconds for r in rs) for v, rs in runs.items()}
        cpu = {v: statistics.median(r.cpu for r in rs) for v, rs in runs.items()}
        inc, (inc_s, inc_cpu), inc_peak, changed = self._incremental(box, runs[REST][0])
        seconds[INCREMENTAL], cpu[INCREMENTAL] = inc_s, inc_cpu
        self._report(runs, seconds, cpu, peaks, inc, inc_peak, changed, len(live))

    def _check_full(self, runs: dict[str, list[Read]], live: set[str], org_amount: Decimal) -> None:
        n = len(live)
        bad = [
            f"{v} run {i + 1}: {r.rows:,} rows, {len(r.ids):,} Ids, {len(r.ids ^ live):,} differ"
            for v, rs in runs.items()
            for i, r in enumerate(rs)
            if r.rows != n or r.ids != live
        ]
        self.res.check(
            "salesforce: baseline, REST and Bulk reads return the same Ids = the org's live opportunities",
            not bad,
            f"{n:,} Ids, once each, in all {sum(len(rs) for rs in runs.values())} runs"
            + "".join(f"; {b}" for b in bad[:3]),
        )
        sums = {v: {r.amount for r in rs} for v, rs in runs.items()}
        same = all(s == {org_amount} for s in sums.values())
        self.res.check(
            "salesforce: Amount sums equal (Decimal; baseline floats via Decimal(repr(x)) to the cent)",
            same,
            f"Σ {org_amount:,} in the org"
            + ("" if same else "; " + "; ".join(f"{v}: {sorted(s)}" for v, s in sums.items())),
        )
        calls = {v: sorted({r.api_calls for r in rs}) for v, rs in runs.items()}
        jobs = sorted({r.bulk_jobs for r in runs[BULK]})
        self.res.check(
            "salesforce: the Bulk read runs as one Bulk API 2.0 job, the REST read as none",
            jobs == [1] and all(r.bulk_jobs == 0 for r in runs[REST]),
            f"Bulk jobs {jobs}; API calls per run {calls}",
        )

    def _incremental(self, box: Sandbox, full: Read) -> tuple[Incremental, tuple[float, float], float, int]:
        from connectors.base import Watermark

        assert full.last is not None
        since = Watermark(full.last[0], (full.last[1],))
        updated, deleted = box.mutate(MUTATE_FRACTION, MUTATE_SEED)
        changed = len(updated)
        say(
            f"salesforce: mutate {MUTATE_FRACTION:.0%}: {len(updated):,} updated, {len(deleted):,} deleted; "
            f"incremental read after {full.last[0].isoformat()} / {full.last[1]} …"
        )
        incs = [read_incremental(box, since) for _ in range(self.repeats)]
        tracemalloc.start()
        try:
            with traced() as peak:
                read_incremental(box, since, keep=False)
        finally:
            tracemalloc.stop()
        inc = incs[0]
        minimum = math.ceil(changed / PAGE) + 1
        bad = [i + 1 for i, x in enumerate(incs) if x.read.rows != changed or x.read.ids != set(updated)]
        self.res.check(
            f"salesforce: the incremental read returns exactly the {changed:,} updated Ids",
            not bad,
            f"{inc.read.rows:,} rows, {len(inc.read.ids & set(updated)):,} of the updated Ids"
            + (f"; wrong in runs {bad}" if bad else ""),
        )
        # The generated org soft-deleted a few records itself; any of those stamped after the watermark
        # are deletions since the last sync too (none at 200,000 opportunities, seed 5).
        expected = box.deleted_after(*full.last)
        earlier = expected - set(deleted)
        bad = [i + 1 for i, x in enumerate(incs) if x.deleted_ids != expected]
        self.res.check(
            f"salesforce: deleted() returns exactly the {len(deleted):,} deleted Ids"
            + (f" (+ {len(earlier)} deleted at generation, after the watermark)" if earlier else ""),
            not bad and set(deleted) <= expected,
            f"{len(inc.deleted_ids):,} Ids, {len(inc.deleted_ids & set(deleted)):,} of the deleted"
            + (f"; wrong in runs {bad}: {sorted(inc.deleted_ids ^ expected)[:3]}" if bad else ""),
        )
        calls = max(x.read.api_calls for x in incs)
        self.res.check(
            "salesforce: incremental API calls ≤ minimum + 2 (describe counted)",
            calls <= minimum + 2,
            f"{calls} calls (read {inc.read_calls}, deleted {inc.deleted_calls}); minimum {minimum} = "
            f"⌈{changed:,} / {PAGE:,}⌉ pages + 1 deletion query, plus 1 describe",
        )
        seconds = statistics.median(x.read.seconds for x in incs)
        say(
            f"  {inc.read.rows:,} rows + {len(inc.deleted_ids):,} deleted Ids, {seconds:.2f} s, "
            f"{inc.read.api_calls} API calls (minimum {minimum} + describe), traced peak {peak[0]:.1f} MB"
        )
        return inc, (seconds, statistics.median(x.read.cpu for x in incs)), peak[0], changed

    def _report(
        self,
        runs: dict[str, list[Read]],
        seconds: dict[str, float],
        cpu: dict[str, float],
        peaks: dict[str, float],
        inc: Incremental,
        inc_peak: float,
        changed: int,
        live: int,
    ) -> None:
        base_s, inc_s = seconds[BASELINE], seconds[INCREMENTAL]
        minimum = math.ceil(changed / PAGE) + 1
        table: list[dict[str, Any]] = []
        for v, rs in runs.items():
            r = rs[0]
            table.append(
                {
                    "variant": LABELS[v],
                    "rows": r.rows,
                    "seconds": seconds[v],
                    "rows_per_s": r.rows / seconds[v],
                    "speed_vs_baseline": base_s / seconds[v],
                    "cpu_seconds": cpu[v],
                    "api_calls": r.api_calls,
                    "bulk_jobs": r.bulk_jobs,
                    "peak_traced_mb": peaks[v],
                    "all_seconds": [round(x.seconds, 3) for x in rs],
                    "all_cpu_seconds": [round(x.cpu, 3) for x in rs],
                }
            )
        table.append(
            {
                "variant": f"{LABELS[INCREMENTAL]}, {MUTATE_FRACTION:.0%} changed",
                "rows": inc.read.rows,
                "deleted_ids": len(inc.deleted_ids),
                "seconds": inc_s,
                "rows_per_s": inc.read.rows / inc_s,
                "speed_vs_baseline": base_s / inc_s,
                "cpu_seconds": cpu[INCREMENTAL],
                "api_calls": inc.read.api_calls,
                "api_calls_minimum": minimum,
                "bulk_jobs": 0,
                "peak_traced_mb": inc_peak,
            }
        )
        print_table(table, self.n, live, self.repeats)
        self.res.extra["salesforce"] = {
            "opportunities_generated": self.n,
            "live_opportunities": live,
            "soql": SOQL,
            "repeats": self.repeats,
            "variants": [
                {k: round(v, 4) if isinstance(v, float) else v for k, v in t.items()} for t in table
            ],
        }
        base_rate, base_mb = live / base_s, peaks[BASELINE]
        self.res.add(
            Row(
                PHASE,
                f"baseline: {BASELINE_SHORT}",
                base_rate,
                "rows/s",
                None,
                None,
                note=f"{base_s:.2f} s (client CPU {cpu[BASELINE]:.2f} s), "
                f"{runs[BASELINE][0].api_calls} API calls, peak {base_mb:.0f} MB traced",
            )
        )
        for v in (REST, BULK):
            r = runs[v][0]
            self.res.add(
                Row(
                    PHASE,
                    f"{LABELS[v]}: throughput",
                    r.rows / seconds[v],
                    "rows/s",
                    BASELINE_SHORT,
                    base_rate,
                    note=f"{seconds[v]:.2f} s (client CPU {cpu[v]:.2f} s), {r.api_calls} API calls"
                    + (f", {r.bulk_jobs} Bulk job" if r.bulk_jobs else ""),
                    higher_is_better=True,
                )
            )
            self.res.add(
                Row(
                    PHASE,
                    f"{LABELS[v]}: peak traced memory",
                    peaks[v],
                    "MB",
                    BASELINE_SHORT,
                    base_mb,
                    note="tracemalloc; batches consumed one by one",
                )
            )
        self.res.add(
            Row(
                PHASE,
                f"incremental, {MUTATE_FRACTION:.0%} changed: {inc.read.rows:,} rows + "
                f"{len(inc.deleted_ids):,} deleted",
                inc_s,
                "s",
                f"full read, {BASELINE_SHORT}",
                base_s,
                note=f"{inc.read.api_calls} API calls (minimum {minimum} + describe)",
            )
        )


def print_table(table: list[dict[str, Any]], n: int, live: int, repeats: int) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=170)
    t = Table(
        title=f"Salesforce extraction · {live:,} live opportunities (of {n:,} generated) · loopback sandbox",
        caption=f"seconds (wall) and client CPU (this process; the sandbox is another): median of "
        f"{repeats}; × baseline = baseline seconds ÷ variant seconds (>1: faster); memory: tracemalloc "
        "peak of one more, untimed read",
    )
    for h in (
        "variant",
        "rows",
        "seconds",
        "rows/s",
        "× baseline",
        "client CPU s",
        "API calls",
        "peak memory",
    ):
        t.add_column(h, justify="left" if h == "variant" else "right")
    for row in table:
        calls = str(row["api_calls"])
        if "api_calls_minimum" in row:
            calls += f" (min {row['api_calls_minimum']} + describe)"
        elif row["bulk_jobs"]:
            calls += f" ({row['bulk_jobs']} Bulk job)"
        rows = f"{row['rows']:,}" + (f" + {row['deleted_ids']:,} deleted" if "deleted_ids" in row else "")
        t.add_row(
            row["variant"],
            rows,
            f"{row['seconds']:.2f}",
            f"{row['rows_per_s']:,.0f}",
            f"{row['speed_vs_baseline']:.2f}×",
            f"{row['cpu_seconds']:.2f}",
            calls,
            f"{row['peak_traced_mb']:,.1f} MB",
        )
    console.print(t)


def run(opportunities: int, res: Results, repeats: int = REPEATS) -> Results:
    SalesforcePhase(opportunities, res, repeats).run()
    return res
