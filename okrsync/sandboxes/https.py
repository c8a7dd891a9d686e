"""The HTTPS server under the loopback sandboxes: TLS per connection, connections it can cut, a serving
thread, and the log of the requests a sandbox received."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, TypeVar


class _Request(Protocol):
    method: str
    path: str


R = TypeVar("R", bound=_Request)


class RequestLog(list[R]):
    """Every request received, in order (a list), with small helpers for call-count assertions."""

    def count(self, path_contains: str = "", method: str | None = None) -> int:  # type: ignore[override]
        return len(self.matching(path_contains, method))

    def matching(self, path_contains: str = "", method: str | None = None) -> list[R]:
        return [r for r in list(self) if path_contains in r.path and (method is None or r.method == method)]


class LoopbackTLSServer(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS (``ctx``, set before serving starts) on ``host:port``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.ctx: ssl.SSLContext | None = None
        self._thread: threading.Thread | None = None
        self.open_sockets: set[socket.socket] = set()
        self._sock_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the connection's own thread, so a slow client never blocks accept()
        assert self.ctx is not None
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._sock_lock:
            self.open_sockets.add(tls)
        try:
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        finally:
            with self._sock_lock:
                self.open_sockets.discard(tls)
            try:
                tls.close()
            except OSError:
                pass

    def drop_connections(self) -> None:
        """Cut every open connection (a server going away mid-response)."""
        with self._sock_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve_in_thread(self, name: str) -> None:
        """Serve from a daemon thread named ``name`` (``ctx`` must be set); :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=name,
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections, close the socket and wait for the serving thread."""
        if self._thread is not None:
            self.shutdown()
        self.drop_connections()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
