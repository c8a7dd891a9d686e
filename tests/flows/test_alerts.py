"""Alerts end to end (issue 17, part 3): a run that changes a KR's status sends one signed webhook and
one email, on loopback to a real HTTP receiver and a real SMTP server (aiosmtpd); a run that changes
nothing sends nothing; no sensitive value reaches a payload; a receiver answering 500 is recorded as
failed and retried by the next run; the hourly rate limit holds.

The source is a small SQLite ERP of deals, so every status is computed by hand: the KR's period is
2026-Q4 and runs are as of 2026-11-20, 50 of the quarter's 92 days (expected progress 50/92 ≈ 0.543).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER
from flows.run import LocalSteps, RunSummary, run_project
from okr_store import alerts as stored
from okr_store import models as m
from okr_store.store import Store
from okrsync.project import load_project

AS_OF = datetime(2026, 11, 20)
SECRET = "s3cret-signing-key-for-tests"
CANARY = "Zelda Canary-Secretperson"  # a sensitive field's value: must never leave the store
PROJECT = """\
version: 1
settings: {{default_period: 2026-Q4}}
sources:
  erp: {{kind: sql, url: "sqlite:///{erp}"}}
streams:
  deals:
    source: erp
    table: deal
    primary_key: id
    cursor: write_date
    sensitive: [customer]
metrics:
  booked: {{stream: deals, measure: sum, field: amount, time_field: closed_on}}
objectives:
  - id: O1
    title: Book deals
    key_results:
      - {{id: KR-A, title: Bookings, metric: booked, target: 1000, owner: Dana}}
{more_krs}alerts:
  people: {{Dana: dana@example.com}}
  channels:
    hook:
      kind: webhook
      url_env: TEST_ALERT_HOOK_URL
      secret_env: TEST_ALERT_HOOK_SECRET
      allow_private_urls: true
      max_per_hour: {hook_limit}
    mail:
      kind: email
      host: 127.0.0.1
      port: {smtp_port}
      security: none
      from: okrsync@example.com
