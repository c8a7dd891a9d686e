"""An example API connector in one file: a helpdesk's tickets as a stream (``kind: helpdesk``).

It says what to read; the kit does the rest (docs/connectors.md walks through it). Register it from your
own package's pyproject.toml — no okrsync file changes:

    [project.entry-points."okrsync.connectors"]
    helpdesk = "helpdesk_connector:HelpdeskConnector"

tests/connectors/test_example_helpdesk.py runs the connector contract (connectors.testing) on it, against
a loopback helpdesk API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from connectors.base import SourceConnector, StreamSpec, Watermark
from connectors.kit.cursor import Incremental
from connectors.kit.http import ApiSession, RetryPolicy
from connectors.kit.values import records_frame
from connectors.secrets import Secrets, env_value
from okrsync.errors import ConfigError, did_you_mean
from okrsync.schema import Field, FieldType, StreamSchema

T = FieldType
SCHEMA = StreamSchema((Field("id", T.INTEGER), Field("status", T.STRING), Field("hours", T.DECIMAL, 2),
                       Field("escalated", T.BOOLEAN), Field("updated_at", T.DATETIME)))


class HelpdeskOptions(BaseModel):
    """The source block: ``{kind: helpdesk, base_url: https://…/api/, token_env: HELPDESK_TOKEN}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    base_url: str
    token_env: str  # the environment variable holding the API token
    retries: int = 4


class HelpdeskStreamOptions(BaseModel):
    """A stream takes no key of its own: ``primary_key: id``, ``cursor: updated_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class HelpdeskConnector(SourceConnector):
    kind: ClassVar[str] = "helpdesk"
    Options: ClassVar[type[BaseModel]] = HelpdeskOptions
    StreamOptions: ClassVar[type[BaseModel]] = HelpdeskStreamOptions
    reports_deletions = True  # GET tickets/deleted: streams may say `deletes: tombstones`

    def __init__(self, name: str, options: Any, base_dir: Path) -> None:
        super().__init__(name, options, base_dir)  # validates the options: a ConfigError names the key
        self.secrets = Secrets()
        policy = RetryPolicy(self.options.retries)  # 429/5xx/network: jittered backoff, Retry-After honoured
        self.http = ApiSession(policy, label=f"source {name!r}", secrets=self.secrets)

    def schema(self, stream: StreamSpec) -> StreamSchema:
        for name in (*(stream.fields or ()), *stream.primary_key, *stream.cursor):
            if name not in SCHEMA:
                raise ConfigError(f"source {self.name!r}, stream {stream.name!r}: no field {name!r}"
                                  f"{did_you_mean(name, SCHEMA.names)}", hint=f"fields: {SCHEMA.names}")
        return SCHEMA

    def read(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        window = Incremental.of(stream, since, T.DATETIME)  # watermark, lookback, (cursor, id) tie-break
        params = {} if window.full else {"updated_since": f"{window.start:%Y-%m-%dT%H:%M:%SZ}"}
        tickets = self._frame(self._all("tickets", "tickets", params))
        yield from window.frames(tickets[list(stream.kept_fields(SCHEMA))], stream.batch_size)

    def keys(self, stream: StreamSpec) -> Iterator[pd.DataFrame]:
        yield self._frame(self._all("tickets", "tickets", {}))[["id"]]

    def deleted(self, stream: StreamSpec, since: Watermark | None) -> Iterator[pd.DataFrame]:
        window = Incremental.of(stream, since, T.DATETIME)
        if not window.full:
            gone = self._all("tickets/deleted", "deleted", {"since": f"{window.start:%Y-%m-%dT%H:%M:%SZ}"})
            yield self._frame(gone)[["id"]]

    def close(self) -> None:
        self.http.close()

    def _all(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of one listing (the session retries, waits out Retry-After, keeps the token out)."""
        token = self.secrets.keep(env_value(self.name, self.options.token_env, "the helpdesk API token"))
        auth, page, rows = {"Authorization": f"Bearer {token}"}, 1, list[dict[str, Any]]()
        while page:
            data = self.http.fetch("GET", self.options.base_url + path, f"GET {path}",
                                   params={**params, "page": page}, headers=auth)
            rows, page = rows + data[key], data["next_page"]
        return rows

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return records_frame(records, SCHEMA.fields, where=f"source {self.name!r}", key="id")
