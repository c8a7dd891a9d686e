"""The Salesforce sandbox as a background service: started detached for a folder, found again through
its pid file, stopped. ``okrsync sandbox salesforce --background`` and ``okrsync demo`` use it.

The server itself (:mod:`okrsync.sandboxes.salesforce`) is imported only when needed, so importing
this module stays cheap for the CLI's fast paths.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from okrsync.errors import ConfigError, SourceError

PID_FILE = "sandbox.pid"
LOG_FILE = "sandbox.log"


def runner_module() -> Any:
    from okrsync.sandboxes.salesforce import runner

    return runner


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_for(state_dir: Path, port: int | None) -> int:
    if port is not None:
        return port
    previous = runner_module().read_connection(state_dir)
    return int(previous["instance_url"].rsplit(":", 1)[1]) if previous else 8443


def running_pid(state_dir: Path) -> int | None:
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


def start_background(state_dir: Path, *, port: int | None = None, seed: int = 7, opportunities: int = 2000,
                     org_time: datetime | None = None, timeout: float = 300) -> int:
    """Start the sandbox as a detached process serving ``state_dir``; returns its pid once it listens
    (``timeout`` only ends a start that hangs: on a busy machine generating the org takes a while)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (pid := running_pid(state_dir)) is not None:
        running = port_for(state_dir, None)
        if port is not None and port != running:
            raise ConfigError(f"a sandbox for {state_dir} already runs on port {running} (pid {pid})",
                              hint=f"stop it first: `okrsync sandbox salesforce --dir {state_dir} --stop`")
        return pid
    port = port_for(state_dir, port)
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
    pid = running_pid(state_dir)
    if pid is None:
        (state_dir / PID_FILE).unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):  # ask, then insist
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and running_pid(state_dir) is not None:
            time.sleep(0.1)
            try:  # reap it if it is our child (tests), so that kill(pid, 0) stops succeeding
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if running_pid(state_dir) is None:
            (state_dir / PID_FILE).unlink(missing_ok=True)
            return True
    raise SourceError(f"the Salesforce sandbox (pid {pid}) did not stop",
                      hint=f"stop it by hand: kill -9 {pid}")
