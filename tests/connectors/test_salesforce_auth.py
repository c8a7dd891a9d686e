"""Salesforce logins (JWT bearer, session id, password) and secrets that must never leak, through the real
simple-salesforce client against the loopback sandbox.

Expected records come from the sandbox org (``box.org``). The canary tests follow RELIABILITY.md S1 and
fault-matrix row 33: a secret must not appear in any exception text, log record (every logger at DEBUG,
urllib3 and simple_salesforce included) or anything printed.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.base import StreamSpec
from connectors.salesforce import SalesforceConnector
from okrsync.errors import ConfigError, OkrsyncError, SourceError
from okrsync.sandboxes.salesforce import SalesforceSandbox
from okrsync.sandboxes.salesforce.auth import Credentials

FIELDS = ("Amount", "StageName", "CloseDate", "SystemModstamp")
LOGGERS = ("", "urllib3", "urllib3.connectionpool", "requests", "simple_salesforce", "connectors", "okrsync")


@pytest.fixture
def box(make_salesforce_sandbox: Callable[..., SalesforceSandbox]) -> SalesforceSandbox:
    return make_salesforce_sandbox(opportunities=300, seed=13)


@pytest.fixture
def opened() -> Iterator[list[SalesforceConnector]]:
    """Connectors to close after the test."""
    conns: list[SalesforceConnector] = []
    yield conns
    for conn in conns:
        conn.close()


@pytest.fixture
def connector(
    box: SalesforceSandbox, opened: list[SalesforceConnector], tmp_path: Path
) -> Callable[..., SalesforceConnector]:
    """``connector(**options)``: a connector on the sandbox (``auth`` and its keys given by the test)."""

    def make(**options: Any) -> SalesforceConnector:
        base = {"login_url": box.instance_url, "ca_bundle": str(box.cert_path), "retry_backoff_seconds": 0}
        conn = SalesforceConnector("crm", base | options, tmp_path, sleep=lambda s: None)
        opened.append(conn)
        return conn

    return make


@pytest.fixture
def jwt_options(box: SalesforceSandbox, tmp_path: Path) -> dict[str, Any]:
    """JWT bearer options with the connected app's private key in a file of ``tmp_path``."""
    key_file = tmp_path / "keys" / "crm-jwt.pem"
    key_file.parent.mkdir()
    key_file.write_text(box.jwt_private_key_pem)
    c = box.credentials
    return {"auth": "jwt", "username": c.username, "consumer_key": c.consumer_key,
            "private_key_file": str(key_file)}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, captured."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def spec(**options: Any) -> StreamSpec:
    return StreamSpec(name="opportunities", source="crm", primary_key="Id", cursor="SystemModstamp",
                      fields=FIELDS, options={"object": "Opportunity", **options})


def read_all(conn: SalesforceConnector, stream: StreamSpec | None = None) -> pd.DataFrame:
    frames = list(conn.read(stream or spec(), None))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def live_ids(box: SalesforceSandbox) -> list[str]:
    return sorted(r["Id"] for r in box.org.records("Opportunity"))


