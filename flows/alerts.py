"""Alerts after a run: turn the store's state changes into deliveries, and send what is due.

:func:`record_events` runs while the run still holds the project's lease: it detects the events
(:mod:`okr_store.alerts`) and, in the same transaction, adds one delivery per channel and recipient
that subscribes to them. :func:`send_due` then sends every pending delivery, and retries the ones that
failed before, within each channel's hourly rate limit. A failed delivery never fails the run: it is
recorded (``okrsync alerts``, ``GET /api/alerts``) and tried again by the next run.

Payloads carry ids, titles, owners, statuses and check names and counts; never a record, a field value
or a check sample. A KR over personal data (:mod:`okrsync.small_groups`) is announced without its value
or progress. The webhook body is signed (HMAC-SHA256 over ``"{timestamp}.{body}"``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from connectors.secrets import Secrets
from okr_store import alerts as stored
from okr_store.lease import Fence
from okr_store.records import utcnow
from okr_store.store import Store
from okrsync.errors import OkrsyncError
from okrsync.project import Project
from okrsync.project_alerts import Channel, EmailChannel, SlackChannel, TeamsChannel, WebhookChannel, env
from okrsync.small_groups import personal_streams

log = logging.getLogger("okrsync.alerts")
SIGNATURE_HEADER = "X-Okrsync-Signature"  # "sha256=" + hex HMAC-SHA256(secret, f"{timestamp}.{body}")
TIMESTAMP_HEADER = "X-Okrsync-Timestamp"  # seconds since the epoch, when the request was signed


@dataclass
class AlertReport:
    """What one pass did: events recorded, deliveries sent, failed and left for later."""

    channels: int = 0  # the project's channels (none: events are recorded, nobody is told)
    events: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


# ---- events → deliveries ------------------------------------------------------------------------
def record_events(project: Project, store: Store, run_id: str | None, fence: Fence | None = None) -> int:
    """Detect the state changes since the last pass and queue their deliveries (one transaction)."""
    with store.engine.begin() as conn:
        if fence is not None:
            fence.check(conn)
        events = stored.detect(conn, run_id, withheld=personal_krs(project))
        if not events or not project.alerts.channels:
            return len(events)
        parents = stored.objective_parents(conn)
        info = stored.kr_info(conn, {k for e in events for k in e.kr_ids})
        for e in events:
            stored.add_deliveries(conn, e.id, _targets(project, e, info, parents))
    return len(events)


def personal_krs(project: Project) -> set[str]:
    """The KRs whose metric reads a stream of personal data (:mod:`okrsync.small_groups`)."""
    personal = personal_streams(project)
    if not personal:
        return set()
    return {b.spec.id for b in project.key_results() if project.streams_of(b.spec.metric) & personal}


def _scope(kr_id: str, info: Mapping[str, stored.KrInfo], parents: Mapping[str, str | None]) -> set[str]:
    """The KR's id and the ids of every objective above it."""
    found = {kr_id}
    objective = info[kr_id].objective_id if kr_id in info else None
    while objective is not None and objective not in found:
        found.add(objective)
        objective = parents.get(objective)
    return found


def _targets(project: Project, e: stored.Event, info: Mapping[str, stored.KrInfo],
             parents: Mapping[str, str | None]) -> list[tuple[str, str]]:
    out = []
    scope = set().union(*(_scope(k, info, parents) for k in e.kr_ids)) if e.kr_ids else set()
    for name, ch in project.alerts.channels.items():
        if e.kind not in ch.events or (ch.key_results and not scope & set(ch.key_results)):
            continue
        if not isinstance(ch, EmailChannel):
            out.append((name, ""))
            continue
        out += [(name, a) for a in ch.to]
        if ch.owners:
            owners = (project.alerts.owner_address(info[k].owner) for k in e.kr_ids if k in info)
            out += [(name, a) for a in owners if a]
    return out


# ---- what a delivery says -----------------------------------------------------------------------
def payload(project: Project, d: stored.Delivery, info: Mapping[str, stored.KrInfo]) -> dict[str, Any]:
    """The JSON of a delivery (the webhook body; Slack, Teams and email render its ``text``)."""
    krs = [info[k] for k in d.kr_ids if k in info]
    facts = dict(d.facts)  # values of KRs over personal data were left out when the event was recorded
    web = project.settings.web_url
    return {
        "version": 1,
        "event_id": d.event_id,
        "delivery_id": d.id,
        "kind": d.kind,
        "subject": d.subject,
        "project": project.name,
        "at": _iso(d.event_at),
        "key_results": [
            {"id": k.id, "title": k.title, "owner": k.owner, "objective": k.objective_id,
             **({"url": f"{web.rstrip('/')}/kr/{k.id}"} if web else {})}
            for k in krs
        ],
        "facts": facts,
        "text": _text(d.kind, krs, facts),
    }


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds") + "Z"