"""
KR_B = "      - {id: KR-B, title: Bookings (stretch), metric: booked, target: 800}\n"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each request, answers with the next queued status."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # popped per request; empty: 200


@pytest.fixture(scope="module", autouse=True)
def prefect_api() -> Iterator[None]:
    """These runs are in-process (LocalSteps) and the webhook block needs no Prefect API: no harness."""
    yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append((dict(self.headers.items()), body))
            self.send_response(rec.answers.pop(0) if rec.answers else 200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/okr-alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@dataclass
class Mailbox:
    port: int
    mails: list[tuple[list[str], Message]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd)
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox(port)
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box
    controller.stop()


@dataclass
class Site:
    dir: Path
    erp: Path
    project_file: Path

    def set_amount(self, deal_id: int, amount: str, at: datetime) -> None:
        con = sqlite3.connect(self.erp)
        con.execute("UPDATE deal SET amount = ?, write_date = ? WHERE id = ?",
                    (amount, at.isoformat(sep=" "), deal_id))
        con.commit()
        con.close()

    def run(self, hours: int = 0) -> RunSummary:
        return run_project(self.project_file, LocalSteps(), as_of=AS_OF + timedelta(hours=hours))

    def store(self) -> Store:
        return Store(load_project(self.project_file).store_url())

    def deliveries(self) -> list[stored.Delivery]:
        store = self.store()
        try:
            with store.engine.connect() as conn:
                return stored.list_deliveries(conn)
        finally:
            store.close()


def make_site(tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
              *, more_krs: str = "", hook_limit: int = 30) -> Site:
    erp = tmp_path / "erp.db"
    con = sqlite3.connect(erp)
    con.execute("CREATE TABLE deal (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC(12,2), "
                "closed_on DATE, write_date TIMESTAMP)")
    con.executemany("INSERT INTO deal VALUES (?, ?, ?, ?, ?)", [
        (1, CANARY, "200.00", "2026-10-05", "2026-10-05 10:00:00"),
        (2, "Other Customer", "400.00", "2026-11-02", "2026-11-02 10:00:00"),
    ])
    con.commit()
    con.close()
    pf = tmp_path / "okrsync.yaml"
    pf.write_text(PROJECT.format(erp=erp, smtp_port=mailbox.port, more_krs=more_krs, hook_limit=hook_limit))
    monkeypatch.setenv("TEST_ALERT_HOOK_URL", receiver.url)
    monkeypatch.setenv("TEST_ALERT_HOOK_SECRET", SECRET)
    return Site(tmp_path, erp, pf)


def status_of(site: Site, kr_id: str) -> str:
    store = site.store()
    try:
        with store.engine.connect() as conn:
            return stored.observe_statuses(conn)[kr_id].state
    finally:
        store.close()


def verify(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What a receiver does (docs/alerts.md): recompute the HMAC over "{timestamp}.{body}"."""
    stamp = headers[TIMESTAMP_HEADER]
    expected = "sha256=" + hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    return dict(json.loads(body))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_status_change_sends_one_signed_webhook_and_one_email_then_nothing(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest, backend: str,
) -> None:
    if backend == "postgresql":  # the store on the server: its transactions and row counts
        monkeypatch.setenv("OKRSYNC_STORE_URL", request.getfixturevalue("pg_url"))
        monkeypatch.setenv("OKRSYNC_PII_KEY", base64.b64encode(bytes(range(64))).decode())
    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    first = site.run()
    # 600 of 1000 is 0.6 progress against 0.543 expected: on track. A first sight is no change.
    assert status_of(site, "KR-A") == "on_track"
    assert first.alerts["events"] == 0 and receiver.requests == [] and mailbox.mails == []

    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))  # 300: 0.3 progress, gap 0.243: at risk
    second = site.run(hours=1)
    assert second.values["KR-A"] == "300.00" and status_of(site, "KR-A") == "at_risk"
    assert second.alerts == {"channels": 2, "events": 1, "sent": 2, "failed": 0, "deferred": 0, "errors": []}

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    sent = verify(headers, body)
    assert headers["Content-Type"] == "application/json" and headers["X-Okrsync-Event"] == "status_changed"
    assert sent["kind"] == "status_changed" and sent["key_results"] == [
        {"id": "KR-A", "title": "Bookings", "owner": "Dana", "objective": "O1"}]
    assert (sent["facts"]["previous"], sent["facts"]["status"]) == ("on_track", "at_risk")
    # the KR reads a stream with a sensitive field: announced without its value or progress
    assert "value" not in sent["facts"] and sent["facts"]["value_withheld"] == "personal data"
    tampered = body.replace(b"at_risk", b"on_track")
    with pytest.raises(AssertionError):
        verify(headers, tampered)

    assert len(mailbox.mails) == 1
    rcpt, mail = mailbox.mails[0]
    assert rcpt == ["dana@example.com"] and mail["From"] == "okrsync@example.com"
    assert "KR-A “Bookings”: status on_track → at_risk" in mail.get_payload(decode=True).decode()

    for _ in range(2):  # nothing changed: nothing sent, however many runs
        again = site.run(hours=2)
        assert again.alerts["events"] == 0 and again.alerts["sent"] == 0
    assert len(receiver.requests) == 1 and len(mailbox.mails) == 1
    assert sorted((d.channel, d.recipient, d.status, d.attempts) for d in site.deliveries()) == [
        ("hook", "", "sent", 1), ("mail", "dana@example.com", "sent", 1)]

    everything = b"".join(b for _, b in receiver.requests) + b"".join(
        mail.as_bytes() for _, mail in mailbox.mails)
    assert CANARY.encode() not in everything and SECRET.encode() not in everything
    store = site.store()
    with store.engine.connect() as conn:
        stored_text = json.dumps([list(r) for r in conn.execute(sa.select(m.alert_event))], default=str)
        facts = json.loads(conn.execute(sa.select(m.alert_event.c.facts)).scalar_one())
    store.close()
    assert CANARY not in stored_text
    assert facts["value_withheld"] == "personal data" and not {"value", "progress", "target"} & set(facts)


