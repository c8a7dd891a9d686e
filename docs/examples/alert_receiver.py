"""A webhook receiver for okrsync alerts that checks each request's signature (docs/alerts.md).

    OKRSYNC_ALERT_SECRET=… python docs/examples/alert_receiver.py 8765

It listens on 127.0.0.1, answers 401 to a request whose signature does not match or that was signed
more than five minutes ago (a replay), and prints each alert's text and kind otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

MAX_AGE_SECONDS = 300


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float | None = None) -> bool:
    """Whether ``signature`` (the X-Okrsync-Signature header) signs ``body`` at ``timestamp``
    (the X-Okrsync-Timestamp header) with ``secret``, recently enough."""
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), signature)


class Receiver(BaseHTTPRequestHandler):
    secret = os.environ.get("OKRSYNC_ALERT_SECRET", "")

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = verify(self.secret, self.headers.get("X-Okrsync-Timestamp", ""),
                    self.headers.get("X-Okrsync-Signature", ""), body)
        self.send_response(204 if ok else 401)
        self.end_headers()
        if ok:
            alert = json.loads(body)
            print(f"[{alert['kind']}] {alert['text']}", flush=True)
        else:
            print("refused a request with a bad or stale signature", flush=True)


if __name__ == "__main__":
    if not Receiver.secret:
        sys.exit("set OKRSYNC_ALERT_SECRET to the key the project's webhook channel signs with")
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
