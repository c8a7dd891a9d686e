"""Talking to one org through simple-salesforce: login, the API budget, retries and error meanings.

* Every request to ``/services/data/`` (REST and Bulk 2.0) is counted, and the org's daily usage is
  read from each response's ``Sforce-Limit-Info`` header; :meth:`SfClient.call` refuses to start a call
  once usage reached ``max_api_share`` of the limit.
* simple-salesforce sends every request (login, REST, Bulk 2.0) through the kit's retrying session
  (:mod:`connectors.kit.http`, handed over as ``session=``): 5xx answers, 429 and network errors are
  retried there with jittered exponential backoff (``Retry-After`` honoured), each try counted; 4xx
  answers are not. ``INVALID_SESSION_ID`` triggers one new login (password or JWT) and one more try;
  ``REQUEST_LIMIT_EXCEEDED`` is never retried.
* simple-salesforce itself would log in again up to three times: it is handed a session id instead, so
  that re-authentication happens here, once, and is counted.
* simple-salesforce names no timeout: the session gives each request ``timeout_seconds``, so a stalled
  server ends in a (retried) timeout, not a hang.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.kit.http import NETWORK_ERRORS, ApiSession, RetryAfterTooLong, RetryPolicy, ca_bundle
from connectors.salesforce.options import SalesforceOptions
from connectors.secrets import Secrets, env_value, secret_value
from okrsync.errors import ConfigError, SourceError

T = TypeVar("T")
_SLOTS: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def call_slots(org: str, limit: int) -> threading.BoundedSemaphore:
    """The process-wide cap on concurrent calls to one org (by login host and user)."""
    with _SLOTS_LOCK:
        return _SLOTS.setdefault((org, limit), threading.BoundedSemaphore(limit))
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
REAUTH = "re-authenticate the integration user (check its password, token or connected app) and run again"


class _LoginRoute(HTTPAdapter):
    """Sends requests for ``https://{domain}.salesforce.com`` to ``login_url`` instead."""

    def __init__(self, login_url: str) -> None:
        super().__init__()
        self.login_url = login_url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = self.login_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return super().send(request, *args, **kwargs)


def _soap_fault(resp: requests.Response) -> bool:
    """A SOAP login fault (``INVALID_LOGIN``…) comes as HTTP 500: the org's answer, not an outage."""
    return "/services/Soap/" in resp.url and b"<faultcode>" in resp.content