def _pct(v: Any) -> str:
    return "" if v in (None, "") else f" ({float(v) * 100:.0f} % progress)"


def _text(kind: str, krs: list[stored.KrInfo], f: Mapping[str, Any]) -> str:
    names = ", ".join(f"{k.id} “{k.title}”" for k in krs) or "no key result"
    if kind == "status_changed":
        return f"{names}: status {f.get('previous')} → {f.get('status')}{_pct(f.get('progress'))}"
    if kind == "held":
        return f"{names} is held, keeping its last good value: {f.get('reason')}"
    if kind == "check_failed":
        where = f"stream {f.get('stream')}" if f.get("stream") else "a key result"
        return (f"check “{f.get('check')}” on {where} {f.get('status')}: {f.get('failed_rows')} of "
                f"{f.get('rows')} rows failed; concerns {names}")
    if kind == "closed":
        value = f": final value {f['value']}" if "value" in f else ""
        return f"{names}: period {f.get('period')} closed{value} ({f.get('status')})"
    if kind == "restated":
        moved = f" ({f['change_percent']} %)" if f.get("change_percent") is not None else ""
        return (f"{names}: restated after close{moved} by {f.get('records')} record change(s); see "
                f"okrsync restatements show {f.get('restatement_id')}")
    return f"{kind}: {names}"  # a kind without its own sentence yet


def _title(project: Project, body: Mapping[str, Any]) -> str:
    return f"okrsync {project.name}: {body['kind'].replace('_', ' ')}"


def sign(secret: str, timestamp: int, body: str) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


