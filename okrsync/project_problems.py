"""Located problems in the project file, and pydantic errors turned into them.

Every problem reads ``file:line: key.path: what is wrong (what is allowed)``, for example
``okrsync.yaml:12: metrics.revenue.measure: 'summ' is not one of count, …, ratio (did you mean 'sum'?)``.
"""

from __future__ import annotations

import inspect
import os
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from okrsync import errors
from okrsync.errors import ConfigError

KeyPath = tuple[str | int, ...]
Mark = tuple[Path, int]


class Marks(dict[KeyPath, Mark]):
    """Key path (``("metrics", "revenue", "measure")``, ``("objectives", 0)``) → ``(file, line)``."""

    def locate(self, path: KeyPath) -> Mark | None:
        """The mark of ``path``, else of its nearest marked ancestor (for keys that are missing)."""
        for n in range(len(path), -1, -1):
            mark = self.get(path[:n])
            if mark is not None:
                return mark
        return None


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else as is."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def dotted(path: KeyPath) -> str:
    """``("objectives", 0, "key_results", 1, "target")`` → ``objectives[0].key_results[1].target``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""``."""
    return errors.did_you_mean(word, candidates, n=1, prefix=True)  # prefix: `total` for `total_amount`


def describe(value: Any) -> str:
    """A short description of a YAML value for messages: ``a list``, ``the text 'x'``, ``int 3``."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {_short(value)}"
    return f"{type(value).__name__} {_short(value)}"


_PASSWORD_IN_URL = re.compile(r"(://[^/@\s:]*:)[^/\s]*@")


def _short(value: Any) -> str:
    text = _PASSWORD_IN_URL.sub(r"\1***@", repr(value))  # never echo a password back
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the project file, at a file and line."""

    file: Path | None
    line: int | None
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = display_path(self.file) if self.file is not None else "okrsync.yaml"
        if self.line is not None:
            where += f":{self.line}"
        key = dotted(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


class ProjectFileError(ConfigError):
    """Every problem found in the project file, one per line, sorted by file and line."""

    def __init__(self, problems: Sequence[Problem], *, hint: str | None = None) -> None:
        self.problems = tuple(sorted(problems, key=lambda p: (str(p.file), p.line or 0)))
        lines = [str(p) for p in self.problems]
        if len(lines) == 1:
            message = lines[0]
        else:
            message = f"the project file has {len(lines)} problems:\n" + "\n".join(lines)
        super().__init__(message, hint=hint)


class Problems:
    """Collects :class:`Problem` s, locating key paths through ``marks``."""

    def __init__(self, marks: Marks) -> None:
        self.marks = marks
        self.items: list[Problem] = []

    def add(self, path: KeyPath, message: str, *, at: Mark | None = None) -> None:
        """A problem at ``path`` (or at the explicit mark ``at``)."""
        mark = at or self.marks.locate(path)
        self.items.append(Problem(mark[0] if mark else None, mark[1] if mark else None, path, message))

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self, hint: str | None = None) -> None:
        if self.items:
            raise ProjectFileError(self.items, hint=hint)

    def add_validation(
        self,
        exc: ValidationError,
        prefix: KeyPath,
        data: Any,
        model: type[BaseModel],
        *,
        also_allowed: Iterable[str] = (),
        hidden: Iterable[str] = (),
    ) -> None:
        """Each error of ``model.model_validate(data)`` as a problem under ``prefix``.

        ``also_allowed`` names keys accepted next to the model's own at its top level (``kind`` of a
        source); ``hidden`` names model fields the user never writes (a metric's injected ``name``).
        """
        errors = [_Located(i, e, *_walk(e, data)) for i, e in enumerate(exc.errors(include_url=False))]
        _, kept = _best(errors, 0)
        for err in sorted(kept, key=lambda e: e.index):
            if not _consequential(err, data):
                path, message = _explain(err, model, set(also_allowed), set(hidden))
                self.add(prefix + path, message)


@dataclass(frozen=True)
class _Located:
    index: int
    error: ErrorDetails
    path: KeyPath  # the location in the data (union branch tags removed)
    choices: tuple[tuple[KeyPath, str], ...]  # (data path, union branch tag) passed on the way
    at_branch_root: bool  # the error is about the value a union branch was tried on

    @property
    def score(self) -> int:
        kind = self.error["type"]
        wrong = kind in _WRONG_KIND or (kind == "literal_error" and not isinstance(self.error["input"], str))
        return 10 if wrong and self.at_branch_root else 1


_WRONG_KIND = {
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "list_type": "a list", "tuple_type": "a list", "string_type": "text", "int_type": "a whole number",
    "decimal_type": "a number", "float_type": "a number", "bool_type": "true or false", "date_type": "a date",
    "datetime_type": "a date and time", "is_instance_of": "a value of another kind",
}


