"""States tell the truth (issue #11, acceptance 3, the Prefect-server half): a deployment run whose
source is unreachable ends FAILED with a message starting ``okrsync:``, and the documented automation
(docs/prefect-automation.yaml, installed exactly as its header and the README say) posts it to a
webhook."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.prefect_server.conftest import ROOT, PrefectServer, tail, wait_for

# Deployments, a process worker and the scheduler of a real server: `slow` (README command 2 skips it,
# .ci/run runs it).
pytestmark = [pytest.mark.prefect, pytest.mark.slow]

AUTOMATION = ROOT / "docs" / "prefect-automation.yaml"
PLACEHOLDER = "OKRSYNC_ALERT_BLOCK_ID"


class Webhook:
    """A webhook receiver on 127.0.0.1 (a free port) that keeps every request body."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[tuple[str, bytes]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                received.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/okrsync-alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def broken_project(directory: Path) -> Path:
    """The demo project with its ERP source pointing at a database that cannot be opened."""
    from okrsync import demo

    demo.build(directory, today=date.today())
    project_file = directory / "okrsync.yaml"
    text = project_file.read_text()
    assert "url: sqlite:///erp.db" in text
    project_file.write_text(text.replace("url: sqlite:///erp.db", "url: sqlite:///no-such-directory/erp.db"))
    return project_file


def test_a_run_with_a_failed_source_ends_failed_and_the_documented_automation_fires(
    prefect_server: PrefectServer, webhook: Webhook, tmp_path: Path
) -> None:
    project_file = broken_project(tmp_path / "broken")
    cwd = tmp_path / "operator"
    cwd.mkdir()

    # The automation, as docs/prefect-automation.yaml says: a webhook block, its id into the file.
    block_id = prefect_server.python("-m", "okrsync.deploy", "webhook-block", "--url", webhook.url,
                                     "--name", "okrsync-alert-test", cwd=cwd).stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f-]{36}", block_id), block_id
    resolved = AUTOMATION.read_text().replace(PLACEHOLDER, block_id)  # what the documented `sed` does
    assert yaml.safe_load(resolved)["actions"][0]["block_document_id"] == block_id
    (cwd / "okrsync-alert.yaml").write_text(resolved)
    prefect_server.prefect("automation", "create", "--from-file", "okrsync-alert.yaml", cwd=cwd)

    # The nightly deployment as written, on a pool of this test's own; the project given per run.
    prefect_server.create_pool("okrsync-failures", cwd=cwd)
    dep = prefect_server.deploy("nightly-full", cwd=cwd, pool="okrsync-failures")
    out = prefect_server.prefect(
        "deployment", "run", "okrsync-run/nightly-full",
        "-p", f"project_file={project_file}", "-p", "retry_delay_seconds=0", cwd=cwd,
    ).stdout
    match = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert match, out
    run_id = match.group(1)

    log = tmp_path / "worker.log"
    try:
        with prefect_server.worker("okrsync-failures", cwd=cwd, log=log):
            run = prefect_server.wait_final(run_id, timeout=300, details=lambda: tail(log, 80))
    finally:
        prefect_server.api("DELETE", f"/deployments/{dep['id']}")
    message = run["state"]["message"] or ""
    assert run["state_type"] == "FAILED", f"{run['state_name']}: {message}\n{tail(log, 80)}"
    assert message.startswith("okrsync:"), message
    assert run["parameters"]["project_file"] == str(project_file)

    def alert() -> dict[str, str] | None:
        for path, body in webhook.received:
            payload = json.loads(body)
            if run_id in payload.get("text", ""):
                assert path == "/okrsync-alerts"
                return payload
        return None

    payload = wait_for(
        alert, timeout=120, what="the automation's webhook POST naming the flow run",
        details=lambda: f"received: {webhook.received}\n--- server log\n{tail(prefect_server.log)}",
    )
    assert "okrsync:" in payload["text"] and "Failed" in payload["text"], payload
