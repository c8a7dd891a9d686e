"""One retrying HTTP session for API sources: ``requests`` with tenacity's retries (as dlt's requests
helper does), jittered exponential backoff, ``Retry-After`` honoured, and secrets out of what it logs.

What a response means follows the Singer SDK's taxonomy (``RESTStream.validate_response``): 429 and every
5xx, connection errors, timeouts and bodies cut off mid-download (``ChunkedEncodingError``) are
*retriable*; every other 4xx, and a TLS certificate that cannot be verified, are *fatal* and never sent
again. :func:`verdict` says which; :class:`ApiSession` acts on it:

* a retriable answer is sent again up to ``RetryPolicy.retries`` times, waiting what ``Retry-After`` asks
  (seconds or an HTTP date) or else ``backoff_seconds × 2^attempt`` plus up to 50 % jitter;
* a ``Retry-After`` longer than ``max_retry_after_seconds`` is not waited out: :class:`RetryAfterTooLong`
  (the run is retried later instead of holding a worker);
* when the tries run out the last answer is returned (or its error raised), so a client library on top
  (simple-salesforce) still sees the server's own error; :class:`RetriableApiError` and
  :class:`FatalApiError` are what a connector raises from there — :meth:`ApiSession.fetch` does it for a
  JSON API, with messages that name the request and the status, never the body.

Every request gets ``timeout_seconds`` unless it names its own; proxies and CA bundles from the
environment do not apply (``trust_env`` off). Bodies are never logged: they may hold personal data.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import AttemptManager, RetryCallState, Retrying, retry_if_exception, retry_if_result
from tenacity import stop_after_attempt as _stop_after

from connectors.secrets import Secrets
from okrsync.errors import ConfigError, SourceError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, *range(500, 600)})
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class Verdict(StrEnum):
    """What the runtime does with an answer (the Singer SDK's fatal / retriable split)."""

    OK = "ok"
    RETRY = "retry"
    FATAL = "fatal"


def verdict(response: requests.Response | None = None, error: BaseException | None = None) -> Verdict:
    """The verdict on one answer (``response``) or one failure to get it (``error``)."""
    if error is not None:
        if isinstance(error, requests.exceptions.SSLError):  # a certificate does not get better by asking
            return Verdict.FATAL
        return Verdict.RETRY if isinstance(error, NETWORK_ERRORS) else Verdict.FATAL
    assert response is not None
    if response.status_code < 400:
        return Verdict.OK
    return Verdict.RETRY if response.status_code in RETRY_STATUSES else Verdict.FATAL


class RetriableApiError(SourceError):
    """The API failed in a way worth trying again later (the tries ran out): a transient SourceError."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, transient=True)


class FatalApiError(SourceError):
    """The API refused the request; sending it again cannot help until something is fixed."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, transient=False)


class RetryAfterTooLong(requests.RequestException):
    """The server asked to wait longer than the policy allows (``seconds`` > ``limit``)."""

    def __init__(self, response: requests.Response, seconds: float, limit: float) -> None:
        super().__init__(f"asked to wait {seconds:.0f} s, more than {limit:g} s", response=response)
        self.seconds, self.limit = seconds, limit


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try one request. ``sleep`` and ``now`` are injectable (tests)."""

    retries: int = 4  # tries after the first
    backoff_seconds: float = 1.0
    max_retry_after_seconds: float = 300
    timeout_seconds: float = 120
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    now: Callable[[], datetime] = field(default=_utc_now, compare=False)

    @property
    def tries(self) -> int:
        return self.retries + 1

    def backoff(self, attempt: int) -> float:
        """The wait before try ``attempt + 2`` when the server names none: exponential, up to 50 % more."""
        return self.backoff_seconds * (2 ** attempt) * (1 + random.random() / 2)  # noqa: S311 - jitter

    def attempts(self, retry_on: type[BaseException] | tuple[type[BaseException], ...]
                 ) -> Iterator[AttemptManager]:
        """Tries of a block that raises ``retry_on`` when its result is not yet right (a page shorter
        than announced), with this policy's waits; the last error is raised when they run out::

            for attempt in policy.attempts(ShortPage):
                with attempt:
                    ...
        """
        return iter(Retrying(stop=_stop_after(self.tries), sleep=self.sleep, reraise=True,
                             retry=retry_if_exception(lambda e: isinstance(e, retry_on)),
                             wait=lambda state: self.backoff(state.attempt_number - 1)))


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


def ca_bundle(source: str, base_dir: Path, path: str | None) -> str | bool:
    """``session.verify`` for an optional ``ca_bundle`` option (a PEM file relative to the project
    file): its absolute path, or True (the system's trust store)."""
    if path is None:
        return True
    bundle = (base_dir / path).resolve()
    if not bundle.is_file():
        raise ConfigError(f"source {source!r}: ca_bundle {bundle} does not exist",
                          hint="give a PEM file path relative to the project file")
    return str(bundle)


class ApiSession(requests.Session):
    """A ``requests.Session`` whose every request is retried by ``policy`` (see the module notes).

    ``label`` names the source in log lines; ``secrets`` are scrubbed from them. ``final`` marks answers
    that are the server's last word although their status is retriable (a SOAP fault comes as HTTP 500)."""

    def __init__(self, policy: RetryPolicy, *, label: str = "", secrets: Secrets | None = None,
                 verify: str | bool = True, final: Callable[[requests.Response], bool] | None = None) -> None:
        super().__init__()
        self.policy, self.label, self.secrets, self.final = policy, label, secrets or Secrets(), final
        self.trust_env = False  # REQUESTS_CA_BUNDLE, .netrc and proxies from the environment do not apply
        self.verify = verify

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.policy.timeout_seconds
        where = f"{method!s} {urlsplit(str(url)).path}"
        retrying = Retrying(
            stop=_stop_after(self.policy.tries),
            wait=self._wait,
            retry=retry_if_exception(lambda e: verdict(error=e) is Verdict.RETRY)
            | retry_if_result(self._again),
            sleep=self.policy.sleep,
            before_sleep=lambda state: self._log(state, where),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            reraise=True,
        )
        response: requests.Response = retrying(super().request, method, url, *args, **kwargs)
        return response

    def fetch(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        """The parsed JSON answer to one request (``what`` names it in errors: ``GET tickets``), or a
        :class:`RetriableApiError` / :class:`FatalApiError` saying what went wrong."""
        what = f"{self.label}: {what}" if self.label else what
        later = "the key results keep their last values; the next run (or the task's retry) tries again"
        try:
            resp = self.request(method, url, **kwargs)
        except RetryAfterTooLong as exc:
            raise RetriableApiError(f"{what}: the server asked to wait {exc.seconds:.0f} s, more than "
                                    f"{exc.limit:g} s", hint=later) from None
        except requests.exceptions.SSLError:
            raise FatalApiError(f"{what}: the server's TLS certificate could not be verified",
                                hint="give the certificate authority's PEM file as the source's CA bundle; "
                                "verification is never turned off") from None
        except requests.RequestException as exc:
            if verdict(error=exc) is Verdict.RETRY:
                raise RetriableApiError(f"{what}: no answer after {self.policy.tries} tries "
                                        f"({type(exc).__name__})", hint=later) from None
            raise FatalApiError(f"{what}: the request failed ({type(exc).__name__})",
                                hint="check the source's URL") from None
        if verdict(resp) is Verdict.RETRY:
            raise RetriableApiError(f"{what}: HTTP {resp.status_code} after {self.policy.tries} tries",
                                    hint=later)
        if verdict(resp) is Verdict.FATAL:
            raise FatalApiError(f"{what}: HTTP {resp.status_code}",
                                hint="check the source's credentials, permissions and URL")
        try:
            return resp.json()
        except ValueError:  # never show the body: it may hold personal data
            kind = resp.headers.get("Content-Type", "no Content-Type").split(";")[0][:60]
            raise RetriableApiError(f"{what}: the answer is not JSON ({kind})", hint="a proxy or an outage "
                                    "page may stand in the way; check the URL") from None

    def _again(self, response: requests.Response) -> bool:
        if verdict(response) is not Verdict.RETRY or (self.final is not None and self.final(response)):
            return False
        wait = self._retry_after(response)
        if wait is not None and wait > self.policy.max_retry_after_seconds:
            raise RetryAfterTooLong(response, wait, self.policy.max_retry_after_seconds)
        return True

    def _retry_after(self, response: requests.Response) -> float | None:
        return retry_after_seconds(response.headers.get("Retry-After"), self.policy.now())

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = self._retry_after(outcome.result())
            if asked is not None:
                return asked
        return self.policy.backoff(state.attempt_number - 1)

    def _log(self, state: RetryCallState, where: str) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        asked = None if outcome.failed else self._retry_after(outcome.result())
        why = type(outcome.exception()).__name__ if outcome.failed else f"HTTP {outcome.result().status_code}"
        how = "as Retry-After asks" if asked is not None else "backing off"
        seconds = state.next_action.sleep if state.next_action else 0.0
        line = (f"{self.label + ': ' if self.label else ''}{why} on {where}; waiting {seconds:.1f} s ({how}) "
                f"before try {state.attempt_number + 1} of {self.policy.tries}")
        log.info("%s", self.secrets.scrub(line))
