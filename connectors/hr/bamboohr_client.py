"""Talking to BambooHR's REST API: API-key auth, JSON, throttling, retries and what errors mean.

* Auth is HTTP Basic with the API key as the user name and ``x`` as the password; the key comes from an
  environment variable or a Prefect Secret block on the first call and is never logged or put in an error.
* 429 and 503 are throttling (BambooHR moves from 503 to 429 + ``Retry-After``): ``Retry-After`` (seconds or
  an HTTP date) is honoured; without it the client backs off exponentially. Other 5xx answers and network
  errors are retried the same way. When the tries run out the error is transient (the run is retried);
  a ``Retry-After`` longer than ``max_retry_after_seconds`` fails at once, transient too.
* 401 and 403 are not retried: the message names the variable or block holding the key, never the key.
* Response bodies are personal data: they are parsed, never logged, never part of a message. Logs name
  the method, the endpoint, the status and the time taken.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.hr.options import BambooHrOptions
from connectors.secrets import env_value, secret_value
from okrsync.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
THROTTLED = (429, 503)
USER_AGENT = "okrsync-hr/1"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds from ``now`` (delay-seconds or an HTTP date); None if absent or bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class BambooHrClient:
    """One BambooHR account. Opens its session on the first call; counts the calls it makes."""

    def __init__(self, source: str, options: BambooHrOptions, base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] | None = None) -> None:
        self.source, self.options, self.base_dir = source, options, base_dir
        self.sleep = sleep
        self.now = now or (lambda: datetime.now(UTC))
        self.base = options.base_url or (
            f"https://api.bamboohr.com/api/gateway.php/{options.company_domain}/v1/")
        self.calls = 0
        self._http: requests.Session | None = None
        self._key: str | None = None

    @property
    def key_location(self) -> str:
        o = self.options
        return (f"environment variable {o.api_key_env}" if o.api_key_env
                else f"Prefect Secret block {o.api_key_secret!r}")

    @property
    def http(self) -> requests.Session:
        if self._http is None:
            o = self.options
            if o.api_key_env:
                key = env_value(self.source, o.api_key_env, "the BambooHR API key")
            else:
                key = secret_value(self.source, str(o.api_key_secret), "the BambooHR API key")
            if not key.isascii() or not key.isprintable() or ":" in key:
                raise ConfigError(f"source {self.source!r}: the BambooHR API key in {self.key_location} is "
                                  "not an API key (printable ASCII without ':')",
                                  hint="copy the key again from BambooHR (your name → API Keys)")
            s = requests.Session()
            s.trust_env = False  # REQUESTS_CA_BUNDLE, .netrc and proxies from the environment do not apply
            if o.ca_bundle:
                bundle = (self.base_dir / o.ca_bundle).resolve()
                if not bundle.is_file():
                    raise ConfigError(f"source {self.source!r}: ca_bundle {bundle} does not exist",
                                      hint="give a PEM file path relative to the project file")
                s.verify = str(bundle)
            s.auth = (key, "x")
            s.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
            s.max_redirects = 3
            self._key = key
            self._http = s
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None
        self._key = None

    # -- calls -------------------------------------------------------------------------------------

    def get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        return self.call("GET", path, what, params=params)

    def post(self, path: str, what: str, body: dict[str, Any], params: dict[str, str] | None = None) -> Any:
        return self.call("POST", path, what, params=params, body=body)

    def call(self, method: str, path: str, what: str, params: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> Any:
        """The parsed JSON answer to one request, after throttling waits and retries."""
        o = self.options
        url = self.base + path
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                resp = self.http.request(method, url, params=params, json=body, timeout=o.timeout_seconds,
                                         allow_redirects=False)
            except requests.exceptions.SSLError:
                raise SourceError(f"source {self.source!r}: {what}: the TLS certificate of {self._where()} "
                                  "could not be verified",
                                  hint="give the certificate authority's PEM file as `ca_bundle` (a private "
                                  "gateway or the sandbox); verification is never turned off") from None
            except NETWORK_ERRORS as exc:
                why = type(exc).__name__
                if attempt >= o.retries:
                    raise SourceError(f"source {self.source!r}: {what}: cannot reach BambooHR at "
                                      f"{self._where()} after {attempt + 1} tries ({why})", transient=True,
                                      hint="check the network (or that the sandbox is running); okrsync "
                                      "retries transient failures") from None
                self._wait(attempt, None, f"{why} on {method} {path}")
                attempt += 1
                continue
            self.calls += 1
            status = resp.status_code
            log.debug("BambooHR %s %s -> %s in %.2f s", method, path, status, time.monotonic() - started)
            if status == 200:
                return self._json(resp, what)
            retryable = status in THROTTLED or status >= 500
            if not retryable:
                raise self._refused(status, resp.headers, what, path)
            wait = retry_after_seconds(resp.headers.get("Retry-After"), self.now())
            resp.close()
            label = "throttled" if status in THROTTLED else "failing"
            if wait is not None and wait > o.max_retry_after_seconds:
                raise SourceError(f"source {self.source!r}: {what}: BambooHR is {label} (HTTP {status}) and "
                                  f"asked to wait {wait:.0f} s, more than max_retry_after_seconds "
                                  f"({o.max_retry_after_seconds:g})", transient=True,
                                  hint="the key results keep their last values; the next run tries again")
            if attempt >= o.retries:
                after = "" if wait is None else ", with Retry-After"
                raise SourceError(f"source {self.source!r}: {what}: BambooHR is {label} (HTTP {status}"
                                  f"{after}) after {attempt + 1} tries", transient=True,
                                  hint="BambooHR is throttling or unavailable; the key results keep their "
                                  "last values and okrsync's task retry or the next run tries again")
            self._wait(attempt, wait, f"HTTP {status} on {method} {path}")
            attempt += 1

    def _wait(self, attempt: int, retry_after: float | None, why: str) -> None:
        if retry_after is not None:
            seconds, how = retry_after, "as Retry-After asks"
        else:
            base = self.options.retry_backoff_seconds * (2 ** attempt)
            seconds, how = base * (1 + random.random() / 2), "backing off"  # noqa: S311 - jitter
        log.info("source %r: BambooHR answered %s; waiting %.1f s (%s) before try %d of %d", self.source,
                 why, seconds, how, attempt + 2, self.options.retries + 1)
        self.sleep(seconds)

    def _json(self, resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:  # never show the body: it may hold personal data
            kind = resp.headers.get("Content-Type", "no Content-Type").split(";")[0][:60]
            raise SourceError(f"source {self.source!r}: {what}: BambooHR answered with something that is "
                              f"not JSON ({kind})", transient=True,
                              hint="a proxy or an outage page may stand in the way; check base_url") from None

    def _where(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    def _refused(self, status: int, headers: Any, what: str, path: str) -> SourceError:
        where = f"source {self.source!r}: {what}"
        if status == 401:
            return SourceError(f"{where}: BambooHR refused the API key (HTTP 401)",
                               hint=f"put a valid BambooHR API key in {self.key_location} (BambooHR: your "
                               "name → API Keys) and run again")
        if status == 403:
            return SourceError(f"{where}: BambooHR refused access (HTTP 403)",
                               hint=f"the user owning the API key in {self.key_location} lacks permission "
                               "(or the account's API access is off); give that user access to the "
                               "employees and fields this stream reads")
        if status == 404:
            return SourceError(f"{where}: BambooHR answered 404 for {path}",
                               hint=f"check company_domain ({self.options.company_domain!r})"
                               + (" and base_url" if self.options.base_url else ""))
        message = self._server_message(headers)
        return SourceError(f"{where}: BambooHR answered HTTP {status}{message}",
                           hint="see BambooHR's API documentation for this status")

    def _server_message(self, headers: Any) -> str:
        """BambooHR's ``X-BambooHR-Error-Message`` header (an API message, not data), cleaned and short."""
        text = str(headers.get("X-BambooHR-Error-Message") or "")
        text = "".join(ch for ch in text if ch.isprintable())[:160]
        if self._key:
            text = text.replace(self._key, "***")
        return f" ({text})" if text else ""
