"""The ``kind: sql`` source block and the keys of a sql stream (a table, or one read-only query)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|/\*.*?\*/|(;)|(\w+)|\S", re.S)
_WRITE_WORDS = {"INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT",
                "REVOKE", "COPY", "CALL", "INTO", "LOCK"}


class SqlOptions(BaseModel):
    """A ``kind: sql`` source block: exactly one of ``url``, ``url_env``, ``url_secret``."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    url: str | None = None
    url_env: str | None = None
    url_secret: str | None = None
    password_env: str | None = None
    connect_timeout_seconds: int = Field(default=10, ge=1, le=3600)
    # Bounds each wait on the database (a statement, a batch of a streamed read, a lock wait).
    statement_timeout_seconds: int = Field(default=300, ge=1, le=86_400)
    # Deletes found by comparing key-range digests with the store's (connectors.sql_digest) on every
    # incremental sync; false: by reading every key (on the stream's reconcile cadence).
    key_digests: bool = True

    @model_validator(mode="after")
    def _one_url(self) -> SqlOptions:
        given = [k for k in ("url", "url_env", "url_secret") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, url_env, url_secret (given: {given or 'none'})")
        if self.url is not None:
            try:
                url = sa.make_url(self.url)
            except (sa.exc.ArgumentError, ValueError):
                raise ValueError("url is not a database URL such as postgresql+psycopg://u@host/db") from None
            if url.password is not None or "password" in url.query:
                raise ValueError("url may not contain a password: put the URL in an environment variable "
                                 "(url_env) or only the password (password_env)")
        return self


class SqlStreamOptions(BaseModel):
    """A stream's SQL keys: ``table`` (and optionally ``schema``), or ``query`` (one SELECT)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    table: str | None = None
    db_schema: str | None = Field(default=None, alias="schema")
    query: str | None = None

    @field_validator("query")
    @classmethod
    def _one_select(cls, v: str | None) -> str | None:
        return None if v is None else read_only_query(v)

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlStreamOptions:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.query is not None and self.db_schema is not None:
            raise ValueError("schema goes with table; qualify names inside the query instead")
        return self


def read_only_query(query: str) -> str:
    """The query without its trailing ``;``; ValueError unless it is one SELECT/WITH statement."""
    words: list[str] = []
    end = len(query)
    for m in _TOKENS.finditer(query):  # strings, quoted names and comments are single tokens
        if end < len(query) and not m.group(0).startswith(("--", "/*")):
            raise ValueError("query must be a single statement: remove everything after ';'")
        if m.group(1):
            end = m.start()
        elif m.group(2):
            words.append(m.group(2).upper())
    if not words or words[0] not in ("SELECT", "WITH"):
        raise ValueError("query must be one read-only statement starting with SELECT or WITH")
    if bad := sorted(_WRITE_WORDS.intersection(words)):
        raise ValueError(f"query must only read; remove {', '.join(bad)} (or quote identifiers so named)")
    return query[:end].strip()