def other_rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def error_texts(exc: BaseException) -> str:
    """Everything an error could show: its str, repr, hint and the traceback a logger would print."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, OkrsyncError):
        parts += [exc.message, exc.hint or ""]
    return "\n".join(parts)


def key_fragments(pem: str) -> list[str]:
    """The whole key and each base64 line of its body (a partial leak is a leak too)."""
    body = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return [pem.strip(), *body]


def canary(what: str) -> str:
    return f"canary-{what}-{secrets.token_hex(8)}"


# -- JWT bearer ----------------------------------------------------------------------------------------


def test_jwt_login_with_a_key_file_reads_every_opportunity(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], jwt_options: dict[str, Any]
) -> None:
    conn = connector(**jwt_options)
    df = read_all(conn)
    assert sorted(df["Id"]) == live_ids(box)
    assert conn.client.logins == 1
    assert box.requests.count("/services/oauth2/token", "POST") == 1
    assert box.requests.count("/services/Soap/u/") == 0  # no password login on the side


def test_jwt_login_with_the_key_in_an_environment_variable(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SF_JWT_KEY", box.jwt_private_key_pem)
    c = box.credentials
    conn = connector(auth="jwt", username=c.username, consumer_key=c.consumer_key,
                     private_key_env="SF_JWT_KEY")
    assert sorted(read_all(conn)["Id"]) == live_ids(box)


@pytest.mark.parametrize("where", ["file", "env"])
def test_a_key_the_connected_app_does_not_know_is_refused_without_showing_the_key(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture, where: str,
) -> None:
    wrong = other_rsa_key_pem()
    c = box.credentials
    options: dict[str, Any] = {"auth": "jwt", "username": c.username, "consumer_key": c.consumer_key}
    if where == "file":
        (tmp_path / "wrong.pem").write_text(wrong)
        options["private_key_file"] = "wrong.pem"  # relative to the project directory
    else:
        monkeypatch.setenv("SF_JWT_KEY", wrong)
        options["private_key_env"] = "SF_JWT_KEY"
    conn = connector(**options)
    with pytest.raises(SourceError, match="refused the login") as exc:
        read_all(conn)
    assert "re-authenticate the integration user" in str(exc.value)
    assert not exc.value.transient
    assert box.requests.count("/services/oauth2/token", "POST") == 1  # refused once, not retried
    texts = error_texts(exc.value)
    for fragment in key_fragments(wrong) + key_fragments(box.jwt_private_key_pem):
        assert fragment not in texts, "a private key line appears in the login error"
        assert fragment not in debug_logs.text, "a private key line appears in the logs"


def test_an_expired_session_with_jwt_logs_in_once_more_and_reads_the_same(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], jwt_options: dict[str, Any]
) -> None:
    golden = read_all(connector(**jwt_options))
    conn = connector(**jwt_options, page_size=200)  # two pages: the session expires between calls
    conn.schema(spec())
    first = conn.client.sf.session_id
    box.faults.expire_session_after(1)
    pd.testing.assert_frame_equal(read_all(conn), golden)
    assert conn.client.logins == 2
    assert conn.client.sf.session_id != first
    assert sorted(golden["Id"]) == live_ids(box)


def test_a_missing_private_key_file_is_a_config_error_naming_the_path(
    connector: Callable[..., SalesforceConnector], jwt_options: dict[str, Any], tmp_path: Path
) -> None:
    conn = connector(**(jwt_options | {"private_key_file": "keys/nowhere.pem"}))
    with pytest.raises(ConfigError, match="private_key_file") as exc:
        read_all(conn)
    assert str((tmp_path / "keys" / "nowhere.pem").resolve()) in exc.value.message
    assert exc.value.exit_code == 2


def test_an_unset_key_variable_is_a_config_error_naming_the_variable(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SF_JWT_KEY_UNSET", raising=False)
    c = box.credentials
    conn = connector(auth="jwt", username=c.username, consumer_key=c.consumer_key,
                     private_key_env="SF_JWT_KEY_UNSET")
    with pytest.raises(ConfigError, match="environment variable SF_JWT_KEY_UNSET is not set") as exc:
        conn.schema(spec())
    assert "SF_JWT_KEY_UNSET" in (exc.value.hint or "")
    assert box.requests.count("/services/oauth2/token") == 0  # nothing was sent


# -- session id ----------------------------------------------------------------------------------------


def test_session_auth_reads_and_never_shows_the_session_id(
    box: SalesforceSandbox, monkeypatch: pytest.MonkeyPatch, opened: list[SalesforceConnector],
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    sid = box.new_session()
    monkeypatch.setenv("SF_SID", sid)

    def session_connector() -> SalesforceConnector:
        conn = SalesforceConnector("crm", {"auth": "session", "session_id_env": "SF_SID",
                                           "instance_url": box.instance_url, "ca_bundle": str(box.cert_path),
                                           "retries": 0}, tmp_path, sleep=lambda s: None)
        opened.append(conn)
        return conn

    conn = session_connector()
    assert sorted(read_all(conn)["Id"]) == live_ids(box)
    assert box.requests.count("/services/oauth2/token") + box.requests.count("/services/Soap/u/") == 0

    errors: list[OkrsyncError] = []
    for stream in (
        spec(where={"field": "Stage", "op": "=", "value": "Closed Won"}),  # a filter on an unknown field
        StreamSpec(name="x", source="crm", primary_key="Id", options={"object": "Opportunities"}),
    ):
        with pytest.raises(ConfigError) as cfg:
            read_all(session_connector(), stream)
        errors.append(cfg.value)
    box.faults.http_error_on_request(1, status=500, error_code="UNKNOWN_EXCEPTION", message="boom")
    with pytest.raises(SourceError, match="did not answer after 1 tries") as down:
        read_all(session_connector())
    errors.append(down.value)
    box.faults.expire_session_after(0)
    with pytest.raises(SourceError, match="session expired") as expired:
        read_all(conn)
    assert "SF_SID" in str(expired.value)  # names the variable to refresh, not its value
    errors.append(expired.value)
    box.app.sessions.revoke(sid)
    with pytest.raises(SourceError, match="session expired") as revoked:
        read_all(session_connector())
    errors.append(revoked.value)

    printed = capsys.readouterr()
    assert "/services/data/" in debug_logs.text  # the HTTP requests really were logged at DEBUG
    for e in errors:
        assert sid not in error_texts(e), f"the session id appears in an error: {e}"
    assert sid not in debug_logs.text, "the session id appears in the logs"
    assert sid not in printed.out + printed.err, "the session id was printed"


# -- canary secrets (RELIABILITY S1, matrix row 33) -----------------------------------------------------


def test_a_refused_password_login_leaks_the_canary_nowhere(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    password, token = canary("password"), canary("token")
    monkeypatch.setenv("SF_PASSWORD", password)
    monkeypatch.setenv("SF_TOKEN", token)
    conn = connector(auth="password", username=box.credentials.username, password_env="SF_PASSWORD",
                     security_token_env="SF_TOKEN")
    with pytest.raises(SourceError, match="refused the login") as exc:
        read_all(conn)
    printed = capsys.readouterr()
    assert box.requests.count("/services/Soap/u/", "POST") == 1  # the login really was attempted
    assert "/services/Soap/u/" in debug_logs.text  # and urllib3 logged it at DEBUG
    texts = error_texts(exc.value)
    for secret in (password, token, password + token):
        assert secret not in texts, "a canary secret appears in the login error (str, repr or traceback)"
        assert secret not in debug_logs.text, "a canary secret appears in the logs"
        assert secret not in printed.out + printed.err, "a canary secret was printed"


def test_a_successful_password_read_logs_no_secret(
    box: SalesforceSandbox, connector: Callable[..., SalesforceConnector], monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    # the sandbox's integration user gets canary credentials, so that a grep cannot match by chance
    c = box.credentials
    password, token = canary("password"), canary("token")
    box.app.credentials = Credentials(c.username, password, token, c.consumer_key, c.consumer_secret)
    monkeypatch.setenv("SF_PASSWORD", password)
    monkeypatch.setenv("SF_TOKEN", token)
    conn = connector(auth="password", username=c.username, password_env="SF_PASSWORD",
                     security_token_env="SF_TOKEN", page_size=200)
    assert sorted(read_all(conn)["Id"]) == live_ids(box)
    sid = conn.client.sf.session_id
    assert sid and conn.client.logins == 1
    printed = capsys.readouterr()
    assert "/services/data/" in debug_logs.text  # the requests were logged at DEBUG
    for secret in (password, token, password + token, sid):
        assert secret not in debug_logs.text, "a secret (password, token or session id) appears in the logs"
        assert secret not in printed.out + printed.err, "a secret was printed"
