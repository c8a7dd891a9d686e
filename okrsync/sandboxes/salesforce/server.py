"""The HTTPS server (standard library ``http.server`` + ``ssl``) and the :class:`SalesforceSandbox` facade."""

from __future__ import annotations

import errno
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce

from okrsync.sandboxes.https import LoopbackTLSServer
from okrsync.sandboxes.tls import make_certificate, server_context

from .auth import route_login_hosts
from .faults import Faults, RequestLog, RequestRecord
from .model import Org
from .rest import Response, SandboxApp, parse_query_string

API_VERSION = "59.0"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        return

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        query = parse_query_string(parts.query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = RequestRecord(self.command, parts.path, query, headers)
        sandbox.requests.append(record)
        try:
            resp = sandbox.app.handle(self.command, parts.path, query, headers, body)
        except Exception as exc:  # a sandbox bug must still answer, and say what went wrong
            resp = Response(
                500,
                f'[{{"message": "sandbox error: {type(exc).__name__}: {exc}", '
                f'"errorCode": "UNKNOWN_EXCEPTION"}}]'.encode(),
                {"Content-Type": "application/json;charset=UTF-8"},
            )
        record.status = resp.status
        faults = sandbox.faults
        if faults.delay_ms and faults.delay_path_contains in parts.path:
            time.sleep(faults.delay_ms / 1000)
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        if resp.abort_after is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if resp.abort_after is not None:
            self.wfile.write(resp.body[: resp.abort_after])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _dispatch


class _TLSServer(LoopbackTLSServer):
    def __init__(self, sandbox: SalesforceSandbox, host: str, port: int) -> None:
        self.sandbox = sandbox
        super().__init__(host, port, _Handler)


_WILDCARD = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # listen on all, connect on loopback


class SalesforceSandbox:
    """A Salesforce-REST-compatible HTTPS server (loopback by default) backed by an in-memory :class:`Org`.

    ``with SalesforceSandbox(opportunities=5000) as sf_box: sf = sf_box.client()``

    ``host``/``port`` are where it listens (port 0: a free port). The TLS certificate and its key go to a
    temporary directory removed by :meth:`stop`, or to ``cert_dir`` (``cert.pem``, ``key.pem`` mode 0600),
    where they stay. ``jwt_private_key_pem`` is the private key the JWT bearer flow must sign with (RSA,
    PEM); without it the sandbox makes an RSA-2048 key pair (see :attr:`jwt_private_key_pem`).
    """

    def __init__(
        self,
        org: Org | None = None,
        *,
        seed: int = 7,
        opportunities: int = 2000,
        accounts: int = 500,
        version: str = API_VERSION,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: Path | None = None,
        jwt_private_key_pem: str | bytes | None = None,
        **generate: Any,
    ) -> None:
        self.org = (
            org
            if org is not None
            else Org().generate(seed=seed, opportunities=opportunities, accounts=accounts, **generate)
        )
        self.faults = Faults()
        self.requests = RequestLog()
        self.app = SandboxApp(self.org, self.faults, jwt_private_key_pem)
        self.version = version
        self.host = host
        self.requested_port = port
        self.cert_dir = None if cert_dir is None else Path(cert_dir)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: _TLSServer | None = None
        self._clients: list[requests.Session] = []
        self.session_id = ""
        self.cert_path = Path()

    # ------------------------------------------------------------------------------------- lifecycle
    def start(self) -> SalesforceSandbox:
        try:
            server = _TLSServer(self, self.host, self.requested_port)
        except OSError as exc:
            where = f"{self.host}:{self.requested_port}"
            if exc.errno == errno.EADDRINUSE:
                msg = (
                    f"cannot start the Salesforce sandbox on {where}: the port is already in use "
                    "(another sandbox still running?); stop that process or choose another port"
                )
            else:
                msg = f"cannot start the Salesforce sandbox on {where}: {exc.strerror or exc}"
            raise OSError(exc.errno, msg) from exc
        try:
            if self.cert_dir is not None:
                self.cert_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.cert_path, key_path = make_certificate(
                    self.cert_dir, [self._url_host], valid_days=365
                )
            else:
                self._tmp = tempfile.TemporaryDirectory(prefix="sf-sandbox-")
                self.cert_path, key_path = make_certificate(Path(self._tmp.name), [self._url_host])
            server.ctx = server_context(self.cert_path, key_path)
        except BaseException:
            server.server_close()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
            raise
        self._server = server
        self.app.base_url = self.instance_url
        server.serve_in_thread("salesforce-sandbox")
        self.session_id = self.app.sessions.new()
        return self

    def stop(self) -> None:
        for s in self._clients:
            s.close()
        if self._server is not None:
            self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        self._server = self._tmp = None

    def __enter__(self) -> SalesforceSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------- access
    @property
    def port(self) -> int:
        assert self._server is not None, "sandbox not started"
        return int(self._server.server_address[1])

    @property
    def _url_host(self) -> str:
        return _WILDCARD.get(self.host, self.host)

    @property
    def instance_url(self) -> str:
        host = self._url_host
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def jwt_private_key_pem(self) -> str:
        """The private key (PKCS#8 PEM) of the connected app's certificate: sign JWT bearer assertions with it
        (``iss`` = ``credentials.consumer_key``, ``sub`` = ``credentials.username``)."""
        return self.app.jwt_keys.private_key_pem

    def http_session(self, route_login: bool = False) -> requests.Session:
        """A ``requests.Session`` that trusts the sandbox's certificate (and ignores REQUESTS_CA_BUNDLE)."""
        s = requests.Session()
        s.trust_env = False
        s.verify = str(self.cert_path)
        if route_login:
            route_login_hosts(s, self.instance_url)
        self._clients.append(s)
        return s

    def client(self, session_id: str | None = None, version: str | None = None) -> Salesforce:
        """A real ``Salesforce`` using session-id auth against the sandbox."""
        return Salesforce(
            instance_url=self.instance_url,
            session_id=session_id or self.session_id,
            session=self.http_session(),
            version=version or self.version,
        )

    def password_client(self, domain: str = "test") -> Salesforce:
        """A client that logs in over SOAP (username/password/token); re-logs in on INVALID_SESSION_ID."""
        c = self.app.credentials
        return Salesforce(
            username=c.username,
            password=c.password,
            security_token=c.security_token,
            domain=domain,
            session=self.http_session(route_login=True),
            version=self.version,
        )

    def jwt_client(self, domain: str = "login") -> Salesforce:
        """A client that logs in with the OAuth 2.0 JWT bearer flow (and again on INVALID_SESSION_ID)."""
        c = self.app.credentials
        return Salesforce(
            username=c.username,
            consumer_key=c.consumer_key,
            privatekey=self.jwt_private_key_pem,
            domain=domain,
            session=self.http_session(route_login=True),
            version=self.version,
        )

    def new_session(self) -> str:
        """Issue another valid session id (as a fresh login would)."""
        return self.app.sessions.new()

    # ----------------------------------------------------------------------------------- test knobs
    @property
    def api_usage(self) -> tuple[int, int]:
        return self.app.api.used, self.app.api.max

    def set_api_budget(self, max_calls: int, used: int | None = None) -> None:
        """The daily API budget reported in ``Sforce-Limit-Info``; at ``used >= max`` calls get 403."""
        with self.app.lock:
            self.app.api.max = max_calls
            if used is not None:
                self.app.api.used = used

    def expire_query_locators(self) -> None:
        """Every open query cursor is gone: its nextRecordsUrl answers 400 INVALID_QUERY_LOCATOR."""
        with self.app.lock:
            self.app.expire_query_locators()

    @property
    def credentials(self) -> Any:
        return self.app.credentials