def _walk(err: ErrorDetails, data: Any) -> tuple[KeyPath, tuple[tuple[KeyPath, str], ...], bool]:
    """Follow an error's ``loc`` through the data, telling keys from union branch tags."""
    cur, root = data, False
    path: list[str | int] = []
    choices: list[tuple[KeyPath, str]] = []
    loc = err["loc"]
    for n, el in enumerate(loc):
        if isinstance(cur, dict) and el in cur:
            cur, root = cur[el], False
        elif isinstance(cur, list) and isinstance(el, int) and 0 <= el < len(cur):
            cur, root = cur[el], False
        elif n == len(loc) - 1 and err["type"] == "missing":
            continue
        elif isinstance(el, str):
            choices.append((tuple(path), el))
            root = True
            continue
        path.append(el)
    return tuple(path), tuple(choices), root


def _best(errors: list[_Located], depth: int) -> tuple[int, list[_Located]]:
    """Keep, at each union, only the errors of the branch that fits best (recursively scored)."""
    score, kept = 0, []
    groups: dict[KeyPath, dict[str, list[_Located]]] = {}
    for e in errors:
        if len(e.choices) <= depth:
            score += e.score
            kept.append(e)
        else:
            at, tag = e.choices[depth]
            groups.setdefault(at, {}).setdefault(tag, []).append(e)
    for branches in groups.values():
        results = [_best(errs, depth + 1) for errs in branches.values()]
        best = min(results, key=lambda r: r[0])
        if all(r[0] >= 10 and all(e.at_branch_root for e in r[1]) for r in results):
            best = (best[0], [_merged(r[1][0] for r in results)])  # no branch fits: say what would
        score += best[0]
        kept += best[1]
    return score, kept


def _merged(errors: Iterable[_Located]) -> _Located:
    errors = list(errors)
    wanted: list[str] = []
    for e in errors:
        kind = e.error["type"]
        noun = _WRONG_KIND.get(kind)
        if kind == "literal_error":
            noun = "one of " + ", ".join(_literal_choices(e.error))
        if noun and noun not in wanted:
            wanted.append(noun)
    first = errors[0]
    detail = dict(first.error)
    detail["type"] = "wrong_kind"
    detail["msg"] = f"expected {' or '.join(wanted)}, got {describe(first.error['input'])}"
    return _Located(first.index, detail, first.path, (), True)  # type: ignore[arg-type]


def _consequential(err: _Located, data: Any) -> bool:
    """A "too short" error on a list whose items failed is noise: the item errors say it all."""
    if err.error["type"] != "too_short":
        return False
    value = _at(data, err.path)
    return isinstance(value, list) and len(value) >= int(err.error.get("ctx", {}).get("min_length", 0))


def _at(data: Any, path: KeyPath) -> Any:
    for el in path:
        data = data[el]
    return data


def _literal_choices(err: ErrorDetails) -> list[str]:
    return re.findall(r"'((?:[^'\\]|\\.)*)'", str(err.get("ctx", {}).get("expected", "")))


def _explain(err: _Located, model: type[BaseModel], also: set[str], hidden: set[str]) -> tuple[KeyPath, str]:
    e = err.error
    kind, value = e["type"], e["input"]
    if kind == "missing":
        return err.path, f"missing required key {e['loc'][-1]!r}"
    if kind == "extra_forbidden":
        key = str(err.path[-1])
        allowed = set(_fields_at(model, e["loc"][:-1]) or ()) - hidden
        if len(err.path) == 1:
            allowed |= also
        listed = f" (allowed: {', '.join(sorted(allowed))})" if allowed else ""
        return err.path, f"unknown key {key!r}{did_you_mean(key, allowed)}{listed}"
    if kind == "literal_error":
        choices = _literal_choices(e)
        guess = did_you_mean(value, choices) if isinstance(value, str) else ""
        return err.path, f"{_short(value)} is not one of {', '.join(choices)}{guess}"
    if kind in ("value_error", "assertion_error") and "error" in e.get("ctx", {}):
        return err.path, str(e["ctx"]["error"])
    if kind == "wrong_kind":
        return err.path, e["msg"]
    if kind == "string_type":
        hint = " (quote it)" if isinstance(value, int | float) and not isinstance(value, bool) else ""
        return err.path, f"expected text, got {describe(value)}{hint}"
    if kind in _WRONG_KIND:
        return err.path, f"expected {_WRONG_KIND[kind]}, got {describe(value)}"
    return err.path, f"{e['msg'][0].lower()}{e['msg'][1:]}, got {describe(value)}"


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str] | None:
    """The keys of the model reached by following ``loc`` (field names, list items, union tags)."""
    current: Any = model
    for el in loc:
        current = _step(current, el)
        if current is None:
            return None
    current = _unwrap(current)
    if inspect.isclass(current) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return None


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _step(tp: Any, el: str | int) -> Any:
    tp = _unwrap(tp)
    if inspect.isclass(tp) and issubclass(tp, BaseModel):
        for name, field in tp.model_fields.items():
            if el in (name, field.alias):
                return field.annotation
        return None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (tuple, list) and isinstance(el, int):
        return args[0]
    if origin is dict:
        return args[1]
    if origin in (Union, types.UnionType) and isinstance(el, str):
        tag = m[1] if (m := re.search(r"(\w+)\]$", el)) else el
        members = [_unwrap(a) for a in args if a is not type(None)]
        for member in members:
            if getattr(member, "__name__", None) == tag:
                return member
        if len(members) == 1:  # Optional[X] around a union: the tag belongs to X's members
            return _step(members[0], el)
    return None
