"""The HTTPS server (standard library ``http.server`` + ``ssl``) and the :class:`BambooHrSandbox` facade."""

from __future__ import annotations

import json
import secrets
import tempfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from okrsync.sandboxes.https import LoopbackTLSServer
from okrsync.sandboxes.tls import make_certificate, server_context

from .app import BambooHrApp, Response, parse_query_string
from .ats import Ats
from .faults import Faults, RequestLog, RequestRecord
from .model import Org


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        return  # the sandbox never logs: requests and answers hold personal data

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        parts = urlsplit(self.path)
        query = parse_query_string(parts.query)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        shown = {k: ("***" if k == "authorization" else v) for k, v in headers.items()}
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RequestRecord(self.command, parts.path, query, shown, parsed)
        sandbox.requests.append(record)
        try:
            resp = sandbox.app.handle(self.command, parts.path, query, headers, body)
        except Exception as exc:  # a sandbox bug must still answer, and say what went wrong
            resp = Response(500, b"", {"X-BambooHR-Error-Message": f"sandbox error: {type(exc).__name__}"})
        record.status = resp.status
        self.send_response(resp.status)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


class _TLSServer(LoopbackTLSServer):
    def __init__(self, sandbox: BambooHrSandbox, host: str, port: int) -> None:
        self.sandbox = sandbox
        super().__init__(host, port, _Handler)


class BambooHrSandbox:
    """A BambooHR-API-compatible HTTPS server on loopback, backed by an in-memory :class:`Org`.

    ``with BambooHrSandbox(employees=300) as box: ...`` — ``box.base_url`` is the API base to give the
    connector (``base_url``), ``box.cert_path`` the certificate to trust (``ca_bundle``), ``box.api_key``
    the key it accepts. ``box.org`` is the company (change it between syncs), ``box.faults`` arms errors,
    ``box.requests`` logs what was asked, ``box.hidden_fields`` hides fields from the key's user, ``box.ats``
    holds the job openings and applications (change them between syncs too).
    """

    def __init__(self, org: Org | None = None, *, seed: int = 7, employees: int = 300, deleted: int = 3,
                 company_domain: str = "acme", api_key: str | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.org = org if org is not None else Org.generate(seed=seed, employees=employees, deleted=deleted)
        self.faults = Faults()
        self.requests = RequestLog()
        self.company_domain = company_domain
        self.api_key = api_key or f"sandbox-{secrets.token_hex(20)}"
        self.app = BambooHrApp(self.org, self.faults, company_domain, self.api_key,
                               Ats.generate(self.org, seed))
        self.host, self.requested_port = host, port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: _TLSServer | None = None
        self.cert_path = Path()

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> BambooHrSandbox:
        server = _TLSServer(self, self.host, self.requested_port)
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix="bamboohr-sandbox-")
            self.cert_path, key_path = make_certificate(Path(self._tmp.name), [self.host])
            server.ctx = server_context(self.cert_path, key_path)
        except BaseException:
            server.server_close()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
            raise
        self._server = server
        server.serve_in_thread("bamboohr-sandbox")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        self._server = self._tmp = None

    def __enter__(self) -> BambooHrSandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- access ------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "sandbox not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The API base: ``https://127.0.0.1:PORT/api/gateway.php/{company_domain}/v1/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}/api/gateway.php/{self.company_domain}/v1/"

    @property
    def ats(self) -> Ats:
        return self.app.ats

    @property
    def hidden_fields(self) -> set[str]:
        return self.app.hidden_fields

    def source_options(self, api_key_env: str = "BAMBOOHR_API_KEY", **more: Any) -> dict[str, Any]:
        """The ``system: bamboohr`` source keys for this sandbox (set ``api_key_env`` to :attr:`api_key`)."""
        return {"system": "bamboohr", "company_domain": self.company_domain, "base_url": self.base_url,
                "ca_bundle": str(self.cert_path), "api_key_env": api_key_env, **more}