class ApiError(Exception):
    """A Salesforce error answer: ``code`` (errorCode) and ``message``, as the API gave them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def _login_reason(exc: SalesforceAuthenticationFailed) -> str:
    """The org's own words for a refused login. simple-salesforce keeps them in ``auth_message`` (and
    ``content``); its ``message`` is an unformatted class template (``Response content: {content}``)."""
    reason = getattr(exc, "auth_message", None)
    if not reason:
        content = exc.content
        reason = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content or "")
    return str(reason).strip()[:300] or "no reason given"


def api_error(exc: SalesforceError) -> ApiError:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return ApiError(exc.status, str(first.get("errorCode", "")), str(first.get("message", "")))
    return ApiError(exc.status, "", str(content)[:200])


class LocatorExpired(Exception):
    """``INVALID_QUERY_LOCATOR``: the server forgot the query cursor (the caller restarts the query)."""


class SfClient:
    """A logged-in ``Salesforce`` for one source, with call accounting. Logs in on first use."""

    def __init__(self, source: str, options: SalesforceOptions, base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.source, self.options, self.base_dir = source, options, base_dir
        self.sleep = sleep
        self.policy = RetryPolicy(options.retries, options.retry_backoff_seconds,
                                  timeout_seconds=options.timeout_seconds, sleep=sleep)
        self.calls = 0  # requests to /services/data/ (what the org counts against its daily limit)
        self.logins = 0
        self.usage: tuple[int, int] | None = None  # (used, max) from the last Sforce-Limit-Info
        self._sf: Salesforce | None = None
        self._http: ApiSession | None = None
        self.secrets = Secrets()
        org = f"{options.login_url or options.instance_url or options.domain}|{options.username}"
        self.slots = call_slots(org, options.max_parallel_calls)

    # -- session ------------------------------------------------------------------------------------

    @property
    def http(self) -> ApiSession:
        if self._http is None:
            trusted = ca_bundle(self.source, self.base_dir, self.options.ca_bundle)
            s = ApiSession(self.policy, label=f"source {self.source!r}", secrets=self.secrets,
                           final=_soap_fault, verify=trusted)
            if self.options.login_url:
                for domain in {self.options.domain, "login", "test"}:
                    s.mount(f"https://{domain}.salesforce.com/", _LoginRoute(self.options.login_url))
            s.hooks["response"].append(self._observe)
            self._http = s
        return self._http

    def _observe(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" in urlsplit(resp.url).path:
            self.calls += 1
        if m := _USAGE.search(resp.headers.get("Sforce-Limit-Info", "")):
            self.usage = (int(m.group(1)), int(m.group(2)))

    @property
    def sf(self) -> Salesforce:
        if self._sf is None:
            self._login()
        assert self._sf is not None
        return self._sf

    @property
    def instance_url(self) -> str:
        return f"https://{self.sf.sf_instance}"

    def _login(self) -> None:
        o = self.options
        if o.auth == "session":
            if self.logins:
                raise SourceError(f"source {self.source!r}: the Salesforce session expired",
                                  hint="session auth cannot log in again: put a fresh session id in "
                                  f"{o.session_id_env or o.session_id_secret}, or use auth password/jwt")
            sid = self._secret(o.session_id_env, o.session_id_secret, "the session id (access token)")
            instance = str(o.instance_url).removeprefix("https://")
        else:
            try:
                sid, instance = SalesforceLogin(session=self.http, sf_version=o.api_version,
                                                domain=o.domain, **self._login_args())
            except SalesforceAuthenticationFailed as exc:
                raise SourceError(f"source {self.source!r}: Salesforce refused the login "
                                  f"({self._scrub(str(exc.code))}: {self._scrub(_login_reason(exc))})",
                                  hint=REAUTH) from None
            except requests.exceptions.SSLError:
                raise self._untrusted("logging in") from None
            except (*NETWORK_ERRORS, RetryAfterTooLong) as exc:
                raise SourceError(f"source {self.source!r}: cannot reach the Salesforce login at "
                                  f"{o.login_url or f'https://{o.domain}.salesforce.com'} "
                                  f"({type(exc).__name__})", transient=True,
                                  hint="check the network (or that the sandbox is running); "
                                  "okrsync retries transient failures") from None
        self.logins += 1
        self.secrets.keep(sid)
        self._sf = Salesforce(session_id=sid, instance=instance, session=self.http, version=o.api_version)

    def _login_args(self) -> dict[str, Any]:
        o = self.options
        if o.auth == "password":
            token = (self._secret(o.security_token_env, o.security_token_secret, "the security token")
                     if (o.security_token_env or o.security_token_secret) else None)
            args: dict[str, Any] = {
                "username": o.username,
                "password": self._secret(o.password_env, o.password_secret, "the password"),
            }
            return args | ({"security_token": token} if token else {"organizationId": ""})
        if o.private_key_file:
            path = (self.base_dir / o.private_key_file).resolve()
            if not path.is_file():
                raise ConfigError(f"source {self.source!r}: private_key_file {path} does not exist",
                                  hint="give the connected app's private key (PEM), relative to the "
                                  "project file")
            key = path.read_text()
        else:
            key = self._secret(o.private_key_env, o.private_key_secret, "the private key (PEM)")
        return {"username": o.username, "consumer_key": o.consumer_key, "privatekey": key}

    def _secret(self, env: str | None, block: str | None, what: str) -> str:
        value = env_value(self.source, env, what) if env else secret_value(self.source, str(block), what)
        return self.secrets.keep(value)

    def _scrub(self, text: str) -> str:
        return self.secrets.scrub(text)

    def _untrusted(self, what: str) -> SourceError:
        o = self.options
        host = o.login_url or o.instance_url or f"https://{o.domain}.salesforce.com"
        return SourceError(f"source {self.source!r}: {what}: the TLS certificate of {host} could not be "
                           "verified", hint="give the certificate authority's PEM file as `ca_bundle` (a "
                           "private endpoint or the sandbox); verification is never turned off")

    # -- calls ----------------------------------------------------------------------------------------

    def check_budget(self) -> None:
        """Refuse to go on once the org's daily API usage reached ``max_api_share`` of its limit."""
        if self.usage is None:
            return
        used, limit = self.usage
        if limit and used >= self.options.max_api_share * limit:
            raise SourceError(
                f"source {self.source!r}: stopped to spare the org's daily API budget "
                f"({used:,}/{limit:,} calls used, max_api_share {self.options.max_api_share:g})",
                hint="the key results keep their last values; raise max_api_share or wait for the "
                "24-hour window to free calls")

    def call(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        """``fn(sf)`` with the budget check, one re-login and errors turned into ours (the session has
        retried what was worth retrying)."""
        try:
            return self._once(what, fn)
        except SalesforceExpiredSession:
            if self.options.auth == "session":
                raise SourceError(f"source {self.source!r}: {what}: the Salesforce session expired "
                                  "(INVALID_SESSION_ID)",
                                  hint="session auth cannot log in again: put a fresh session id in "
                                  f"{self.options.session_id_env or self.options.session_id_secret}, "
                                  "or use auth password or jwt") from None
        self._sf = None
        self._login()
        try:
            return self._once(what, fn)
        except SalesforceExpiredSession:
            raise SourceError(f"source {self.source!r}: {what}: the Salesforce session was refused again "
                              "after logging in anew (INVALID_SESSION_ID)", hint=REAUTH) from None

    def _once(self, what: str, fn: Callable[[Salesforce], T]) -> T:
        self.check_budget()
        try:
            with self.slots:
                return fn(self.sf)
        except SalesforceExpiredSession:
            raise
        except SalesforceRefusedRequest as exc:
            err = api_error(exc)
            if err.code == "REQUEST_LIMIT_EXCEEDED":
                raise SourceError(f"source {self.source!r}: {what}: the org's API limit is exhausted "
                                  f"({self._scrub(err.message)})",
                                  hint="the key results keep their last values; the next run after "
                                  "the 24-hour window frees calls will catch up") from None
            raise SourceError(f"source {self.source!r}: {what}: Salesforce refused the request "
                              f"({err.code}: {self._scrub(err.message)})",
                              hint="give the integration user access to this object and its fields "
                              "(profile or permission set)") from None
        except requests.exceptions.SSLError:
            raise self._untrusted(what) from None
        except RetryAfterTooLong as exc:
            raise SourceError(f"source {self.source!r}: {what}: Salesforce asked to wait "
                              f"{exc.seconds:.0f} s, longer than a run waits ({exc.limit:g} s)",
                              transient=True, hint="the key results keep their last values; the next run "
                              "tries again") from None
        except (SalesforceGeneralError, *NETWORK_ERRORS) as exc:
            if isinstance(exc, SalesforceError) and exc.status < 500 and exc.status != 429:
                raise self.error(what, exc) from None
            why = f"HTTP {exc.status}" if isinstance(exc, SalesforceError) else type(exc).__name__
            raise SourceError(f"source {self.source!r}: {what}: Salesforce did not answer after "
                              f"{self.policy.tries} tries ({why})", transient=True,
                              hint="Salesforce or the network is having trouble; the next run (or "
                              "okrsync's task retry) picks up from the last committed position") from None
        except SalesforceError as exc:
            if api_error(exc).code == "INVALID_QUERY_LOCATOR":
                raise LocatorExpired() from None
            raise self.error(what, exc) from None

    def error(self, what: str, exc: SalesforceError) -> SourceError:
        err = api_error(exc)
        where = f"source {self.source!r}: {what}"
        if isinstance(exc, SalesforceResourceNotFound):
            return SourceError(f"{where}: not found ({err.code}: {self._scrub(err.message)})",
                               hint="check the object name and api_version")
        if isinstance(exc, SalesforceMalformedRequest):
            return SourceError(f"{where}: Salesforce rejected the query ({err.code}: "
                               f"{self._scrub(err.message)})",
                               hint="run `okrsync validate --check-sources` to compare the stream's "
                               "fields with the object's describe")
        return SourceError(f"{where}: Salesforce answered {exc.status} ({err.code}: "
                           f"{self._scrub(err.message)})", hint="see the Salesforce error code")

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = self._sf = None
