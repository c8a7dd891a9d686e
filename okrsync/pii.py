"""Personal data: sealed in the store, revealed only to roles allowed to see it.

A stream's ``sensitive`` fields (salary, termination reason, date of birth, a person's name) are
encrypted before they reach the store, with AES-SIV: deterministic authenticated encryption. The
same value in the same field always seals to the same text, so metrics can still count records, count
distinct values, pin a dimension and filter with ``=``, ``!=``, ``in``, ``not_in``, ``is_null`` and
``not_null`` (the filter's values are sealed the same way); anything else on a sensitive field is
refused when the project is loaded. Lineage keeps the record id and the sealed text; drill-down and
diff show ``•••`` unless the caller's role may see sensitive fields, and then decrypt.

The key is 64 random bytes: from the environment variable ``settings.pii_key_env`` (base64), else, for
the embedded SQLite store only, from ``.okrsync/pii.key`` next to it (created 0600 on first use).
Without the key the store reveals nothing; losing it loses the sensitive fields, not the rest.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metrics.measures import measures_where
from metrics.spec import conditions
from okrsync.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

PREFIX = "pii:"
MASK = "•••"
ALLOWED_OPS = ("=", "!=", "in", "not_in", "is_null", "not_null")
SEALED_MEASURES = measures_where(lambda a: a.on_sealed_values)  # count and count_distinct


def _text(value: Any) -> str:
    """The canonical text of a typed value (what is sealed): stable across runs and sources."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | Decimal | int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class Vault:
    """Seals and opens the values of sensitive fields (AES-SIV, the field name as associated data)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 64:
            raise ConfigError("the personal-data key must be 64 bytes (base64: 88 characters)",
                              hint="make one with `python -c \"import os,base64;"
                              "print(base64.b64encode(os.urandom(64)).decode())\"`")
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        self._aead = AESSIV(key)
        self._cache: dict[tuple[str, str], str] = {}

    def seal(self, field: str, value: Any) -> str | None:
        missing = type(value).__name__ in ("NaTType", "NAType") or (isinstance(value, float)
                                                                    and value != value)
        if value is None or missing:
            return None
        text = _text(value)
        hit = self._cache.get((field, text))
        if hit is None:
            raw = self._aead.encrypt(text.encode(), [field.encode()])
            hit = PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
            if len(self._cache) < 100_000:
                self._cache[(field, text)] = hit
        return hit

    def open(self, field: str, sealed: Any) -> Any:
        """The clear text of a sealed value (values that are not sealed come back as they are)."""
        if not isinstance(sealed, str) or not sealed.startswith(PREFIX):
            return sealed
        from cryptography.exceptions import InvalidTag

        body = sealed[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return self._aead.decrypt(raw, [field.encode()]).decode()
        except (InvalidTag, binascii.Error, ValueError):
            return MASK  # sealed with another key

    def seal_frame(self, df: pd.DataFrame, fields: Iterable[str]) -> pd.DataFrame:
        """``df`` with each sensitive column replaced by its sealed text (one encryption per value)."""
        import pandas as pd

        out = df.copy()
        for f in fields:
            if f in out.columns:
                col = out[f].astype(object).where(out[f].notna(), None)
                uniques = {v: self.seal(f, v) for v in col.dropna().unique()}
                out[f] = pd.Series([None if v is None else uniques[v] for v in col], index=out.index,
                                   dtype=object)
        return out


def key_file(store_url: str) -> Path | None:
    """``.okrsync/pii.key`` next to an embedded SQLite store (None for server stores)."""
    if not store_url.startswith("sqlite:///"):
        return None
    return Path(store_url.removeprefix("sqlite:///")).parent / "pii.key"


def vault_for(key_env: str, store_url: str) -> Vault:
    """The project's vault: the key from ``key_env``, else the embedded store's key file."""
    if raw := os.environ.get(key_env, "").strip():
        try:
            return Vault(base64.b64decode(raw, validate=True))
        except binascii.Error:
            raise ConfigError(f"environment variable {key_env} is not base64",
                              hint="it holds 64 random bytes in base64") from None
    path = key_file(store_url)
    if path is None:
        raise ConfigError(f"streams have sensitive fields, and {key_env} holds no key for them",
                          hint=f"set {key_env} to 64 random bytes in base64 (the same on every machine "
                          "that runs or reads this project)")
    if not path.exists():
        # Written whole under a private name, then linked into place: streams (and partitions) synced
        # in parallel never read a half-written key, and the first to link wins.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(os.urandom(64)).decode() + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink()
    return Vault(base64.b64decode(path.read_text().strip()))


def sensitive_uses(
    stream_sensitive: Mapping[str, tuple[str, ...]], metric: Any
) -> list[tuple[tuple[str, ...], str]]:
    """What a metric does with sensitive fields that sealed values cannot support: (key path, why)."""
    hidden = set(stream_sensitive.get(getattr(metric, "stream", ""), ()))
    if not hidden:
        return []
    out: list[tuple[tuple[str, ...], str]] = []
    if metric.field in hidden and not metric.measure.aggregation.on_sealed_values:
        out.append((("field",), f"{metric.field!r} is sensitive (stored encrypted): only "
                                f"{' and '.join(SEALED_MEASURES)} may use it"))
    for name in getattr(metric, "days_between", None) or ():
        if name in hidden:
            out.append((("days_between",), f"{name!r} is sensitive (stored encrypted): days cannot be "
                                           "counted from it"))
    if metric.time_field in hidden:
        out.append((("time_field",), f"{metric.time_field!r} is sensitive (stored encrypted): it cannot "
                                     "place records in time"))
    for cond in conditions(metric.filter):
        if cond.field in hidden and cond.op not in ALLOWED_OPS:
            out.append((("filter",), f"{cond.field!r} is sensitive (stored encrypted): filter it with "
                                     f"{', '.join(ALLOWED_OPS)}, not {cond.op!r}"))
    return out


def sealed_filter(f: Any, hidden: set[str], vault: Vault) -> Any:
    """The filter with the values compared to sensitive fields sealed as the store holds them."""
    if f is None or not hidden:
        return f
    if hasattr(f, "and_"):
        return f.model_copy(update={"and_": tuple(sealed_filter(x, hidden, vault) for x in f.and_)})
    if hasattr(f, "or_"):
        return f.model_copy(update={"or_": tuple(sealed_filter(x, hidden, vault) for x in f.or_)})
    if hasattr(f, "not_"):
        return f.model_copy(update={"not_": sealed_filter(f.not_, hidden, vault)})
    if f.field not in hidden or f.value is None:
        return f
    value = (tuple(vault.seal(f.field, v) for v in f.value) if isinstance(f.value, tuple)
             else vault.seal(f.field, f.value))
    return f.model_copy(update={"value": value})


def reveal(fields: Mapping[str, Any], hidden: Iterable[str], vault: Vault | None) -> dict[str, Any]:
    """A record's fields as a role sees them: sensitive ones opened with ``vault``, or masked."""
    hidden = set(hidden)
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k in hidden and v is not None:
            out[k] = vault.open(k, v) if vault is not None else MASK
        else:
            out[k] = v
    return out
