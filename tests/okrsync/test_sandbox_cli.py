"""``okrsync sandbox salesforce`` through the real console script: in the background (``--background``,
``--stop``) and in the foreground (SIGTERM), each read by a real connector with the files it leaves.

Every sandbox a test starts is stopped at teardown, whatever happened. Expected records come from the
same org generated in this process (seed, size and clock from ``connection.json``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from connectors.base import StreamSpec, Watermark
from connectors.salesforce import SalesforceConnector
from okrsync.sandboxes.background import PID_FILE, free_port, stop_background
from okrsync.sandboxes.salesforce.faults import Faults
from okrsync.sandboxes.salesforce.model import Org
from okrsync.sandboxes.salesforce.rest import SandboxApp
from tests.okrsync.conftest import OKRSYNC, Cli, Result

WIDE = {"COLUMNS": "500"}  # one line per message, whatever the length of the tmp path
OPPORTUNITIES = StreamSpec(name="opportunities", source="crm", primary_key="Id", cursor="SystemModstamp",
                           fields=("Amount", "StageName"), options={"object": "Opportunity"})


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def connection(state_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state_dir / "connection.json").read_text())
    return data


def read_ids(state_dir: Path, base_dir: Path) -> list[str]:
    """Opportunity ids read through a JWT-auth connector configured from the sandbox's own files."""
    c = connection(state_dir)
    options = {"auth": "jwt", "username": c["username"], "consumer_key": c["consumer_key"],
               "private_key_file": c["private_key_file"], "login_url": c["login_url"],
               "ca_bundle": c["ca_bundle"], "api_version": c["api_version"]}
    conn = SalesforceConnector("crm", options, base_dir)
    try:
        frames = list(conn.read(OPPORTUNITIES, None))
        assert conn.client.logins == 1
    finally:
        conn.close()
    return sorted(pd.concat(frames)["Id"])


def org_ids(state_dir: Path) -> list[str]:
    """The Opportunity ids of the org the sandbox in ``state_dir`` serves, generated here."""
    c = connection(state_dir)
    org = Org(datetime.fromisoformat(c["org_now"])).generate(
        seed=c["seed"], opportunities=c["opportunities"], accounts=c["accounts"])
    return sorted(r["Id"] for r in org.records("Opportunity"))


@pytest.fixture
def background_dirs() -> Iterator[list[Path]]:
    """Folders of sandboxes started with --background: each is stopped at teardown, and a process that
    outlives the stop is killed by its pid."""
    dirs: list[Path] = []
    yield dirs
    for d in dirs:
        pid_file = d / PID_FILE
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        pid_text, _, folder = text.partition(" ")
        pid = int(pid_text) if pid_text and folder == str(d.resolve()) else None  # a copy's is not its own
        stop_background(d)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


