"""``okrsync users`` and ``okrsync serve`` as a user runs them: the real console script in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import Site, _free_port

OKRSYNC = Path(sys.executable).parent / "okrsync"


def cli(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")} | {"COLUMNS": "200"}
    return subprocess.run(
        [str(OKRSYNC), "-p", str(project), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def project(web_template: Site, tmp_path: Path) -> Path:
    shutil.copytree(web_template.project_dir, tmp_path / "demo")
    return tmp_path / "demo" / "okrsync.yaml"


def test_users_add_list_role_passwd_token_revoke_remove(project: Path) -> None:
    r = cli(project, "users", "add", "maria", "--role", "hr", "--password-stdin", stdin="maria-long-pw\n")
    assert r.returncode == 0 and "added maria (hr)" in r.stdout, r
    again = cli(project, "users", "add", "maria", "--role", "hr", "--password-stdin", stdin="maria-long-pw\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad_role = cli(
        project, "users", "add", "x", "--role", "boss", "--password-stdin", stdin="long-enough-pw\n"
    )
    assert bad_role.returncode == 2 and "viewer, leadership, editor, hr, admin, owner" in bad_role.stderr
    short = cli(project, "users", "add", "y", "--role", "hr", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    bad_name = cli(
        project, "users", "add", "a b", "--role", "hr", "--password-stdin", stdin="long-enough-pw\n"
    )
    assert bad_name.returncode == 2 and "not a valid user name" in bad_name.stderr

    listed = json.loads(cli(project, "users", "list", "--json").stdout)["users"]
    assert {"name": "maria", "role": "hr"}.items() <= next(u for u in listed if u["name"] == "maria").items()
    assert cli(project, "users", "role", "maria", "leadership").returncode == 0

    tok = cli(project, "users", "token", "maria", "--label", "nightly report", "--days", "7")
    assert tok.returncode == 0 and "shown only now" in tok.stderr
    token = tok.stdout.strip()
    assert token.startswith("okr_") and "\n" not in token  # stdout is the token alone, for scripts
    tokens = json.loads(cli(project, "users", "tokens", "--json").stdout)["tokens"]
    assert [t["label"] for t in tokens if t["user_name"] == "maria"] == ["nightly report"]
    assert token not in json.dumps(tokens)
    assert token.encode() not in (project.parent / ".okrsync" / "store.db").read_bytes()

    assert cli(project, "users", "revoke", str(tokens[-1]["id"])).returncode == 0
    assert cli(project, "users", "token", "maria", "--label", "second").returncode == 0
    passwd = cli(project, "users", "passwd", "maria", "--password-stdin", stdin="another-long-pw\n")
    assert passwd.returncode == 0 and "1 API tokens ended" in passwd.stdout
    tokens = json.loads(cli(project, "users", "tokens", "--json").stdout)["tokens"]
    assert [t for t in tokens if t["user_name"] == "maria"] == []  # a password change ends them
    missing = cli(project, "users", "revoke", "999")
    assert missing.returncode == 2 and "no API token #999" in missing.stderr
    assert cli(project, "users", "remove", "maria").returncode == 0
    gone = cli(project, "users", "remove", "maria")
    assert gone.returncode == 2 and "no user 'maria'" in gone.stderr


def _serve(project_file: Path) -> tuple[subprocess.Popen[str], int]:
    """``okrsync serve`` on a free loopback port, without the caller's OKRSYNC_ settings."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKRSYNC_")}
    proc = subprocess.Popen(
        [str(OKRSYNC), "-p", str(project_file), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, port


def _wait(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180  # only stops a hung start
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate())
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("okrsync serve did not answer")


def test_serve_starts_the_web_app_and_a_user_signs_in(project: Path) -> None:
    assert (
        cli(
            project,
            "users",
            "add",
            "ana",
            "--role",
            "leadership",
            "--password-stdin",
            stdin="ana-long-password\n",
        ).returncode
        == 0
    )
    proc, port = _serve(project)
    try:
        _wait(f"http://127.0.0.1:{port}/api/health", proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.post(
                "/api/session", json={"username": "ana", "password": "ana-long-password"}
            ).is_success
            tree = c.get("/api/tree").json()
            assert {k["id"] for o in tree["objectives"] for k in o["key_results"]} >= {"KR-REV", "KR-LATE"}
            page = c.get("/")
            assert page.status_code == 200 and "<html" in page.text.lower()
        # a second server on the same port says what to do
        busy = cli(project, "serve", "--port", str(port))
        assert busy.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        assert "--port" in busy.stderr
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
    assert "ana-long-password" not in out + err


def test_serve_warns_when_nobody_can_sign_in(tmp_path: Path) -> None:
    (tmp_path / "okrsync.yaml").write_text(
        "version: 1\nsources: {}\nstreams: {}\nmetrics: {}\nobjectives: []\n"
    )
    proc, port = _serve(tmp_path / "okrsync.yaml")
    try:
        _wait(f"http://127.0.0.1:{port}/api/health", proc)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "No users yet" in err and "users add NAME --role admin" in " ".join(err.split())
