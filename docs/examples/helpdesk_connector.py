"""An example API connector in one file: a helpdesk's tickets as a stream (``kind: helpdesk``).

Register it from your own package's pyproject.toml — no okrsync file changes:

    [project.entry-points."okrsync.connectors"]
    helpdesk = "helpdesk_connector:HelpdeskConnector"

tests/connectors/test_example_helpdesk.py runs the connector contract (connectors.testing) on it, against
a loopback helpdesk API.
"""

from __future__ import annotations

import difflib
import email.utils
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from connectors.base import StreamSpec, Watermark
from connectors.secrets import env_value
from okrsync.errors import ConfigError, SourceError
from okrsync.schema import Field, FieldType, StreamSchema

FIELDS = (Field("id", FieldType.INTEGER), Field("status", FieldType.STRING),
          Field("hours", FieldType.DECIMAL, 2), Field("escalated", FieldType.BOOLEAN),
          Field("updated_at", FieldType.DATETIME))
NAMES = [f.name for f in FIELDS]
RETRIABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class HelpdeskOptions(BaseModel):
    """The source block: ``{kind: helpdesk, base_url: https://…/api/, token_env: HELPDESK_TOKEN}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base_url: str
    token_env: str  # the environment variable holding the API token
    retries: int = 4


class HelpdeskStreamOptions(BaseModel):
    """A stream takes no key of its own: ``primary_key: id``, ``cursor: updated_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class HelpdeskConnector:
    kind: ClassVar[str] = "helpdesk"
    Options: ClassVar[type[BaseModel]] = HelpdeskOptions
    StreamOptions: ClassVar[type[BaseModel]] = HelpdeskStreamOptions

    def __init__(self, name: str, options: Any, base_dir: Path,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            self.options = HelpdeskOptions.model_validate(options)
        except ValidationError as exc:
            why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                            for e in exc.errors(include_input=False))
            raise ConfigError(f"source {name!r}: {why}", hint="see the helpdesk source keys") from None
        self.name, self.sleep, self.http, self.token = name, sleep, requests.Session(), ""
        self.http.trust_env = False

    def check(self) -> None:
        self._get("tickets", {"page": 1})

    def schema(self, stream: StreamSpec) -> StreamSchema:
        for name in (*(stream.fields or ()), *stream.primary_key, *stream.cursor):
            if name not in NAMES:
                close = difflib.get_close_matches(name, NAMES, n=1)
                raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: no field {name!r}"
                                  + (f" (did you mean {close[0]!r}?)" if close else ""),
                                  hint=f"fields: {NAMES}")
        return StreamSchema(FIELDS)

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        params, exact = {}, since is not None and not stream.lookback_seconds
        if since is not None and stream.cursor:  # the API compares whole seconds
            start = _utc(since.cursor) - timedelta(seconds=stream.lookback_seconds or 0)
            params["updated_since"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        df = self._frame(self._all("tickets", "tickets", params)).sort_values(["updated_at", "id"])
        if since is not None and stream.cursor:  # strictly after (cursor, key): ties not lost nor repeated
            c, k = pd.Timestamp(_utc(since.cursor)), int(since.key[0])
            after = (df["updated_at"] > c) | ((df["updated_at"] == c) & (df["id"] > k))
            df = df[after if exact else df["updated_at"] >= pd.Timestamp(start)]
        kept = list(stream.kept_fields(StreamSchema(FIELDS)))
        for i in range(0, len(df), stream.batch_size):
            yield df.iloc[i:i + stream.batch_size][kept].reset_index(drop=True)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        yield self._frame(self._all("tickets", "tickets", {}))[["id"]]

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        if since is not None:
            start = _utc(since.cursor) - timedelta(seconds=stream.lookback_seconds or 0)
            gone = self._all("tickets/deleted", "deleted", {"since": start.strftime("%Y-%m-%dT%H:%M:%SZ")})
            yield pd.DataFrame({"id": pd.Series([int(r["id"]) for r in gone], dtype="Int64")})

    def record_url(self, stream: StreamSpec, record_id: str) -> str | None:
        return None

    def close(self) -> None:
        self.http.close()

    def _all(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        rows, page = [], 1
        while page:
            data = self._get(path, {**params, "page": page})
            rows, page = rows + data[key], data["next_page"]
        return rows

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        self.token = self.token or env_value(self.name, self.options.token_env, "the helpdesk API token")
        for attempt in range(self.options.retries + 1):
            try:
                resp = self.http.get(self.options.base_url + path, params=params, timeout=60,
                                     headers={"Authorization": f"Bearer {self.token}"})
            except RETRIABLE as exc:
                why, wait = type(exc).__name__, None
            else:
                if resp.status_code == 200:
                    return resp.json()
                if resp.status_code != 429 and resp.status_code < 500:
                    raise SourceError(f"source {self.name!r}: the helpdesk answered HTTP "
                                      f"{resp.status_code} for {path}", hint="check token_env and base_url")
                why, wait = f"HTTP {resp.status_code}", _retry_after(resp.headers.get("Retry-After"))
            if attempt < self.options.retries:
                self.sleep(wait if wait is not None else 2 ** attempt * (1 + random.random() / 2))  # noqa: S311
        raise SourceError(f"source {self.name!r}: the helpdesk did not answer {path} after "
                          f"{self.options.retries + 1} tries ({why})", transient=True,
                          hint="the next run tries again")

    def _frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        try:
            return pd.DataFrame({
                "id": pd.Series([int(r["id"]) for r in rows], dtype="Int64"),
                "status": pd.Series([r["status"] for r in rows], dtype="str"),
                "hours": pd.Series([None if r["hours"] is None
                                    else Decimal(repr(r["hours"])).quantize(Decimal("0.01")) for r in rows],
                                   dtype=object),
                "escalated": pd.Series([_boolean(r["escalated"]) for r in rows], dtype="boolean"),
                "updated_at": pd.Series([_utc(r["updated_at"]) for r in rows], dtype="datetime64[us]"),
            })
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise SourceError(f"source {self.name!r}: a ticket is not what the API documents "
                              f"({type(exc).__name__})", hint="check base_url") from None


def _utc(value: Any) -> datetime:
    """A point in time as naive UTC (``…Z`` text, a datetime or a pandas Timestamp)."""
    value = datetime.fromisoformat(value) if isinstance(value, str) else pd.Timestamp(value).to_pydatetime()
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool) or str(value).lower() in ("true", "false"):
        return value is True or str(value).lower() == "true"
    raise ValueError("not a boolean")


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when else None
