"""Where connectors get credentials: environment variables and Prefect Secret blocks, never the file.

Values read here are never logged and never part of an error message: errors name the variable or
block, not what it holds.
"""

from __future__ import annotations

import os

from okrsync.errors import ConfigError, SourceError


def env_value(source: str, var: str, what: str) -> str:
    """The value of environment variable ``var`` (ConfigError naming it if unset or empty)."""
    if not (value := os.environ.get(var)):
        raise ConfigError(f"environment variable {var} is not set", source=source,
                          hint=f"set {var} to {what} before running okrsync")
    return value


def secret_value(source: str, block: str, what: str) -> str:
    """The value of Prefect Secret block ``block`` (a string)."""
    try:
        from prefect.blocks.system import Secret  # heavy: imported only when a source uses it

        # _sync: this API is synchronous even when called from an async flow (no coroutine back).
        value = Secret.load(block, _sync=True).get()  # type: ignore[call-arg,union-attr]
    except ValueError:
        raise ConfigError(f"Prefect Secret block {block!r} was not found", source=source,
                          hint="create it (`prefect block create secret`) or fix the source's "
                          "`*_secret` key") from None
    except Exception as exc:  # the Prefect API may be down: worth a retry, not a config error
        raise SourceError(f"could not load Prefect Secret block {block!r} ({type(exc).__name__})",
                          source=source, hint="check PREFECT_API_URL and the Prefect server",
                          transient=True) from None
    if not isinstance(value, str):
        raise ConfigError(f"Prefect Secret block {block!r} is not a string", source=source,
                          hint=f"store {what} as the secret's value")
    return value


class Secrets:
    """The secret values one source has read (keys, passwords, session ids), to keep out of every message
    it writes: :meth:`scrub` replaces each with ``***``."""

    def __init__(self) -> None:
        self._values: list[str] = []

    def keep(self, value: str) -> str:
        """Remember ``value`` as a secret; returns it."""
        if value and value not in self._values:
            self._values.append(value)
        return value

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text
