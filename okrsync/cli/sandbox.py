"""``okrsync sandbox salesforce``: a local Salesforce-REST-compatible org to try okrsync against.

Like stripe-mock for Stripe: an HTTPS server on loopback that the real simple-salesforce client talks
to, over a seeded org (users, accounts, opportunities in two currencies, leads, cases, deleted rows).
Its certificate, JWT key and ``connection.json`` live in ``--dir``; a restart serves the same org.
The server is :mod:`okrsync.sandboxes.salesforce`, imported only when a command needs it (the CLI's
fast paths stay fast).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from okrsync.cli.context import console
from okrsync.errors import ConfigError, SourceError

sandbox_app = typer.Typer(help="Local stand-ins for SaaS sources, to try okrsync without an account.")
PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"
DEFAULT_DIR = Path("salesforce-sandbox")


def _runner() -> Any:
    from okrsync.sandboxes.salesforce import runner

    return runner


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port(state_dir: Path, port: int | None) -> int:
    if port is not None:
        return port
    previous = _runner().read_connection(state_dir)
    return int(previous["instance_url"].rsplit(":", 1)[1]) if previous else 8443


def _running_pid(state_dir: Path) -> int | None:
    """The pid of the background sandbox serving ``state_dir`` (the pid file names the folder, so a
    copied folder never claims the original's process)."""
    try:
        pid_text, _, folder = (state_dir / PID_FILE).read_text().strip().partition(" ")
        pid = int(pid_text)
        if folder != str(state_dir.resolve()):
            return None
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_background(state_dir: Path, *, port: int | None = None, seed: int = 7,
                     opportunities: int = 2000, org_time: datetime | None = None, timeout: float = 60) -> int:
    """Start the sandbox as a detached process serving ``state_dir``; returns its pid once it listens."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (pid := _running_pid(state_dir)) is not None:
        running = _port(state_dir, None)
        if port is not None and port != running:
            raise ConfigError(f"a sandbox for {state_dir} already runs on port {running} (pid {pid})",
                              hint=f"stop it first: `okrsync sandbox salesforce --dir {state_dir} --stop`")
        return pid
    port = _port(state_dir, port)
    conn_file = state_dir / "connection.json"
    before = conn_file.stat().st_mtime_ns if conn_file.exists() else None
    cmd = [sys.executable, "-m", "okrsync.cli", "sandbox", "salesforce", "--dir", str(state_dir),
           "--port", str(port), "--seed", str(seed), "--opportunities", str(opportunities)]
    if org_time is not None:
        cmd += ["--org-time", org_time.isoformat()]
    with open(state_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: S603
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-3:]
            raise SourceError(f"the Salesforce sandbox did not start: {' / '.join(tail)}",
                              hint=f"see {state_dir / LOG_FILE}; pick another port with --port")
        if conn_file.exists() and conn_file.stat().st_mtime_ns != before and _listening(port):
            (state_dir / PID_FILE).write_text(f"{proc.pid} {state_dir.resolve()}\n")
            return proc.pid
        time.sleep(0.1)
    proc.terminate()
    raise SourceError("the Salesforce sandbox did not start in time", hint=f"see {state_dir / LOG_FILE}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_background(state_dir: Path, timeout: float = 10) -> bool:
    """Stop the sandbox started in the background for ``state_dir``; False if none was running."""
    pid = _running_pid(state_dir)
    if pid is None:
        (state_dir / PID_FILE).unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):  # ask, then insist
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _running_pid(state_dir) is not None:
            time.sleep(0.1)
            try:  # reap it if it is our child (tests), so that kill(pid, 0) stops succeeding
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if _running_pid(state_dir) is None:
            (state_dir / PID_FILE).unlink(missing_ok=True)
            return True
    raise SourceError(f"the Salesforce sandbox (pid {pid}) did not stop",
                      hint=f"stop it by hand: kill -9 {pid}")


def change_records(state_dir: Path, percent: float, seed: int) -> tuple[list[str], list[str]]:
    """Change ``percent`` % of the running sandbox's live opportunities through its REST API, as users
    would: a new Amount for most, a delete for one in five. The recently created ones (last 92 days,
    what this quarter's KRs read) are picked first. Returns (updated ids, deleted ids)."""
    import random

    from connectors.salesforce.client import SfClient
    from connectors.salesforce.options import SalesforceOptions
    from connectors.salesforce.values import parse_datetime

    c = _runner().read_connection(state_dir)
    if c is None:
        raise ConfigError(f"no sandbox settings in {state_dir}", hint="start one first: "
                          f"`okrsync sandbox salesforce --dir {state_dir} --background`")
    options = SalesforceOptions(auth="jwt", username=c["username"], consumer_key=c["consumer_key"],
                                private_key_file=c["private_key_file"], login_url=c["login_url"],
                                ca_bundle=c["ca_bundle"])
    client = SfClient("sandbox", options, state_dir)
    try:
        rows = client.call("listing opportunities", lambda sf: sf.query_all(
            "SELECT Id, CreatedDate FROM Opportunity ORDER BY Id"))["records"]
        count = max(1, round(len(rows) * percent / 100))
        since = (datetime.now(UTC) - timedelta(days=92)).isoformat()
        recent = [r["Id"] for r in rows if parse_datetime(r["CreatedDate"]).isoformat() >= since[:19]]
        chosen = set(recent)
        older = [r["Id"] for r in rows if r["Id"] not in chosen]
        rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        picked = rng.sample(recent, min(count, len(recent)))
        picked += rng.sample(older, count - len(picked))
        deleted, updated = picked[: len(picked) // 5], picked[len(picked) // 5:]
        for rid in updated:
            amount = round(rng.uniform(500, 250_000), 2)

            def update(sf: Any, rid: str = rid, amount: float = amount) -> Any:
                return sf.Opportunity.update(rid, {"Amount": amount})

            client.call("updating an opportunity", update)
        for rid in deleted:

            def delete(sf: Any, rid: str = rid) -> Any:
                return sf.Opportunity.delete(rid)

            client.call("deleting an opportunity", delete)
    finally:
        client.close()
    return updated, deleted


@sandbox_app.command("salesforce")
def salesforce(
    directory: Annotated[Path, typer.Option("--dir", help="Where its certificate, JWT key and "
                                            "connection.json live.")] = DEFAULT_DIR,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: the last one used in "
                                             "--dir, else 8443).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated org.")] = 7,
    opportunities: Annotated[int, typer.Option(min=0, help="Opportunities in the org.")] = 2000,
    background: Annotated[bool, typer.Option("--background", help="Start detached and return.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the one started with --background.")] = False,
    org_time: Annotated[str | None, typer.Option(hidden=True, help="Generate the org as of this instant "
                                                 "(ISO, with offset).")] = None,
    change: Annotated[float | None, typer.Option(
        min=0.01, max=100, help="Change this % of the running sandbox's opportunities (new amounts, "
        "one in five deleted) through its API, then return.")] = None,
) -> None:
    """Serve a seeded Salesforce org on https://127.0.0.1 (REST, queryAll, Bulk 2.0, logins)."""

    if change is not None:
        updated, deleted = change_records(directory, change, seed)
        console.print(f"changed {len(updated)} opportunities and deleted {len(deleted)} in the sandbox; "
                      "the next `okrsync run` pulls exactly these", soft_wrap=True)
        return

    if stop:
        stopped = stop_background(directory)
        console.print("stopped the Salesforce sandbox" if stopped
                      else f"no sandbox is running for {directory}")
        return
    when = datetime.fromisoformat(org_time) if org_time else None
    if background:
        pid = start_background(directory, port=port, seed=seed, opportunities=opportunities, org_time=when)
        console.print(f"Salesforce sandbox running in the background (pid {pid}), settings in "
                      f"{directory}/connection.json; stop it with "
                      f"`okrsync sandbox salesforce --dir {directory} --stop`", soft_wrap=True)
        return
    try:
        _runner().serve_forever(directory, port=_port(directory, port), seed=seed,
                                opportunities=opportunities, now=when)
    except OSError as exc:
        raise SourceError(str(exc), hint="stop what uses that port, or pick another with --port") from None
