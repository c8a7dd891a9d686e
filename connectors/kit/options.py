"""A connector's options models applied to a source block or a stream's keys, with one kind of error.

The project loader validates the same models with line numbers; connectors built directly (tests, the
contract suite, other tools) get a :class:`~okrsync.errors.ConfigError` that names the source or stream
and every key that is wrong, and never repeats the value given (it may be a secret or personal data).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from okrsync.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, *, where: str, hint: str, hide: Collection[str] = ()) -> M:
    """``data`` as ``model`` (as is when it already is one), or a ConfigError ``{where}: key: problem; …``.

    ``hide``: location parts left out of the key (the tags of a union of models, say)."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {problems(exc, hide)}", hint=hint) from None


def problems(exc: ValidationError, hide: Collection[str] = ()) -> str:
    """A pydantic error as ``key: message; …``, without the offending input."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in e["loc"] if p not in hide) or "options"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)