def test_a_failed_check_and_a_held_kr_carry_no_record_values(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    text = site.project_file.read_text().replace(
        "time_field: closed_on}", "time_field: closed_on, checks: [max_jump_percent: 50]}")
    site.project_file.write_text(text)
    site.run()
    site.set_amount(1, "-150.00", AS_OF - timedelta(hours=1))  # 250: a 58 % drop, held by the check
    summary = site.run(hours=1)
    assert summary.held.keys() == {"KR-A"}
    kinds = sorted(json.loads(b)["kind"] for _, b in receiver.requests)
    assert kinds == ["check_failed", "held"]
    check = next(verify(h, b) for h, b in receiver.requests if json.loads(b)["kind"] == "check_failed")
    assert check["facts"]["status"] == "blocked" and check["facts"]["held_krs"] == ["KR-A"]
    everything = b"".join(b for _, b in receiver.requests)
    assert CANARY.encode() not in everything and b"-150" not in everything and b"250" not in everything
    assert len(mailbox.mails) == 2

    site.run(hours=2)  # still held, still failing: no new alert
    assert len(receiver.requests) == 2


def test_a_receiver_answering_500_is_recorded_and_retried_next_run(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    site.run()
    receiver.answers = [500]
    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))
    summary = site.run(hours=1)
    assert summary.status == "succeeded" and summary.values["KR-A"] == "300.00"  # the update stands
    assert summary.alerts["failed"] == 1 and summary.alerts["sent"] == 1
    assert summary.alerts["errors"] == ["hook: the receiver answered HTTP 500"]
    hook = next(d for d in site.deliveries() if d.channel == "hook")
    assert (hook.status, hook.attempts, hook.error) == ("failed", 1, "the receiver answered HTTP 500")
    assert receiver.url not in (hook.error or "")

    retried = site.run(hours=2)  # nothing new, but the failed delivery goes again
    assert retried.alerts["events"] == 0 and retried.alerts["sent"] == 1
    assert len(receiver.requests) == 2
    (_, failed), (headers, again) = receiver.requests
    assert json.loads(failed)["delivery_id"] == verify(headers, again)["delivery_id"] == hook.id
    hook = next(d for d in site.deliveries() if d.channel == "hook")
    assert (hook.status, hook.attempts, hook.error) == ("sent", 2, None)
    assert len(mailbox.mails) == 1  # the email went the first time and is not sent again


def test_the_hourly_rate_limit_holds(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path, receiver, mailbox, monkeypatch, more_krs=KR_B, hook_limit=1)
    site.run()
    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))  # both KRs: on track → at risk
    summary = site.run(hours=1)
    assert summary.alerts["events"] == 2 and summary.alerts["deferred"] == 1
    assert len(receiver.requests) == 1
    waiting = [d for d in site.deliveries() if d.channel == "hook" and d.status == "pending"]
    assert len(waiting) == 1 and waiting[0].error == "rate limit: 1 per hour reached; sent by a later run"

    site.run(hours=2)  # within the hour: still waiting
    assert len(receiver.requests) == 1

    store = site.store()  # an hour passes for the delivery that went
    with store.engine.begin() as conn:
        d = m.alert_delivery.c
        conn.execute(m.alert_delivery.update().where(d.status == "sent")
                     .values(sent_at=d.sent_at - timedelta(hours=2)))
    store.close()
    site.run(hours=3)
    assert len(receiver.requests) == 2
    assert {json.loads(b)["key_results"][0]["id"] for _, b in receiver.requests} == {"KR-A", "KR-B"}


def test_failed_deliveries_are_visible_to_admins_in_the_cli_and_the_api(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from okr_store import users as stored_users
    from okrsync import users
    from okrsync.cli.app import app
    from okrsync.cli.context import CliContext
    from okrsync.web.app import create_app

    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    site.run()
    receiver.answers = [503]
    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))
    site.run(hours=1)

    cli = CliRunner()
    out = cli.invoke(app, ["-p", str(site.project_file), "alerts", "--status", "failed", "--json"],
                     obj=CliContext())
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert listed["counts"] == {"failed": 1, "sent": 1}
    [failed] = listed["deliveries"]
    assert (failed["channel"], failed["kind"], failed["key_results"], failed["attempts"]) == (
        "hook", "status_changed", ["KR-A"], 1)
    assert failed["error"] == "the receiver answered HTTP 503"
    table = cli.invoke(app, ["-p", str(site.project_file), "alerts"], obj=CliContext())
    assert table.exit_code == 0 and "1 failed · 1 sent" in table.output and "503" in table.output

    project = load_project(site.project_file)
    store = Store(project.store_url())
    with store.engine.begin() as conn:
        for role in ("admin", "viewer"):
            stored_users.add_user(conn, f"u-{role}", role, users.hash_password(f"pw-{role}-12345"),
                                  users.utcnow())
    try:
        with TestClient(create_app(project, store)) as web:
            def sign_in(role: str) -> None:
                r = web.post("/api/session", json={"username": f"u-{role}", "password": f"pw-{role}-12345"})
                assert r.status_code == 200, r.text
                web.headers["X-CSRF-Token"] = r.json()["csrf_token"]

            sign_in("viewer")
            assert web.get("/api/alerts").status_code == 403
            sign_in("admin")
            r = web.get("/api/alerts", params={"status": "failed"})
            assert r.status_code == 200, r.text
            assert [(d["id"], d["status"], d["error"]) for d in r.json()["deliveries"]] == [
                (failed["id"], "failed", "the receiver answered HTTP 503")]
    finally:
        store.close()

    sent = cli.invoke(app, ["-p", str(site.project_file), "alerts", "send"], obj=CliContext())
    assert sent.exit_code == 0 and "1 sent · 0 failed" in sent.output
    assert len(receiver.requests) == 2
    assert [d.status for d in site.deliveries()] == ["sent", "sent"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("      url_env: TEST_ALERT_HOOK_URL\n", "      url: https://hooks.example.com/x\n",
         "okrsync.yaml:{line}: alerts.channels.hook.url: keep the url out of the project file: name the "
         "environment variable that holds it with url_env"),
        ("      secret_env: TEST_ALERT_HOOK_SECRET\n", "",
         "okrsync.yaml:22: alerts.channels.hook: missing required key 'secret_env'"),
        ("      kind: email\n", "      kind: e-mail\n",
         "alerts.channels.mail.kind: channel kind is 'e-mail' (did you mean 'email'?)"),
        ("      max_per_hour: 30\n", "      max_per_hour: 30\n      events: [status_change]\n",
         "unknown event 'status_change' (did you mean 'status_changed'?)"),
        ("      from: okrsync@example.com\n", "      from: okrsync@example.com\n      key_results: [KR-Z]\n",
         "alerts.channels.mail.key_results[0]: unknown key result or objective 'KR-Z' "
         "(did you mean 'KR-A'?)"),
        ("{Dana: dana@example.com}", "{Dana: dana-at-example}",
         "alerts.people.Dana: 'dana-at-example' is not an email address"),
        ("      security: none\n", "      security: none\n      owners: false\n",
         "the channel has no recipient"),
    ],
)
def test_bad_alert_config_is_refused_with_file_line_and_fix(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch,
    old: str, new: str, message: str,
) -> None:
    from okrsync.project_problems import ProjectFileError

    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    text = site.project_file.read_text()
    assert old in text
    site.project_file.write_text(text.replace(old, new))
    with pytest.raises(ProjectFileError) as exc:
        load_project(site.project_file)
    line = text[: text.index(old)].count("\n") + 1
    assert message.format(line=line) in str(exc.value)