class Foreground:
    """``okrsync sandbox salesforce ARGS`` in the foreground, its output read line by line."""

    def __init__(self, env: dict[str, str], cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own console script
            [str(OKRSYNC), "sandbox", "salesforce", *args], cwd=cwd, env={**env, **WIDE},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 240) -> str:  # a ceiling for a hang, not a target
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} (exit {self.proc.poll()}):\n" + "\n".join(self.lines))

    def terminate(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, then the exit status and the rest of the output."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return code, "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def foreground(base_env: dict[str, str]) -> Iterator[Callable[..., Foreground]]:
    started: list[Foreground] = []

    def start(cwd: Path, *args: str) -> Foreground:
        fg = Foreground(base_env, cwd, *args)
        started.append(fg)
        return fg

    yield start
    for fg in started:
        fg.kill()


def sandbox(cli: Cli, cwd: Path, *args: str | Path) -> Result:
    return cli("sandbox", "salesforce", *args, cwd=cwd, env=WIDE, timeout=120)


def test_background_start_files_jwt_login_copy_and_stop(
    cli: Cli, tmp_path: Path, background_dirs: list[Path]
) -> None:
    d, port = tmp_path / "sf-sandbox", free_port()
    background_dirs.append(d)
    started = sandbox(cli, tmp_path, "--dir", d, "--port", str(port), "--background")
    assert started.code == 0, started
    m = re.search(r"running in the background \(pid (\d+)\)", started.out)
    assert m, started
    pid = int(m.group(1))
    assert f"okrsync sandbox salesforce --dir {d} --stop" in started.out, started

    # the files a project needs, and no secret beyond the JWT key (which is private to its owner)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (d / "cert.pem").is_file()
    assert stat.S_IMODE((d / "jwt-private-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "key.pem").stat().st_mode) == 0o600  # the TLS key
    c = connection(d)
    assert c["instance_url"] == c["login_url"] == f"https://127.0.0.1:{port}"
    assert Path(c["ca_bundle"]) == (d / "cert.pem").resolve()
    assert Path(c["private_key_file"]) == (d / "jwt-private-key.pem").resolve()
    text = (d / "connection.json").read_text()
    log = (d / "sandbox.log").read_text()
    assert "listening at" in log
    creds = SandboxApp(Org(), Faults()).credentials  # the sandbox user's fixed password and token
    for secret in (creds.password, creds.security_token, creds.consumer_secret, "PRIVATE KEY"):
        assert secret not in text, f"connection.json holds a secret ({secret[:12]}…)"
        assert secret not in log, f"sandbox.log holds a secret ({secret[:12]}…)"
    assert "password" not in json.loads(text)
    assert (d / PID_FILE).read_text().split() == [str(pid), str(d.resolve())]
    assert alive(pid) and listening(port)

    # a project configured from those files logs in with the JWT bearer flow and reads the org
    assert read_ids(d, tmp_path) == org_ids(d)

    # a copy of the folder (with its pid file) does not claim the original's process
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    background_dirs.append(copy)
    not_mine = sandbox(cli, tmp_path, "--dir", copy, "--stop")
    assert not_mine.code == 0, not_mine
    assert f"no sandbox is running for {copy}" in not_mine.out, not_mine
    assert alive(pid) and listening(port), "stopping a copied folder stopped the original's sandbox"
    assert (d / PID_FILE).exists() and not (copy / PID_FILE).exists()

    stopped = sandbox(cli, tmp_path, "--dir", d, "--stop")
    assert stopped.code == 0, stopped
    assert "stopped the Salesforce sandbox" in stopped.out, stopped
    assert not listening(port)
    assert not alive(pid)
    assert not (d / PID_FILE).exists()
    again = sandbox(cli, tmp_path, "--dir", d, "--stop")
    assert again.code == 0, again
    assert f"no sandbox is running for {d}" in again.out, again


def test_foreground_stops_on_sigterm_and_a_restart_serves_the_same_org_on_the_same_port(
    foreground: Callable[..., Foreground], tmp_path: Path
) -> None:
    d, port = tmp_path / "sf-sandbox", free_port()
    first = foreground(tmp_path, "--dir", str(d), "--port", str(port))
    line = first.wait_for("listening at")
    assert line.endswith(f"https://127.0.0.1:{port}"), line
    assert listening(port)
    before = read_ids(d, tmp_path)
    assert before == org_ids(d)
    code, out = first.terminate()
    assert code == 0, out
    assert "Salesforce sandbox stopped" in out, out
    assert not listening(port)

    second = foreground(tmp_path, "--dir", str(d))  # no --port: the one recorded in connection.json
    line = second.wait_for("listening at")
    assert line.endswith(f"https://127.0.0.1:{port}"), line
    assert connection(d)["instance_url"] == f"https://127.0.0.1:{port}"
    assert read_ids(d, tmp_path) == before
    code, out = second.terminate()
    assert code == 0, out
    assert "Salesforce sandbox stopped" in out, out
    assert not listening(port)


def test_change_edits_the_running_org_through_its_api_and_a_sync_pulls_just_that(
    cli: Cli, tmp_path: Path, background_dirs: list[Path]
) -> None:
    d, port = tmp_path / "sf-sandbox", free_port()
    background_dirs.append(d)
    assert sandbox(cli, tmp_path, "--dir", d, "--port", str(port), "--background").code == 0
    c = connection(d)
    options = {"auth": "jwt", "username": c["username"], "consumer_key": c["consumer_key"],
               "private_key_file": c["private_key_file"], "login_url": c["login_url"],
               "ca_bundle": c["ca_bundle"]}
    conn = SalesforceConnector("crm", options, tmp_path)
    try:
        first = pd.concat(list(conn.read(OPPORTUNITIES, None)))
        last = first.iloc[-1]
        since = Watermark(last["SystemModstamp"].to_pydatetime(), (last["Id"],))
        changed = sandbox(cli, tmp_path, "--dir", d, "--change", "2")
        assert changed.code == 0, changed
        m = re.search(r"changed (\d+) opportunities and deleted (\d+)", changed.out)
        assert m, changed
        updated, deleted = int(m.group(1)), int(m.group(2))
        assert updated + deleted == round(len(first) * 0.02) and deleted == (updated + deleted) // 5
        after = list(conn.read(OPPORTUNITIES, since))
        gone = list(conn.deleted(OPPORTUNITIES, since))
        assert sum(len(f) for f in after) == updated
        # (queryAll may also list records deleted before the first read, after its last row: no-ops)
        gone_ids = set(pd.concat(gone)["Id"]) if gone else set()
        assert len(gone_ids & set(first["Id"])) == deleted
    finally:
        conn.close()
