"""The sandbox's JWT bearer login, listening address and certificate directory, org mutation for benchmarks,
and the long-lived runner — through the real simple-salesforce client wherever it talks to the server."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.bulk2 import SFBulk2Type
from simple_salesforce.exceptions import SalesforceAuthenticationFailed
from simple_salesforce.login import SalesforceLogin

from okrsync.sandboxes.salesforce import Org, SalesforceSandbox
from okrsync.sandboxes.salesforce.auth import generate_rsa_private_key_pem, route_login_hosts
from okrsync.sandboxes.salesforce.model import DEFAULT_NOW
from okrsync.sandboxes.salesforce.runner import start_sandbox
from okrsync.sandboxes.salesforce.soql_eval import execute

Factory = Callable[..., SalesforceSandbox]
_WAIT = cast(int, 0.01)  # Bulk 2.0's first-poll delay (annotated int, a float works)


def _sobject(sf: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(sf, name))


def _bulk2(sf: Salesforce, name: str = "Opportunity") -> SFBulk2Type:
    return cast(SFBulk2Type, getattr(sf.bulk2, name))


def _csv(pages: list[str]) -> list[dict[str, str]]:
    return [row for page in pages for row in csv.DictReader(io.StringIO(page))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _jwt_login(box: SalesforceSandbox, privatekey: str, domain: str = "login") -> Salesforce:
    c = box.credentials
    return Salesforce(
        username=c.username,
        consumer_key=c.consumer_key,
        privatekey=privatekey,
        domain=domain,
        session=box.http_session(route_login=True),
        version=box.version,
    )


def _assertion(box: SalesforceSandbox, key: str | None = None, **claims: Any) -> str:
    c = box.credentials
    payload = {
        "iss": c.consumer_key,
        "sub": c.username,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 180,
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key or box.jwt_private_key_pem, algorithm="RS256")


def _token(box: SalesforceSandbox, data: dict[str, str], **kw: Any) -> requests.Response:
    return box.http_session().post(f"{box.instance_url}/services/oauth2/token", data=data, **kw)


# --------------------------------------------------------------------------------------- JWT bearer
def test_jwt_bearer_login_through_simple_salesforce(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    issued = box.app.sessions.issued
    sf = _jwt_login(box, box.jwt_private_key_pem)
    assert sf.auth_type == "jwt-bearer" and sf.sf_instance == f"127.0.0.1:{box.port}"
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 25
    assert box.app.sessions.issued == issued + 1
    assert [r.status for r in box.requests.matching("/services/oauth2/token", method="POST")] == [200]
    # the test login host works too, and so does the convenience client
    assert _jwt_login(box, box.jwt_private_key_pem, domain="test").query("SELECT Id FROM User LIMIT 1")
    assert box.jwt_client().query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1


def test_jwt_success_body_is_salesforces(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    resp = _token(
        box, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": _assertion(box)}
    )
    body = resp.json()
    assert resp.status_code == 200 and set(body) == {
        "access_token",
        "scope",
        "instance_url",
        "id",
        "token_type",
    }
    assert body["scope"] == "api" and body["token_type"] == "Bearer"
    assert body["instance_url"] == box.instance_url and body["id"].startswith(f"{box.instance_url}/id/00D")
    assert box.app.sessions.is_valid(body["access_token"])


def test_jwt_with_the_wrong_key_fails_in_the_client(salesforce_sandbox: SalesforceSandbox) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        _jwt_login(salesforce_sandbox, generate_rsa_private_key_pem())
    assert (exc.value.code, exc.value.auth_message) == ("invalid_grant", "invalid assertion")


def test_jwt_for_another_user_is_not_approved(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    with (
        pytest.warns(UserWarning, match="authorize this"),
        pytest.raises(SalesforceAuthenticationFailed) as exc,
    ):
        SalesforceLogin(
            username="someone.else@okrsync.test",
            consumer_key=box.credentials.consumer_key,
            privatekey=box.jwt_private_key_pem,
            domain="login",
            session=box.http_session(route_login=True),
        )
    assert (exc.value.code, exc.value.auth_message) == ("invalid_grant", "user hasn't approved this consumer")


def test_jwt_error_bodies(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    invalid = {"error": "invalid_grant", "error_description": "invalid assertion"}
    other_key = generate_rsa_private_key_pem()
    cases: list[tuple[str, dict[str, str]]] = [
        (
            _assertion(box, iss="unknown-app"),
            {"error": "invalid_client_id", "error_description": "client identifier invalid"},
        ),
        (_assertion(box, key=other_key), invalid),
        (_assertion(box, aud="https://evil.example.com"), invalid),
        (_assertion(box, aud=box.instance_url), invalid),
        (_assertion(box, exp=None), invalid),  # exp is required
        (
            jwt.encode(
                {"iss": box.credentials.consumer_key},
                "a-shared-secret-is-not-an-rsa-key-at-all",
                algorithm="HS256",
            ),
            invalid,
        ),
        ("not.a.jwt", invalid),
        ("", invalid),
        (
            _assertion(box, sub="nobody@okrsync.test"),
            {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"},
        ),
        (
            _assertion(box, exp=int(time.time()) - 60),
            {"error": "invalid_grant", "error_description": "expired access/refresh token"},
        ),
        (_assertion(box, key=other_key, exp=int(time.time()) - 60), invalid),  # signature first
    ]
    for assertion, expected in cases:
        resp = _token(
            box, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        )
        assert (resp.status_code, resp.json()) == (400, expected), assertion
    ok = _token(
        box,
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": _assertion(box, aud="https://test.salesforce.com"),
        },
    )
    assert ok.status_code == 200


def test_password_and_client_credentials_grants_still_work(salesforce_sandbox: SalesforceSandbox) -> None:
    box, c = salesforce_sandbox, salesforce_sandbox.credentials
    client = {"client_id": c.consumer_key, "client_secret": c.consumer_secret}
    resp = _token(box, {"grant_type": "password", "username": c.username, "password": c.password, **client})
    assert resp.status_code == 200 and box.app.sessions.is_valid(resp.json()["access_token"])
    resp = _token(box, {"grant_type": "password", "username": c.username, "password": "nope", **client})
    assert resp.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    resp = _token(box, {"grant_type": "client_credentials"}, auth=(c.consumer_key, c.consumer_secret))
    assert resp.status_code == 200
    resp = _token(box, {"grant_type": "client_credentials"}, auth=(c.consumer_key, "wrong"))
    assert resp.json()["error"] == "invalid_client_id"


def test_given_jwt_key_is_used_and_must_be_rsa() -> None:
    pem = generate_rsa_private_key_pem()
    with SalesforceSandbox(opportunities=10, accounts=5, jwt_private_key_pem=pem) as box:
        assert box.jwt_private_key_pem == pem
        assert _jwt_login(box, pem).query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        SalesforceSandbox(opportunities=10, accounts=5, jwt_private_key_pem=ec_pem)


def test_rejected_token_requests_make_reauthentication_fail(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    sf = _jwt_login(box, box.jwt_private_key_pem)
    box.faults.expire_session_after(0)
    box.faults.reject_token_requests(description="refresh refused by test")
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        sf.query("SELECT Id FROM User LIMIT 1")  # 401, the client logs in again, the login is refused
    assert (exc.value.code, exc.value.auth_message) == ("invalid_grant", "refresh refused by test")
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        box.password_client()  # SOAP login() is refused too
    assert (exc.value.code, exc.value.auth_message) == ("INVALID_LOGIN", "refresh refused by test")
    c = box.credentials
    resp = _token(box, {"grant_type": "client_credentials"}, auth=(c.consumer_key, c.consumer_secret))
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_grant")
    box.faults.clear()
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 25  # re-login works again


# --------------------------------------------------------------------------- address and certificate
def test_port_and_cert_dir(tmp_path: Path) -> None:
    port = _free_port()
    certs = tmp_path / "certs"
    box = SalesforceSandbox(opportunities=10, accounts=5, port=port, cert_dir=certs).start()
    try:
        assert box.port == port and box.instance_url == f"https://127.0.0.1:{port}"
        assert box.cert_path == certs / "cert.pem"
        assert stat.S_IMODE((certs / "key.pem").stat().st_mode) == 0o600
        s = requests.Session()
        s.trust_env = False
        versions = s.get(f"{box.instance_url}/services/data/", verify=str(certs / "cert.pem"), timeout=5)
        assert versions.status_code == 200
        with pytest.raises(OSError, match=f"127.0.0.1:{port}: the port is already in use"):
            SalesforceSandbox(opportunities=10, accounts=5, port=port).start()
    finally:
        box.stop()
    assert (certs / "cert.pem").exists() and (certs / "key.pem").exists()  # kept after stop


# --------------------------------------------------------------------------------------- mutation
def test_mutate_is_deterministic_and_stamps_every_change() -> None:
    a = Org().generate(seed=3, opportunities=1000)
    b = Org().generate(seed=3, opportunities=1000)
    before = {r["Id"]: r for r in a.records("Opportunity")}
    t0 = a.clock.now()
    updated, deleted = a.mutate("Opportunity", 0.1, seed=5)
    assert (updated, deleted) == b.mutate("Opportunity", 0.1, seed=5)
    assert a.records("Opportunity", True) == b.records("Opportunity", True)
    picked = round(0.1 * len(before))
    assert len(updated) + len(deleted) == picked and len(deleted) == round(0.2 * picked) > 0
    assert not set(updated) & set(deleted) and set(updated) | set(deleted) <= set(before)
    stamps = [a.get("Opportunity", i)["SystemModstamp"] for i in updated + deleted]
    assert len(set(stamps)) == len(stamps) and min(stamps) > t0 + timedelta(seconds=60)
    assert max(stamps) == a.clock.now()
    for rec_id in updated:
        new, old = a.get("Opportunity", rec_id), before[rec_id]
        assert new["Amount"] is not None and new["Amount"] != old["Amount"]
        assert round(new["Amount"], 2) == new["Amount"] and not new["IsDeleted"]
        assert new["IsWon"] == (new["StageName"] == "Closed Won")
    assert any(a.get("Opportunity", i)["StageName"] != before[i]["StageName"] for i in updated)
    assert all(a.get("Opportunity", i)["IsDeleted"] for i in deleted)
    assert a.mutate("Opportunity", 0.1, seed=6) != b.mutate("Opportunity", 0.1, seed=7)
    accounts, gone = a.mutate("Account", 0.05, seed=1, delete_share=0)
    assert len(accounts) == 25 and gone == []
    with pytest.raises(ValueError):
        a.mutate("User", 0.5, seed=1)  # users cannot be deleted


def test_incremental_queries_after_mutate(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=3000)
    sf = box.client()
    updated, deleted = box.org.mutate("Opportunity", 0.05, seed=9)
    assert updated and deleted
    since = "SystemModstamp >= 2026-06-15T12:00:00Z"
    assert DEFAULT_NOW == datetime(2026, 6, 15, 12, tzinfo=UTC)
    gone = sf.query_all(
        f"SELECT Id, IsDeleted FROM Opportunity WHERE {since} AND IsDeleted = true", include_deleted=True
    )
    assert sorted(r["Id"] for r in gone["records"]) == sorted(deleted)
    assert sf.query_all(f"SELECT Id FROM Opportunity WHERE {since} AND IsDeleted = true")["records"] == []
    changed = sf.query_all(f"SELECT Id FROM Opportunity WHERE {since} ORDER BY SystemModstamp, Id")["records"]
    assert [r["Id"] for r in changed] == updated  # applied in this order, 1 ms apart


def test_bulk2_query_honours_order_by(make_salesforce_sandbox: Factory) -> None:
    box = make_salesforce_sandbox(opportunities=3000)
    box.org.mutate("Opportunity", 0.1, seed=2)
    sf = box.client()
    every = box.org.records("Opportunity", include_deleted=True)
    soql = "SELECT Id, Amount, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id"
    rows = _csv([str(p) for p in _bulk2(sf).query_all(soql, max_records=1000, wait=_WAIT)])
    expected = sorted(every, key=lambda r: (r["SystemModstamp"], r["Id"][:15]))
    assert [r["Id"] for r in rows] == [r["Id"] for r in expected]
    desc = _csv(
        [
            str(p)
            for p in _bulk2(sf).query(
                "SELECT Id FROM Opportunity ORDER BY Amount DESC NULLS LAST, Id", wait=_WAIT
            )
        ]
    )
    live = sorted(box.org.records("Opportunity"), key=lambda r: r["Id"][:15])
    live.sort(key=lambda r: -r["Amount"] if r["Amount"] is not None else float("inf"))
    assert [r["Id"] for r in desc] == [r["Id"] for r in live]


def test_order_by_id_agrees_with_id_comparisons(salesforce_sandbox: SalesforceSandbox) -> None:
    sf = salesforce_sandbox.client()
    ids = [r["Id"] for r in sf.query_all("SELECT Id FROM Account ORDER BY Id")["records"]]
    assert ids == sorted(ids) and len(ids) == 500  # case-sensitive, as Salesforce orders ids
    pivot = ids[200]
    after = sf.query_all(f"SELECT Id FROM Account WHERE Id > '{pivot}' ORDER BY Id")["records"]
    assert [r["Id"] for r in after] == ids[201:]


@pytest.mark.slow  # 200,000 generated rows through query paging and a Bulk 2.0 job: half a minute
def test_200k_rows_generate_query_and_bulk(make_salesforce_sandbox: Factory) -> None:
    """200k opportunities through SOQL, Bulk 2.0 and REST paging (their speed is measured by
    `python -m bench --only salesforce`, not asserted here)."""
    org = Org().generate(opportunities=200_000)
    soql = "SELECT Id, Amount, SystemModstamp FROM Opportunity ORDER BY SystemModstamp, Id"
    result = execute(org, soql)
    stamps = [(r["SystemModstamp"], r["Id"]) for r in result.rows]
    assert stamps == sorted(stamps) and len(stamps) == len(org.records("Opportunity"))
    box = make_salesforce_sandbox(org=org)
    sf = box.client()
    pages = [str(p) for p in _bulk2(sf).query(soql, wait=_WAIT)]
    assert [r["Id"] for r in _csv(pages)] == [i for _, i in stamps]
    n = sum(1 for _ in sf.query_all_iter(soql))
    assert n == len(stamps)


# --------------------------------------------------------------------------------------- REST writes
def test_patch_through_simple_salesforce_bumps_system_modstamp(salesforce_sandbox: SalesforceSandbox) -> None:
    box = salesforce_sandbox
    sf = box.client()
    rec = box.org.records("Opportunity")[0]
    stamps = [rec["SystemModstamp"]]
    for amount in (1, 2):
        assert _sobject(sf, "Opportunity").update(rec["Id"], {"Amount": amount}) == 204
        stamps.append(box.org.get("Opportunity", rec["Id"])["SystemModstamp"])
    assert stamps[0] < stamps[1] < stamps[2]
    got = _sobject(sf, "Opportunity").get(rec["Id"])
    assert (
        got["Amount"] == 2
        and got["SystemModstamp"] == stamps[2].isoformat(timespec="milliseconds")[:23] + "+0000"
    )
    new = _sobject(sf, "Opportunity").create(
        {"Name": "After", "StageName": "Prospecting", "CloseDate": "2026-09-30", "OwnerId": rec["OwnerId"]}
    )
    assert box.org.get("Opportunity", new["id"])["SystemModstamp"] > stamps[2]


# --------------------------------------------------------------------------------------- runner
def test_start_sandbox_writes_state_and_keeps_the_jwt_key(tmp_path: Path) -> None:
    state = tmp_path / "state"
    box = start_sandbox(state, port=0, opportunities=50, accounts=10)
    try:
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        conn = json.loads((state / "connection.json").read_text())
        assert set(conn) == {
            "instance_url",
            "login_url",
            "ca_bundle",
            "username",
            "consumer_key",
            "private_key_file",
            "api_version",
            "org_now",
            "seed",
            "opportunities",
            "accounts",
        }
        assert (conn["seed"], conn["opportunities"], conn["accounts"]) == (7, 50, 10)
        assert conn["instance_url"] == conn["login_url"] == box.instance_url
        assert conn["ca_bundle"] == str(state.resolve() / "cert.pem") and conn["api_version"] == "59.0"
        key_file = Path(conn["private_key_file"])
        assert key_file == state.resolve() / "jwt-private-key.pem"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "key.pem").stat().st_mode) == 0o600
        text = (state / "connection.json").read_text()
        assert box.credentials.password not in text and box.credentials.security_token not in text
        key = key_file.read_text()
    finally:
        box.stop()

    def client(conn: dict[str, Any]) -> Salesforce:
        s = requests.Session()
        s.trust_env = False
        s.verify = conn["ca_bundle"]
        route_login_hosts(s, conn["login_url"])
        return Salesforce(
            username=conn["username"],
            consumer_key=conn["consumer_key"],
            privatekey_file=conn["private_key_file"],
            domain="login",
            session=s,
            version=conn["api_version"],
        )

    box = start_sandbox(state, port=0, opportunities=50, accounts=10)  # a restart
    try:
        assert key_file.read_text() == key == box.jwt_private_key_pem
        conn = json.loads((state / "connection.json").read_text())
        assert client(conn).query("SELECT COUNT() FROM Opportunity")["totalSize"] == len(
            box.org.records("Opportunity")
        )
    finally:
        box.stop()


def test_start_sandbox_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="already in use"):
            start_sandbox(tmp_path / "state", port=port, opportunities=10, accounts=5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_prints_facts_and_stops_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    state = tmp_path / "state"
    code = (
        "import sys; from pathlib import Path; "
        "from okrsync.sandboxes.salesforce.runner import serve_forever; "
        "serve_forever(Path(sys.argv[1]), port=0, opportunities=20, accounts=5)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(state)],
        cwd=tmp_path,  # the installed package, from any folder
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # an xdist worker ignores SIGINT and children inherit that: give the sandbox a terminal's default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 300  # only stops a hung start; a busy machine may be slow
        while not any(line.startswith("press Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line and time.monotonic() < deadline, (lines, proc.stderr.read() if proc.stderr else "")
            lines.append(line.rstrip("\n"))
        conn = json.loads((state / "connection.json").read_text())
        text = "\n".join(lines)
        assert f"listening at {conn['instance_url']}" in text
        for fact in (conn["ca_bundle"], conn["private_key_file"], conn["username"], conn["consumer_key"]):
            assert fact in text
        assert "sandbox-password" not in text and "SANDBOXTOKEN" not in text
        s = requests.Session()
        s.trust_env = False
        assert s.get(f"{conn['instance_url']}/services/data/", verify=conn["ca_bundle"], timeout=5).ok
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=180)  # a hang still fails; a busy machine may be slow
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip().endswith("Salesforce sandbox stopped") and "Traceback" not in err
    port = int(conn["instance_url"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_record_links_open_a_page_with_the_record(make_salesforce_sandbox: Any) -> None:
    box = make_salesforce_sandbox(opportunities=50)
    rec = box.org.records("Opportunity")[0]
    page = box.http_session().get(f"{box.instance_url}/lightning/r/Opportunity/{rec['Id']}/view")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert rec["Name"] in page.text and rec["Id"] in page.text
    assert box.http_session().get(f"{box.instance_url}/lightning/r/Opportunity/006000000000000AAA/view"
                                  ).status_code == 404


def test_a_restart_in_the_same_folder_serves_the_same_org(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_sandbox(state, port=0, opportunities=40, accounts=5)
    try:
        before = {r["Id"]: r["SystemModstamp"] for r in first.org.records("Opportunity", True)}
    finally:
        first.stop()
    again = start_sandbox(state, port=0, opportunities=40, accounts=5)
    try:
        after = {r["Id"]: r["SystemModstamp"] for r in again.org.records("Opportunity", True)}
    finally:
        again.stop()
    assert after == before
