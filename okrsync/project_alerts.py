"""The ``alerts:`` section of the project file: channels (a signed webhook, Slack- and Teams-compatible
incoming webhooks, email over SMTP), what each one is told, and the addresses of KR owners.

Secrets never sit in the file: webhook URLs that carry a token (Slack, Teams), the webhook's signing key
and the SMTP password are named by environment variable (``url_env``, ``secret_env``,
``password_env``) and read only when a delivery is sent (:mod:`flows.alerts`). See docs/alerts.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from okr_store.alerts import EVENT_KINDS
from okrsync.errors import ConfigError
from okrsync.project_problems import KeyPath, Problems, describe, did_you_mean

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


def _address(v: str) -> str:
    if not EMAIL.match(v):
        raise ValueError(f"{v!r} is not an email address (name@example.com)")
    return v


def env(var: str, what: str, channel: str) -> str:
    """The value of ``var`` for a channel (ConfigError naming the variable, never a value)."""
    if not (value := os.environ.get(var)):
        raise ConfigError(f"environment variable {var} is not set (alerts channel {channel!r})",
                          hint=f"set {var} to {what} where okrsync runs")
    return value


class _Channel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    events: tuple[str, ...] = EVENT_KINDS  # the kinds of event it is told about (default: all)
    key_results: tuple[str, ...] = ()  # KR or objective ids (an objective: every KR below it); (): all
    max_per_hour: int = Field(default=30, ge=1, le=10_000)  # the rate limit; the rest waits a run

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for kind in v:
            if kind not in EVENT_KINDS:
                raise ValueError(f"unknown event {kind!r}{did_you_mean(kind, EVENT_KINDS)} "
                                 f"(events: {', '.join(EVENT_KINDS)})")
        return v


class _HttpChannel(_Channel):
    url_env: str = Field(pattern=ENV_NAME)  # the URL carries the token: it is a secret
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    # Whether the URL may point at a private or loopback address (an in-house receiver); off, a URL
    # resolving to one is refused (server-side request forgery) by Prefect's notification block.
    allow_private_urls: bool = False


class WebhookChannel(_HttpChannel):
    """``kind: webhook``: a JSON POST signed with HMAC-SHA256 (docs/alerts.md, "Verify a webhook")."""

    kind: Literal["webhook"]
    secret_env: str = Field(pattern=ENV_NAME)  # the shared signing key


class SlackChannel(_HttpChannel):
    """``kind: slack``: a Slack (or Mattermost, Rocket.Chat…) incoming webhook: ``{"text": …}``."""

    kind: Literal["slack"]


class TeamsChannel(_HttpChannel):
    """``kind: teams``: a Microsoft Teams incoming webhook or Workflows URL: an Adaptive Card."""

    kind: Literal["teams"]


class EmailChannel(_Channel):
    """``kind: email``: mail over SMTP to ``to`` and, with ``owners``, to each KR's owner."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    sender: str = Field(alias="from")
    to: tuple[str, ...] = ()
    owners: bool = True
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    _addresses = field_validator("sender")(_address)

    @field_validator("to")
    @classmethod
    def _each_address(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address(a) for a in v)

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if self.username and not self.password_env:
            raise ValueError("username needs password_env (the variable holding the SMTP password)")
        if not self.to and not self.owners:
            raise ValueError("the channel has no recipient: list addresses in `to` or set `owners: true`")
        return self


Channel = WebhookChannel | SlackChannel | TeamsChannel | EmailChannel
KINDS: dict[str, type[BaseModel]] = {"webhook": WebhookChannel, "slack": SlackChannel,
                                     "teams": TeamsChannel, "email": EmailChannel}


class Alerts(BaseModel):
    """The validated ``alerts:`` section (empty: no channel, nothing is sent)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: Mapping[str, Channel] = Field(default_factory=dict)
    people: Mapping[str, str] = Field(default_factory=dict)  # KR owner (as in `owner:`) → email address
    max_attempts: int = Field(default=5, ge=1, le=100)  # tries per delivery (one per run) before giving up

    def owner_address(self, owner: str | None) -> str | None:
        """The email address of a KR owner: from ``people``, or the owner itself if it is one."""
        if not owner:
            return None
        found = self.people.get(owner)
        return found or (owner if EMAIL.match(owner) else None)


def build_alerts(raw: Any, problems: Problems, ids: Iterable[str],
                 validate: Callable[[type[BaseModel], Any, KeyPath], Any]) -> Alerts:
    """Validate the ``alerts:`` section; every problem goes to ``problems`` (with its file and line)."""
    if raw is None:
        return Alerts()
    path: KeyPath = ("alerts",)
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping (channels, people, max_attempts), got {describe(raw)}")
        return Alerts()
    known_ids = set(ids)
    channels: dict[str, Channel] = {}
    raw_channels = raw.get("channels") or {}
    if not isinstance(raw_channels, dict):
        problems.add((*path, "channels"),
                     f"expected a mapping of name → channel, got {describe(raw_channels)}")
        raw_channels = {}
    for name, entry in raw_channels.items():
        where: KeyPath = (*path, "channels", name)
        if not isinstance(name, str) or not CHANNEL_NAME.match(name):
            problems.add(where, f"{name!r} is not a valid channel name (letters, digits, '_', '.', '-')")
            continue
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if kind not in KINDS:
            got = "missing" if kind is None else repr(kind)
            problems.add((*where, "kind") if isinstance(entry, dict) and "kind" in entry else where,
                         f"channel kind is {got}{did_you_mean(kind, KINDS) if isinstance(kind, str) else ''}"
                         f" (kinds: {', '.join(KINDS)})")
            continue
        clear = [k for k in ("url", "secret", "password") if k in entry]
        for key in clear:
            problems.add((*where, key), f"keep the {key} out of the project file: name the environment "
                         f"variable that holds it with {key}_env")
        if clear:
            continue
        channel = validate(KINDS[kind], entry, where)
        if channel is None:
            continue
        for i, ref in enumerate(channel.key_results):
            if ref not in known_ids:
                problems.add((*where, "key_results", i), f"unknown key result or objective {ref!r}"
                             f"{did_you_mean(ref, sorted(known_ids))}")
        channels[name] = channel
    rest = {k: v for k, v in raw.items() if k != "channels"}
    try:
        top = Alerts.model_validate(rest)
    except ValidationError as exc:
        problems.add_validation(exc, path, rest, Alerts)
        return Alerts(channels=channels)
    for owner, address in top.people.items():
        if not EMAIL.match(address):
            problems.add((*path, "people", owner), f"{address!r} is not an email address (name@example.com)")
    return top.model_copy(update={"channels": channels})