def test_a_private_address_is_refused_unless_allowed_and_a_down_receiver_is_retried(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    text = site.project_file.read_text()
    site.project_file.write_text(text.replace("      allow_private_urls: true\n", ""))
    site.run()
    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))
    summary = site.run(hours=1)
    assert summary.alerts["errors"] == [
        "hook: the URL points at a private address (set allow_private_urls: true for an in-house receiver)"]
    assert receiver.requests == [] and len(mailbox.mails) == 1

    site.project_file.write_text(site.project_file.read_text().replace(
        "      secret_env:", "      allow_private_urls: true\n      secret_env:"))
    monkeypatch.setenv("TEST_ALERT_HOOK_URL", "http://127.0.0.1:9/nobody-listens")
    summary = site.run(hours=2)
    assert summary.alerts["errors"] == [
        "hook: could not connect to the receiver (is it running, and is the URL right?)"]
    monkeypatch.setenv("TEST_ALERT_HOOK_URL", receiver.url)
    summary = site.run(hours=3)
    assert summary.alerts["sent"] == 1 and len(receiver.requests) == 1
    hook = next(d for d in site.deliveries() if d.channel == "hook")
    assert (hook.status, hook.attempts) == ("sent", 3)


def test_slack_and_teams_compatible_webhooks_get_their_own_formats(
    tmp_path: Path, receiver: Receiver, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path, receiver, mailbox, monkeypatch)
    text = site.project_file.read_text()
    chat = """    chat:
      kind: slack
      url_env: TEST_SLACK_URL
      allow_private_urls: true
    leadership:
      kind: teams
      url_env: TEST_TEAMS_URL
      allow_private_urls: true
      events: [status_changed]
      key_results: [O1]
"""
    site.project_file.write_text(text.replace("    mail:\n", chat + "    mail:\n"))
    monkeypatch.setenv("TEST_SLACK_URL", receiver.url + "/slack")
    monkeypatch.setenv("TEST_TEAMS_URL", receiver.url + "/teams")
    site.run()
    site.set_amount(2, "100.00", AS_OF - timedelta(hours=1))
    assert site.run(hours=1).alerts["sent"] == 4  # webhook, Slack, Teams, email
    line = "KR-A “Bookings”: status on_track → at_risk"
    by_kind = {}
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/json"
        sent = json.loads(body)
        by_kind["webhook" if "kind" in sent else "slack" if "text" in sent else "teams"] = sent
    assert by_kind["slack"] == {"text": f"*okrsync {tmp_path.name}: status changed*\n{line}"}
    card = by_kind["teams"]["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert [b["text"] for b in card["content"]["body"]] == [f"okrsync {tmp_path.name}: status changed", line]
    assert by_kind["webhook"]["text"] == line
