"""Run the Salesforce sandbox as a long-lived local service (what ``okrsync sandbox salesforce`` calls).

Everything a project needs to connect lives in ``state_dir``: the TLS certificate to trust (``cert.pem``),
the JWT bearer flow's private key (``jwt-private-key.pem``, kept across restarts so a configured project
keeps working) and ``connection.json`` with the URLs, username and consumer key. The org itself lives in
memory: each start generates it afresh from ``seed``; change it between syncs through the REST sobjects API.
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from okrsync.sandboxes.tls import write_private_file

from .auth import generate_rsa_private_key_pem
from .model import Org
from .server import SalesforceSandbox

JWT_KEY_FILE = "jwt-private-key.pem"
CONNECTION_FILE = "connection.json"


def _jwt_private_key(state_dir: Path) -> str:
    path = state_dir / JWT_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8")
    pem = generate_rsa_private_key_pem()
    write_private_file(path, pem.encode())
    return pem


def start_sandbox(
    state_dir: Path,
    *,
    port: int = 8443,
    host: str = "127.0.0.1",
    seed: int = 7,
    opportunities: int = 2000,
    accounts: int = 500,
    now: datetime | None = None,
) -> SalesforceSandbox:
    """Start a sandbox in a background thread with its certificate and JWT key in ``state_dir`` (created
    0700 if missing), and write ``state_dir/connection.json``. Raises ``OSError`` if the port is taken.

    ``now`` is the org's clock when it is generated (records are dated up to it); by default the one a
    previous start in ``state_dir`` recorded, so a restarted sandbox serves the same org, else now."""
    state_dir = Path(state_dir)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if now is None:
        previous = read_connection(state_dir)
        now = (datetime.fromisoformat(previous["org_now"]) if previous and previous.get("org_now")
               else datetime.now(UTC).replace(microsecond=0))
    box = SalesforceSandbox(
        org=Org(now).generate(seed=seed, opportunities=opportunities, accounts=accounts),
        host=host,
        port=port,
        cert_dir=state_dir,
        jwt_private_key_pem=_jwt_private_key(state_dir),
    ).start()
    try:
        creds = box.credentials
        connection = {
            "instance_url": box.instance_url,
            "login_url": box.instance_url,
            "ca_bundle": str(box.cert_path.resolve()),
            "username": creds.username,
            "consumer_key": creds.consumer_key,
            "private_key_file": str((state_dir / JWT_KEY_FILE).resolve()),
            "api_version": box.version,
            "org_now": now.isoformat(),
            "seed": seed,
            "opportunities": opportunities,
            "accounts": accounts,
        }
        tmp = state_dir / f".{CONNECTION_FILE}.tmp"
        tmp.write_text(json.dumps(connection, indent=2) + "\n", encoding="utf-8")
        tmp.replace(state_dir / CONNECTION_FILE)
    except BaseException:
        box.stop()
        raise
    return box


def read_connection(state_dir: Path) -> dict[str, Any] | None:
    """What the last start in ``state_dir`` wrote to ``connection.json`` (None if nothing)."""
    path = Path(state_dir) / CONNECTION_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def serve_forever(state_dir: Path, **kw: Any) -> None:
    """:func:`start_sandbox`, say where everything is, then serve until Ctrl-C or SIGTERM and stop cleanly."""
    box = start_sandbox(state_dir, **kw)
    stop = threading.Event()
    previous: Any = None
    on_main_thread = threading.current_thread() is threading.main_thread()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        if on_main_thread:
            previous = signal.signal(signal.SIGTERM, on_sigterm)
        state = Path(state_dir).resolve()
        print(f"Salesforce sandbox listening at {box.instance_url}", flush=True)
        print(f"CA bundle (trust this certificate): {box.cert_path.resolve()}", flush=True)
        print(f"JWT private key: {state / JWT_KEY_FILE}", flush=True)
        print(f"username: {box.credentials.username}", flush=True)
        print(f"consumer key: {box.credentials.consumer_key}", flush=True)
        print(f"connection settings: {state / CONNECTION_FILE}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
        if on_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    print("Salesforce sandbox stopped", flush=True)