# ---- sending ------------------------------------------------------------------------------------
def _post(name: str, ch: WebhookChannel | SlackChannel | TeamsChannel, secrets: Secrets,
          body: Mapping[str, Any], title: str) -> None:
    """POST through Prefect's ``CustomWebhookNotificationBlock`` (its private-address guard included).

    Prefect's ``SlackWebhook`` and ``MicrosoftTeamsWebhook`` blocks go through Apprise, which rebuilds
    the URL for the vendor's own host (hooks.slack.com, logic.azure.com): they cannot reach a
    Slack-compatible receiver elsewhere (Mattermost, Rocket.Chat, an in-house relay), so the generic
    block sends the vendor's JSON format to the configured URL instead. For the signed webhook the body
    goes as raw text (``form_data``), so the bytes sent are exactly the bytes signed; the block's own
    JSON templating would re-serialise them."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    # notify(_sync=True) everywhere: called from a Prefect flow in an event loop, it would otherwise
    # return a coroutine and send nothing.
    url = secrets.keep(env(ch.url_env, "the webhook URL", name))
    common = dict(name=name, url=url, timeout=ch.timeout_seconds, allow_private_urls=ch.allow_private_urls)
    if isinstance(ch, WebhookChannel):
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        stamp = int(time.time())
        signature = sign(secrets.keep(env(ch.secret_env, "the webhook signing key", name)), stamp, text)
        block = CustomWebhookNotificationBlock(
            **common, form_data="{{body}}",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: "{{signature}}",
                     TIMESTAMP_HEADER: str(stamp), "X-Okrsync-Event": body["kind"],
                     "X-Okrsync-Delivery": str(body["delivery_id"])},
            secrets={"signature": signature},
        )
        block.notify(body=text, subject=title, _sync=True)  # type: ignore[call-arg]
    elif isinstance(ch, SlackChannel):
        block = CustomWebhookNotificationBlock(**common, json_data={"text": "*{{subject}}*\n{{body}}"})
        block.notify(body=body["text"], subject=title, _sync=True)  # type: ignore[call-arg]
    else:
        card = {"type": "AdaptiveCard", "version": "1.4",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [{"type": "TextBlock", "text": "{{subject}}", "weight": "Bolder", "wrap": True},
                         {"type": "TextBlock", "text": "{{body}}", "wrap": True}]}
        block = CustomWebhookNotificationBlock(**common, json_data={
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]})
        block.notify(body=body["text"], subject=title, _sync=True)  # type: ignore[call-arg]


def _mail(name: str, ch: EmailChannel, secrets: Secrets, to: str, body: Mapping[str, Any],
          title: str) -> None:
    """Send over SMTP with the standard library (Prefect's email integration, prefect-email, is a task
    that needs a Prefect API and is not a dependency; its credentials block wraps this same smtplib)."""
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = title, ch.sender, to
    msg["X-Okrsync-Event"] = body["kind"]
    msg.set_content(body["text"] + "\n\n" + json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    smtp_class = smtplib.SMTP_SSL if ch.security == "ssl" else smtplib.SMTP
    with smtp_class(ch.host, ch.port, timeout=ch.timeout_seconds) as smtp:
        if ch.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if ch.username and ch.password_env:
            smtp.login(ch.username, secrets.keep(env(ch.password_env, "the SMTP password", name)))
        smtp.send_message(msg)


def _failure(exc: BaseException, secrets: Secrets) -> str:
    """What went wrong, without a URL, a secret or a response body."""
    if isinstance(exc, OkrsyncError):
        return secrets.scrub(exc.message)
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None) is not None:
        return f"the receiver answered HTTP {response.status_code}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the SMTP server answered {exc.smtp_code}"
    name = type(exc).__name__
    if name == "ConnectError" or isinstance(exc, ConnectionError):
        return "could not connect to the receiver (is it running, and is the URL right?)"
    if name.endswith("Timeout") or isinstance(exc, TimeoutError):
        return "the receiver did not answer in time (timeout_seconds)"
    if isinstance(exc, ValueError) and "private" in str(exc).lower():
        return "the URL points at a private address (set allow_private_urls: true for an in-house receiver)"
    detail = f": {secrets.scrub(str(exc))[:200]}" if isinstance(exc, OSError) else ""  # refused, timed out
    return type(exc).__name__ + detail


def send_due(project: Project, store: Store, report: AlertReport | None = None) -> AlertReport:
    """Send every due delivery (pending, or failed with attempts left), oldest first, within each
    channel's ``max_per_hour``; record each outcome. Never raises for a delivery that fails."""
    report = report or AlertReport(channels=len(project.alerts.channels))
    a = project.alerts
    with store.engine.connect() as conn:
        todo = stored.due(conn, a.max_attempts)
        info = stored.kr_info(conn, {k for d in todo for k in d.kr_ids})
        hour_ago = utcnow() - timedelta(hours=1)
        budget = {n: ch.max_per_hour - stored.sent_since(conn, n, hour_ago) for n, ch in a.channels.items()}
    for d in todo:
        ch = a.channels.get(d.channel)
        with store.engine.begin() as conn:
            if ch is None:  # the channel left the project file: nothing to send it with
                stored.finish(conn, d.id, f"no channel {d.channel!r} in the project file", 1)
                report.failed += 1
                continue
            if budget[d.channel] <= 0:
                stored.defer(conn, d, f"rate limit: {ch.max_per_hour} per hour reached; sent by a later run")
                report.deferred += 1
                continue
            if not stored.claim(conn, d):
                continue
        budget[d.channel] -= 1
        error = _send(project, ch, d, info)
        with store.engine.begin() as conn:
            stored.finish(conn, d.id, error, a.max_attempts)
        if error is None:
            report.sent += 1
        else:
            report.failed += 1
            report.errors.append(f"{d.channel}: {error}")
            log.warning("alert delivery %s on channel %s failed: %s", d.id, d.channel, error)
    return report


def _send(project: Project, ch: Channel, d: stored.Delivery, info: Mapping[str, stored.KrInfo]) -> str | None:
    secrets = Secrets()
    try:
        body = payload(project, d, info)
        title = _title(project, body)
        if isinstance(ch, EmailChannel):
            _mail(d.channel, ch, secrets, d.recipient, body, title)
        else:
            _post(d.channel, ch, secrets, body, title)
    except Exception as exc:  # any failure of one delivery is recorded, and tried again next run
        return _failure(exc, secrets)
    return None


def record(project: Project, store: Store, run_id: str | None, fence: Fence | None = None) -> AlertReport:
    """Record the run's events and queue their deliveries; a failure here never fails the run (the
    next run detects the same changes, as the states it compares with were not updated either)."""
    report = AlertReport(channels=len(project.alerts.channels))
    try:
        report.events = record_events(project, store, run_id, fence)
    except Exception as exc:
        report.errors.append(f"recording alert events failed ({type(exc).__name__})")
        log.warning("recording alert events failed (%s); the next run detects them", type(exc).__name__)
    return report


def deliver(project: Project, store: Store, report: AlertReport | None = None) -> AlertReport:
    """:func:`send_due` when the project has channels; a failure here never fails the run."""
    report = report or AlertReport(channels=len(project.alerts.channels))
    if project.alerts.channels:
        try:
            send_due(project, store, report)
        except Exception as exc:
            report.errors.append(f"sending alerts failed ({type(exc).__name__})")
            log.warning("sending alerts failed (%s); the next run retries", type(exc).__name__)
    return report
