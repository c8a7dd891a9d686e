"""Talking to BambooHR's REST API: API-key auth, JSON, and what its errors mean.

* Auth is HTTP Basic with the API key as the user name and ``x`` as the password; the key comes from an
  environment variable or a Prefect Secret block on the first call and is never logged or put in an error.
* Throttling (429, or 503 in BambooHR's older answers, with ``Retry-After``), other 5xx answers and network
  errors are retried by the kit's session (:mod:`connectors.kit.http`): ``Retry-After`` (seconds or an
  HTTP date) is honoured, exponential backoff otherwise. When the tries run out the error is transient (the
  run is retried); a ``Retry-After`` longer than ``max_retry_after_seconds`` fails at once, transient too.
* 401 and 403 are not retried: the message names the variable or block holding the key, never the key.
* Response bodies are personal data: they are parsed, never logged, never part of a message. Logs name
  the method, the endpoint, the status and the time taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.hr.options import BambooHrOptions
from connectors.kit.http import (
    NETWORK_ERRORS,
    ApiSession,
    RetryAfterTooLong,
    RetryPolicy,
    Verdict,
    ca_bundle,
    retry_after_seconds,
    verdict,
)
from connectors.secrets import Secrets, env_value, secret_value
from okrsync.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

THROTTLED = (429, 503)
USER_AGENT = "okrsync-hr/1"


class BambooHrClient:
    """One BambooHR account. Opens its session on the first call; counts the calls it makes."""

    def __init__(self, source: str, options: BambooHrOptions, base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], datetime] | None = None) -> None:
        self.source, self.options, self.base_dir = source, options, base_dir
        self.policy = RetryPolicy(options.retries, options.retry_backoff_seconds,
                                  options.max_retry_after_seconds, options.timeout_seconds, sleep,
                                  now or (lambda: datetime.now(UTC)))
        self.base = options.base_url or (
            f"https://api.bamboohr.com/api/gateway.php/{options.company_domain}/v1/")
        self.calls = 0
        self.secrets = Secrets()
        self._http: ApiSession | None = None

    @property
    def key_location(self) -> str:
        o = self.options
        return (f"environment variable {o.api_key_env}" if o.api_key_env
                else f"Prefect Secret block {o.api_key_secret!r}")

    @property
    def http(self) -> ApiSession:
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
            s = ApiSession(self.policy, label=f"source {self.source!r}", secrets=self.secrets,
                           verify=ca_bundle(self.source, self.base_dir, o.ca_bundle))
            s.auth = (self.secrets.keep(key), "x")
            s.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
            s.max_redirects = 3
            s.hooks["response"].append(self._count)
            self._http = s
        return self._http

    def _count(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        log.debug("BambooHR %s %s -> %s in %.2f s", resp.request.method, urlsplit(resp.url).path,
                  resp.status_code, resp.elapsed.total_seconds())

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None
        self.secrets = Secrets()

    # -- calls -------------------------------------------------------------------------------------

    def get(self, path: str, what: str, params: dict[str, str] | None = None) -> Any:
        return self.call("GET", path, what, params=params)

    def post(self, path: str, what: str, body: dict[str, Any], params: dict[str, str] | None = None) -> Any:
        return self.call("POST", path, what, params=params, body=body)

    def call(self, method: str, path: str, what: str, params: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> Any:
        """The parsed JSON answer to one request (the session waits out throttling and retries)."""
        o = self.options
        try:
            resp = self.http.request(method, self.base + path, params=params, json=body,
                                     allow_redirects=False)
        except requests.exceptions.SSLError:
            raise SourceError(f"source {self.source!r}: {what}: the TLS certificate of {self._where()} "
                              "could not be verified",
                              hint="give the certificate authority's PEM file as `ca_bundle` (a private "
                              "gateway or the sandbox); verification is never turned off") from None
        except RetryAfterTooLong as exc:
            status = exc.response.status_code if exc.response is not None else 0
            raise SourceError(f"source {self.source!r}: {what}: BambooHR is {_state(status)} (HTTP {status}) "
                              f"and asked to wait {exc.seconds:.0f} s, more than max_retry_after_seconds "
                              f"({o.max_retry_after_seconds:g})", transient=True,
                              hint="the key results keep their last values; the next run tries again"
                              ) from None
        except NETWORK_ERRORS as exc:
            raise SourceError(f"source {self.source!r}: {what}: cannot reach BambooHR at {self._where()} "
                              f"after {self.policy.tries} tries ({type(exc).__name__})", transient=True,
                              hint="check the network (or that the sandbox is running); okrsync "
                              "retries transient failures") from None
        status = resp.status_code
        if status == 200:
            return self._json(resp, what)
        if verdict(resp) is Verdict.FATAL or status < 400:
            raise self._refused(status, resp.headers, what, path)
        asked = retry_after_seconds(resp.headers.get("Retry-After"), self.policy.now())
        after = "" if asked is None else ", with Retry-After"
        raise SourceError(f"source {self.source!r}: {what}: BambooHR is {_state(status)} (HTTP {status}"
                          f"{after}) after {self.policy.tries} tries", transient=True,
                          hint="BambooHR is throttling or unavailable; the key results keep their "
                          "last values and okrsync's task retry or the next run tries again")

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
        text = self.secrets.scrub("".join(ch for ch in text if ch.isprintable()))[:160]
        return f" ({text})" if text else ""


def _state(status: int) -> str:
    return "throttled" if status in THROTTLED else "failing"
